/**
 * Live hotplug of an RBD volume disk (src/vm/devices.ts attachVolume, src/vm/device-hotplug.ts)
 * against a real Ceph (test/helpers/ceph.ts: mon + mgr + memstore OSD in a namespace of its own),
 * the real CLI and the test guest under QEMU (TCG), which runs in the cluster's namespace
 * (KVMCTL_NETNS). The VM starts with no disk and so without the storage's secret object: the
 * attach adds it (object-add secret from a 0600 key file, removed right after), the rbd and raw
 * nodes as the start path builds them, and a virtio-blk device on a spare root port; the guest
 * writes to the new /dev/vda and the bytes are in the image (`rbd export` as admin). Detach
 * unplugs it and QEMU closes the image (no watcher left). An IDE disk is refused live with a
 * clear error and nothing changed. Numbers: test-output/ceph-hotplug.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { makeHome, ROOT, type Home } from '../helpers/kvmctl.js';

const can = canRunCeph();
let c: Ceph | undefined;
let h: Home;
let paths: Paths;
const MiB = 2 ** 20;
const VM = 'rhp';
const numbers: Record<string, number> = {};
const cli = (args: string[]) => h.cli(args, { env: { KVMCTL_NETNS: c!.netns.name }, timeoutMs: 150_000 });
const ok = async (args: string[]) => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};
const sh = async (cmd: string) => (await serialExec(paths, VM, cmd, 60_000)).output.trim();
async function guestUntil(what: string, cmd: string, good: (out: string) => boolean, ms = 90_000): Promise<string> {
  const end = Date.now() + ms;
  let out = '';
  while (Date.now() < end) {
    out = await sh(cmd);
    if (good(out)) return out;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what}: not within ${ms} ms; last output: ${out}`);
}
const definition = () => parse(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')) as { disks?: { storage?: string; volume?: string }[] };

beforeAll(async () => {
  if (!can.ok) return;
  c = await startCeph();
  h = makeHome();
  paths = resolvePaths(h.env);
  const def = path.join(h.dir, 'ceph1.yaml');
  fs.writeFileSync(def, `kind: storage\nname: ceph1\ntype: rbd\npool: ${c.pool}\nmonitors: [${c.monitor}]\nuser: ${c.user}\nkeyring: ${c.keyring}\n`);
  await ok(['storage', 'define', '-f', def]);
  await ok(['volume', 'create', 'ceph1/hot0', '16M']);
  await h.apply(`name: ${VM}\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 10\n`);
  await ok(['start', VM, '--wait-for-guest']);
}, 300_000);
afterAll(async () => {
  await h?.cleanup();
  await c?.stop();
  if (Object.keys(numbers).length) {
    fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'test-output/ceph-hotplug.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    console.log('rbd hotplug', numbers);
  }
}, 60_000);

describe.skipIf(!can.ok)(`RBD volume hotplug on a real Ceph${can.ok ? '' : ` (skipped: ${can.why})`}`, () => {
  it('attach --volume --live: the guest gets /dev/vda, writes reach the image; the key file is gone; detach closes the image', async () => {
    expect(await sh('ls /sys/block')).not.toMatch(/vda/);
    const t0 = Date.now();
    const r = JSON.parse(await ok(['--json', 'attach-disk', VM, '--volume', 'ceph1/hot0', '--id', 'data', '--live'])) as { live: boolean; device: string; bus?: string };
    numbers.attachCliMs = Date.now() - t0;
    expect(r).toMatchObject({ live: true, device: 'data-blk' });
    await guestUntil('vda in the guest', 'cat /sys/block/vda/size 2>/dev/null || echo none', (o) => o === String((16 * MiB) / 512));
    numbers.attachToGuestMs = Date.now() - t0;
    expect(definition().disks).toEqual([{ id: 'data', storage: 'ceph1', volume: 'hot0' }]);
    expect(fs.readdirSync(path.join(h.dir, 'run/vms', VM)).filter((f) => f.endsWith('.key'))).toEqual([]);
    const w = await sh("printf 'HOT-RBD!' | dd of=/dev/vda bs=8 count=1 conv=fsync 2>/dev/null; echo rc=$?");
    expect(w).toContain('rc=0');
    const out = path.join(c!.dir, 'hot0.raw');
    await c!.rbd('export', `${c!.pool}/hot0`, out);
    expect(fs.readFileSync(out).subarray(0, 8).toString()).toBe('HOT-RBD!');
    const st = JSON.parse(await c!.rbd('status', '--format', 'json', `${c!.pool}/hot0`)) as { watchers: unknown[] };
    expect(st.watchers.length).toBe(1);

    const t1 = Date.now();
    const d = JSON.parse(await ok(['--json', 'detach-disk', VM, 'data', '--live'])) as { live: boolean };
    numbers.detachCliMs = Date.now() - t1;
    expect(d.live).toBe(true);
    await guestUntil('vda gone', 'ls /sys/block', (o) => !o.includes('vda'));
    expect(definition().disks ?? []).toEqual([]);
    const st2 = JSON.parse(await c!.rbd('status', '--format', 'json', `${c!.pool}/hot0`)) as { watchers: unknown[] };
    expect(st2.watchers.length).toBe(0);
  }, 240_000);

  it('a second attach reuses the secret object QEMU already has; an IDE volume disk is refused live and nothing changes', async () => {
    const again = JSON.parse(await ok(['--json', 'attach-disk', VM, '--volume', 'ceph1/hot0', '--id', 'data2', '--live'])) as { live: boolean };
    expect(again.live).toBe(true);
    await guestUntil('vda back', 'ls /sys/block', (o) => o.includes('vda'));
    await ok(['detach-disk', VM, 'data2', '--live']);
    await guestUntil('vda gone again', 'ls /sys/block', (o) => !o.includes('vda'));
    const before = fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8');
    const ide = await cli(['attach-disk', VM, '--volume', 'ceph1/hot0', '--interface', 'ide', '--live']);
    expect(ide.code).toBe(2);
    expect(ide.stderr).toMatch(/interface ide, which QEMU cannot hotplug/);
    expect(ide.stderr).toMatch(/virtio or scsi/);
    expect(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')).toBe(before);
    // Neither a file nor a volume, or both: a usage error.
    const none = await cli(['attach-disk', VM]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--volume STORAGE\/VOLUME/);
  }, 180_000);
});
