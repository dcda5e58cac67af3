/**
 * Hotplug of disks and NICs into a running VM (src/vm/devices.ts, src/vm/device-hotplug.ts) through the
 * real CLI, the test guest under real QEMU (TCG, q35 with its spare PCIe root ports) in a network
 * namespace this file creates and deletes: a disk attached live is a new /dev/vdX in the guest and
 * goes away when detached; a NIC attached live is a new ethN with the definition's MAC and a tap
 * in the namespace, both gone when detached; a hotplug that fails half-way is undone (the block
 * node, the netdev, the tap) and leaves the definition as it was; a device of the command line on
 * q35's root bus cannot be unplugged, so auto mode changes the definition only and says why.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { run } from '../../src/host/exec.js';
import { resolvePaths, vmRuntimeFiles, type Paths } from '../../src/host/paths.js';
import { vmLinkName } from '../../src/net/tap.js';
import { qmpOnce } from '../../src/vm/qmp-once.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const can = canUseNetns().ok && canBootGuest();
const VM = 'hp';
let h: Home;
let paths: Paths;
let ns: Netns;
const MiB = 1024 * 1024;

const cli = (args: string[]) => h.cli(args, { env: { KVMCTL_NETNS: ns.name }, timeoutMs: 150_000 });
const sh = async (cmd: string) => (await serialExec(paths, VM, cmd, 60_000)).output.trim();
/** Poll the guest until `cmd`'s output satisfies `ok` (hotplug is asynchronous in the guest). */
async function guestUntil(what: string, cmd: string, ok: (out: string) => boolean, ms = 90_000): Promise<string> {
  const end = Date.now() + ms;
  let out = '';
  while (Date.now() < end) {
    out = await sh(cmd);
    if (ok(out)) return out;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: not within ${ms} ms; last output: ${out}`);
}
const definition = () => parse(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')) as { disks?: { file: string }[]; nics?: { network?: string }[] };
const qmp = (cmd: string, args?: Record<string, unknown>) => qmpOnce(vmRuntimeFiles(paths, VM).qmp, cmd, args, 30_000);
const links = async () => (JSON.parse(await ns.ip('-json', 'link')) as { ifname: string }[]).map((l) => l.ifname);

describe.skipIf(!can)('hotplug into a running VM', () => {
  beforeAll(async () => {
    ns = await createNetns();
    h = makeHome();
    paths = resolvePaths(h.env);
    await run(['qemu-img', 'create', '-f', 'qcow2', path.join(h.images, 'data.qcow2'), '8M']);
    await run(['qemu-img', 'create', '-f', 'raw', path.join(h.images, 'more.raw'), '4M']);
    fs.writeFileSync(path.join(h.images, 'broken.qcow2'), 'not an image at all');
    await h.apply(`kind: network
name: hplan
type: host-only
addresses: [10.213.7.1/24]
---
name: ${VM}
memory: 160M
machine: { type: q35, hotplugSlots: 3 }
kernel: { builtin: test-guest }
disks:
  - file: root.qcow2
    create: { size: 16M }
nics: [{ network: hplan }]
stopTimeout: 10
`);
    const s = await cli(['start', VM, '--wait-for-guest']);
    expect(s.code, s.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await h?.cleanup();
    await ns?.destroy();
  });

  it('attaches a disk live: the guest sees a new /dev/vdb of its size; the definition has it for the next start', async () => {
    expect(await sh('ls /sys/block | grep vd | tr "\\n" " "')).toBe('vda');
    const r = await cli(['attach-disk', VM, 'data.qcow2', '--live', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { id: string; live: boolean; bus: string; device: string };
    expect(out).toMatchObject({ id: 'disk1', live: true, device: 'disk1-blk' });
    expect(out.bus).toMatch(/^kvhp[0-2]$/);
    await guestUntil('vdb appears', 'cat /sys/block/vdb/size 2>/dev/null || echo none', (o) => o === String((8 * MiB) / 512));
    // The guest can write to it.
    expect(await sh('echo hotplugged | dd of=/dev/vdb bs=512 count=1 conv=sync 2>/dev/null && dd if=/dev/vdb bs=10 count=1 2>/dev/null')).toBe('hotplugged');
    expect(definition().disks!.map((d) => d.file)).toEqual(['root.qcow2', 'data.qcow2']);
  }, 180_000);

  it('undoes a disk hotplug that fails after blockdev-add (no SCSI controller): no block node left, definition unchanged', async () => {
    const before = fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8');
    const r = await cli(['attach-disk', VM, 'more.raw', '--interface', 'scsi', '--live']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HOTPLUG_IMPOSSIBLE.*SCSI controller/);
    const nodes = (await qmp('query-named-block-nodes', { flat: true })) as { 'node-name': string }[];
    expect(nodes.map((n) => n['node-name'])).not.toContain('disk2');
    expect(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')).toBe(before);
    // An image QEMU cannot open: refused by QEMU, nothing changed.
    const bad = await cli(['attach-disk', VM, 'broken.qcow2', '--live']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/blockdev-add/);
    expect(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')).toBe(before);
  }, 120_000);

  it('detaches the hotplugged disk live: /dev/vdb is gone from the guest and from the definition', async () => {
    const r = await cli(['detach-disk', VM, 'disk1', '--live']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/detached disk disk1 live/);
    await guestUntil('vdb disappears', 'ls /sys/block | grep vd | tr "\\n" " "', (o) => o === 'vda');
    expect(definition().disks!.map((d) => d.file)).toEqual(['root.qcow2']);
    const blocks = (await qmp('query-block')) as { inserted?: { file: string } }[];
    expect(blocks.some((b) => b.inserted?.file.endsWith('data.qcow2'))).toBe(false);
  }, 180_000);

  it('undoes a NIC hotplug whose device_add fails: the tap and the netdev are removed, the definition unchanged', async () => {
    // Take the device id the new NIC would get (net1-dev) with another device on a spare port.
    await qmp('device_add', { driver: 'virtio-rng-pci', id: 'net1-dev', bus: 'kvhp0' });
    const before = fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8');
    const linksBefore = await links();
    const r = await cli(['attach-nic', VM, '--network', 'hplan', '--live']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Duplicate|net1-dev/i);
    expect(await links()).toEqual(linksBefore);
    expect(String(await qmp('human-monitor-command', { 'command-line': 'info network' }))).not.toMatch(/\bnet1:/);
    expect(fs.readFileSync(path.join(paths.config, 'vms', `${VM}.yaml`), 'utf8')).toBe(before);
    const gone = (await import('../../src/qmp/client.js')).QmpClient.connect(vmRuntimeFiles(paths, VM).qmp);
    const c = await gone;
    const deleted = c.waitForEvent('DEVICE_DELETED', { timeoutMs: 90_000, predicate: (e) => e.data.device === 'net1-dev' });
    await c.execute('device_del', { id: 'net1-dev' });
    await deleted;
    await c.close();
  }, 180_000);

  it("attaches a NIC live: the guest gets eth1 with the definition's MAC, its tap is in the namespace on the bridge; detaching removes both", async () => {
    const r = await cli(['attach-nic', VM, '--network', 'hplan', '--live', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'net1', live: true, device: 'net1-dev' });
    const mac = (await qmp('qom-get', { path: '/machine/peripheral/net1-dev', property: 'mac' })) as string;
    await guestUntil('eth1 appears', 'cat /sys/class/net/eth1/address 2>/dev/null || echo none', (o) => o === mac);
    const tap = vmLinkName(VM, 1, 'tap');
    const l = JSON.parse(await ns.ip('-json', 'link', 'show', tap)) as { master?: string }[];
    expect(l[0]!.master).toBeTruthy();
    expect(definition().nics).toHaveLength(2);
    const d = await cli(['detach-nic', VM, 'net1', '--live']);
    expect(d.code, d.stderr).toBe(0);
    await guestUntil('eth1 disappears', 'ls /sys/class/net | tr "\\n" " "', (o) => !o.includes('eth1'));
    expect(await links()).not.toContain(tap);
    expect(definition().nics).toHaveLength(1);
  }, 240_000);

  it("auto mode: a disk of the command line (on q35's root bus) changes in the definition only, and the answer says why", async () => {
    const r = await cli(['detach-disk', VM, 'disk0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { live: boolean; why?: string; pendingRestart: boolean };
    expect(out.live).toBe(false);
    expect(out.pendingRestart).toBe(true);
    expect(out.why).toMatch(/cannot be unplugged|hotplug/);
    expect(await sh('ls /sys/block | grep vd | tr "\\n" " "')).toBe('vda');
    expect(definition().disks).toBeUndefined();
    // --live refuses the same, changing nothing.
    const live = await cli(['attach-disk', VM, 'root.qcow2', '--config']);
    expect(live.code, live.stderr).toBe(0);
    const refused = await cli(['detach-disk', VM, 'disk0', '--live']);
    expect(refused.code).toBe(2);
    expect(definition().disks!.map((d) => d.file)).toEqual(['root.qcow2']);
  }, 120_000);

  it('a disk and a NIC attached live are there at the next cold start', async () => {
    expect((await cli(['attach-disk', VM, 'data.qcow2'])).code).toBe(0);
    expect((await cli(['attach-nic', VM, '--network', 'hplan'])).code).toBe(0);
    await guestUntil('vdb and eth1', 'ls /sys/block /sys/class/net | grep -E "^(vd|eth)" | tr "\\n" " "', (o) => o === 'vda vdb eth0 eth1');
    const st = await cli(['stop', VM]);
    expect(st.code, st.stderr).toBe(0);
    const r = await cli(['start', VM, '--wait-for-guest']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sh('ls /sys/block /sys/class/net | grep -E "^(vd|eth)" | tr "\\n" " "')).toBe('vda vdb eth0 eth1');
  }, 240_000);
});
