/**
 * RBD volumes against a real Ceph (test/helpers/ceph.ts: mon + mgr + memstore OSD in a namespace
 * of its own) with the real kvmctl CLI and the test guest under QEMU (TCG). QEMU and kvmctl's
 * rbd/qemu-img calls run in the cluster's namespace (KVMCTL_NETNS), as a host of the cluster would.
 * The test guest boots its kernel directly (no bootloader in it); its only disk is the RBD volume,
 * which it writes to with dd and reads back. What the guest wrote is checked from the cluster's
 * side too (`rbd export` as admin), so the data really went through librbd into the OSD.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const can = canRunCeph();
let c: Ceph | undefined;
let h: Home;
let paths: Paths;
const MiB = 2 ** 20;
const cli = async (args: string[]) => {
  const r = await h.cli(args, { env: { KVMCTL_NETNS: c!.netns.name } });
  return r;
};
const ok = async (args: string[]) => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};
const vmYaml = (name: string, volume: string) => `name: ${name}
memory: 128M
kernel: { builtin: test-guest }
disks:
  - storage: ceph1
    volume: ${volume}
stopTimeout: 10
`;
/** The guest's first 8 bytes of /dev/vda, and writes there (synced: conv=fsync reaches librbd as a flush). */
const readHead = async (vm: string) => (await serialExec(paths, vm, 'dd if=/dev/vda bs=8 count=1 2>/dev/null; echo')).output.trim();
const writeHead = async (vm: string, text: string) => {
  const r = await serialExec(paths, vm, `printf '${text}' | dd of=/dev/vda bs=8 count=1 conv=fsync 2>/dev/null; echo rc=$?`);
  expect(r.output).toContain('rc=0');
};
const sectors = async (vm: string) => Number((await serialExec(paths, vm, 'cat /sys/block/vda/size')).output.trim());
/** Every process's command line on the machine (the "process listing"). */
const allCmdlines = () =>
  fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  });

beforeAll(async () => {
  if (!can.ok) return;
  c = await startCeph();
  console.log(`ceph start: ${JSON.stringify(c.timings)} ms`);
  h = makeHome();
  paths = resolvePaths(h.env);
  const def = path.join(h.dir, 'ceph1.yaml');
  fs.writeFileSync(def, `kind: storage\nname: ceph1\ntype: rbd\npool: ${c.pool}\nmonitors: [${c.monitor}]\nuser: ${c.user}\nkeyring: ${c.keyring}\n`);
  await ok(['storage', 'define', '-f', def]);
}, 240_000);
afterAll(async () => {
  await h?.cleanup();
  await c?.stop();
}, 60_000);

describe.skipIf(!can.ok)(`RBD volumes on a real Ceph${can.ok ? '' : ` (skipped: ${can.why})`}`, () => {
  it('storage check: reachable from the namespace, writable, free space; unreachable from the root namespace', async () => {
    const r = JSON.parse(await ok(['--json', 'storage', 'check', 'ceph1'])) as { ok: boolean; free: number; checks: { check: string; ok: boolean }[] };
    expect(r.ok).toBe(true);
    expect(r.checks.map((x) => x.check)).toEqual(['keyring', 'monitors reachable', 'pool', 'write permission', 'free space']);
    expect(r.free).toBeGreaterThan(100 * MiB);
    // From the root namespace the monitor is unreachable: said so after the 15 s connect timeout, exit 1.
    const root = await h.cli(['storage', 'check', 'ceph1']);
    expect(root.code).toBe(1);
    expect(root.stdout).toMatch(/FAIL monitors reachable/);
  }, 90_000);

  it('a VM with an RBD volume as its disk boots and writes to it; the data is in the cluster', async () => {
    await ok(['volume', 'create', 'ceph1/web0', '32M']);
    const info = JSON.parse(await ok(['--json', 'volume', 'info', 'ceph1/web0'])) as { size: number; features: string[] };
    expect(info.size).toBe(32 * MiB);
    expect(info.features).toEqual(expect.arrayContaining(['layering', 'exclusive-lock']));
    await h.apply(vmYaml('web', 'web0'));
    const t0 = Date.now();
    const s = await ok(['start', 'web', '--wait-for-guest']);
    console.log(`boot with an RBD disk: ${Date.now() - t0} ms (CLI) — ${s.trim().split('\n')[0]}`);
    expect(await sectors('web')).toBe((32 * MiB) / 512);
    await writeHead('web', 'RBD-ONE!');
    expect(await readHead('web')).toBe('RBD-ONE!');
    // From the cluster's side: the bytes are in the image.
    const out = path.join(c!.dir, 'web0.raw');
    await c!.rbd('export', `${c!.pool}/web0`, out);
    expect(fs.readFileSync(out).subarray(0, 8).toString()).toBe('RBD-ONE!');
    // QEMU holds the image open (a watcher) and its exclusive lock.
    const st = JSON.parse(await c!.rbd('status', '--format', 'json', `${c!.pool}/web0`)) as { watchers: unknown[] };
    expect(st.watchers.length).toBe(1);
    const locks = JSON.parse(await c!.rbd('lock', 'ls', '--format', 'json', `${c!.pool}/web0`)) as unknown[];
    expect(locks.length).toBe(1);
  }, 180_000);

  it('the key is on no command line: not in cmdline, argv.json, any process listing; the key file is gone after start', async () => {
    const cmd = await ok(['cmdline', 'web']);
    expect(cmd).toContain('-object secret,id=sec-ceph1,file=');
    expect(cmd).toContain('"key-secret":"sec-ceph1"');
    expect(cmd).not.toContain(c!.key);
    expect(fs.readFileSync(path.join(h.dir, 'run/vms/web/argv.json'), 'utf8')).not.toContain(c!.key);
    expect(allCmdlines().filter((x) => x.includes(c!.key))).toEqual([]);
    expect(fs.existsSync(path.join(h.dir, 'run/vms/web/rbd-ceph1.key'))).toBe(false);
    // The stored definition names the keyring file, never the key.
    expect(await ok(['storage', 'show', 'ceph1'])).not.toContain(c!.key);
  });

  it('live resize: kvmctl volume resize goes through QEMU and the guest sees the new size', async () => {
    const r = await ok(['volume', 'resize', 'ceph1/web0', '48M']);
    expect(r).toContain('(live, in running VM "web"): 32 MiB → 48 MiB');
    expect(await sectors('web')).toBe((48 * MiB) / 512);
    const shrink = await cli(['volume', 'resize', 'ceph1/web0', '16M']);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toMatch(/--shrink/);
  }, 60_000);

  it('snapshot + rollback restores what the guest wrote (rollback refused while the VM runs)', async () => {
    await ok(['volume', 'snapshot', 'create', 'ceph1/web0@s1']);
    await writeHead('web', 'RBD-TWO!');
    expect(await readHead('web')).toBe('RBD-TWO!');
    const busy = await cli(['volume', 'snapshot', 'rollback', 'ceph1/web0@s1']);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/VOLUME_IN_USE/);
    await ok(['stop', 'web']);
    await ok(['volume', 'snapshot', 'rollback', 'ceph1/web0@s1']);
    await ok(['start', 'web', '--wait-for-guest']);
    expect(await readHead('web')).toBe('RBD-ONE!');
    // VM-level snapshots and backups of RBD disks: test/integration/ceph-backup.test.ts.
    const snaps = JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', 'ceph1/web0'])) as { name: string }[];
    expect(snaps.map((s) => s.name)).toEqual(['s1']);
  }, 180_000);

  it('a linked clone of the snapshot boots with the parent data and writes its own', async () => {
    await ok(['volume', 'clone', 'ceph1/web0@s1', 'ceph1/web1']);
    const info = JSON.parse(await ok(['--json', 'volume', 'info', 'ceph1/web1'])) as { parent: string };
    expect(info.parent).toBe('web0@s1');
    await h.apply(vmYaml('clone', 'web1'));
    await ok(['start', 'clone', '--wait-for-guest']);
    expect(await readHead('clone')).toBe('RBD-ONE!');
    await writeHead('clone', 'CLONE-1!');
    expect(await readHead('clone')).toBe('CLONE-1!');
    expect(await readHead('web')).toBe('RBD-ONE!'); // the parent VM's disk is its own
    // The snapshot is a parent now: removing it is refused.
    const snapRm = await cli(['volume', 'snapshot', 'rm', 'ceph1/web0@s1']);
    expect(snapRm.code).toBe(2);
    expect(snapRm.stderr).toMatch(/SNAPSHOT_HAS_CLONES/);
    await ok(['stop', 'clone']);
  }, 180_000);

  it('rm is refused while a VM names the volume; export → import round-trips the data', async () => {
    const rm = await cli(['volume', 'rm', 'ceph1/web1']);
    expect(rm.code).toBe(2);
    expect(rm.stderr).toMatch(/VOLUME_IN_USE.*clone/);
    const q = path.join(h.images, 'web1.qcow2');
    await ok(['volume', 'export', '-q', 'ceph1/web1', q]);
    const outside = await cli(['volume', 'export', '-q', 'ceph1/web1', '/tmp/kvmctl-outside.qcow2']);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/PATH_OUTSIDE_ROOTS/);
    expect(fs.existsSync('/tmp/kvmctl-outside.qcow2')).toBe(false);
    await ok(['volume', 'import', '-q', q, 'ceph1/web2']);
    const back = path.join(c!.dir, 'web2.raw');
    await c!.rbd('export', `${c!.pool}/web2`, back);
    expect(fs.readFileSync(back).subarray(0, 8).toString()).toBe('CLONE-1!');
    await ok(['rm', 'clone']);
    await ok(['volume', 'rm', 'ceph1/web1']);
    await ok(['volume', 'rm', 'ceph1/web2']);
    const left = (JSON.parse(await ok(['--json', 'volume', 'list', 'ceph1'])) as { volume: string }[]).map((v) => v.volume);
    expect(left).not.toContain('web1');
    expect(left).toContain('web0');
  }, 180_000);
});
