/** NIC attach/release for real (taps on a bridge, macvtap over a veth parent), in a namespace. */
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TCG_HOST_FACTS } from '../../src/host/facts.js';
import { resolvePaths, vmRunDir, type Paths } from '../../src/host/paths.js';
import { deriveMac, plannedAttachments, prepareNics, releaseNics } from '../../src/net/attach.js';
import { gcLinks } from '../../src/net/gc.js';
import { withVmLock } from '../../src/vm/lock.js';
import { getLink, listLinks } from '../../src/net/ip.js';
import { makedev, tapDevOf } from '../../src/net/macvtap.js';
import { vmLinkName } from '../../src/net/tap.js';
import { networkSchema, type NetworkSpec } from '../../src/definition/network.js';
import { vmSchema } from '../../src/definition/vm.js';
import { canUseNetns, createNetns, tempHome, type Netns } from '../helpers/netns.js';

const can = canUseNetns();
const nets = (...xs: object[]) => new Map<string, NetworkSpec>(xs.map((x) => networkSchema.parse({ kind: 'network', ...x })).map((n) => [n.name, n]));

describe.skipIf(!can.ok)('prepareNics / releaseNics in a namespace', () => {
  let ns: Netns;
  let paths: Paths;
  beforeEach(async () => {
    ns = await createNetns();
    paths = resolvePaths({ KVMCTL_HOME: tempHome() });
  });
  afterEach(async () => {
    await ns.destroy();
  });

  it('bridge NIC: brings the network up, makes the VM tap owned by runAs, marked, enslaved; release removes it', async () => {
    const n = nets({ name: 'lan', type: 'host-only', addresses: ['10.7.0.1/24'] });
    const vm = vmSchema.parse({ name: 'web', nics: [{ network: 'lan' }, { user: true }] });
    const t0 = performance.now();
    const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n, runAs: { uid: 1000, gid: 1000 } });
    const ms = performance.now() - t0;
    const tap = vmLinkName('web', 0, 'tap');
    expect(p.attachments).toEqual([{ kind: 'tap', ifname: tap, vhost: false }, { kind: 'user', forwards: [] }]);
    expect(p.attachments).toEqual(plannedAttachments(vm, n, TCG_HOST_FACTS));
    expect(p.macs).toEqual([deriveMac('web', 'net0'), deriveMac('web', 'net1')]);
    expect(p.fds).toEqual([]);
    const l = await getLink(tap, { netns: ns.name });
    expect(l?.master).toBe('lan');
    expect(l?.ifalias).toBe('kvmctl:vm=web,nic=net0');
    expect(l?.linkinfo?.info_data?.user).toBeDefined();
    expect(fs.existsSync(`${vmRunDir(paths, 'web')}/nics.json`)).toBe(true);
    await p.release();
    await p.release(); // idempotent
    expect(await getLink(tap, { netns: ns.name })).toBeUndefined();
    expect(await getLink('lan', { netns: ns.name })).toBeDefined(); // the network stays up
    console.log(`prepareNics (network up + tap): ${ms.toFixed(0)} ms`);
  });

  it('static tap: must exist (QEMU would silently make a throw-away one)', async () => {
    const vm = vmSchema.parse({ name: 'exam', nics: [{ tap: 'tap0', mac: '52:54:00:87:92:31', vhost: 'on' }] });
    await expect(prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: new Map() })).rejects.toMatchObject({ code: 'TAP_NOT_FOUND' });
    await ns.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
    const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: new Map() });
    expect(p.attachments).toEqual([{ kind: 'tap', ifname: 'tap0', vhost: false }]);
    expect(p.warnings.join('\n')).toMatch(/vhost-net is missing/);
    await p.release();
    expect(await getLink('tap0', { netns: ns.name })).toBeDefined(); // not ours: left alone
  });

  it('macvtap over a veth parent: /dev node by major:minor, fd opened, MAC set from the definition', async () => {
    await ns.veth('eth1', 'peer1');
    const n = nets({ name: 'mv', type: 'macvtap', parent: 'eth1', mode: 'bridge' });
    const vm = vmSchema.parse({ name: 'mvm', nics: [{ network: 'mv', mac: '52:54:00:aa:bb:01' }, { network: 'mv' }] });
    const t0 = performance.now();
    const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n });
    const ms = performance.now() - t0;
    expect(p.attachments).toEqual([
      { kind: 'fd', fd: 3, vhost: false, mac: '52:54:00:aa:bb:01' },
      { kind: 'fd', fd: 4, vhost: false, mac: deriveMac('mvm', 'net1') },
    ]);
    expect(p.attachments).toEqual(plannedAttachments(vm, n, TCG_HOST_FACTS));
    expect(p.fds).toHaveLength(2);
    for (const [i, fd] of p.fds.entries()) {
      const name = vmLinkName('mvm', i, 'macvtap');
      const dev = await tapDevOf(name, { netns: ns.name });
      expect(fs.fstatSync(fd).rdev).toBe(makedev(dev.major, dev.minor));
      expect((await getLink(name, { netns: ns.name }))?.address).toBe(p.macs[i]);
    }
    p.closeFds();
    await p.release();
    for (const i of [0, 1]) expect(await getLink(vmLinkName('mvm', i, 'macvtap'), { netns: ns.name })).toBeUndefined();
    console.log(`prepareNics (2 macvtaps, open fds): ${ms.toFixed(0)} ms`);
  });

  it('a macvtap named by the VM whose MAC differs from the definition: MAC_MISMATCH; without mac: its MAC is used', async () => {
    await ns.veth('eth1', 'peer1');
    await ns.ip('link', 'add', 'link', 'eth1', 'name', 'macvtap0', 'address', '52:54:00:00:00:99', 'type', 'macvtap', 'mode', 'bridge');
    const bad = vmSchema.parse({ name: 'm1', nics: [{ tap: 'macvtap0', mac: '52:54:00:00:00:01' }] });
    await expect(prepareNics(bad, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: new Map() })).rejects.toMatchObject({ code: 'MAC_MISMATCH' });
    const ok = vmSchema.parse({ name: 'm1', nics: [{ tap: 'macvtap0' }] });
    const p = await prepareNics(ok, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: new Map() });
    expect(p.attachments).toEqual([{ kind: 'fd', fd: 3, vhost: false, mac: '52:54:00:00:00:99' }]);
    expect(p.macs).toEqual(['52:54:00:00:00:99']);
    await p.release();
    expect(await getLink('macvtap0', { netns: ns.name })).toBeDefined(); // named, not created: kept
  });

  it('a half-done prepare is undone: second NIC fails → first NIC tap is gone', async () => {
    const n = nets({ name: 'lan', type: 'host-only', addresses: ['10.7.0.1/24'] });
    const vm = vmSchema.parse({ name: 'half', nics: [{ network: 'lan' }, { tap: 'missing0' }] });
    await expect(prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n })).rejects.toMatchObject({ code: 'TAP_NOT_FOUND' });
    expect((await listLinks({ netns: ns.name })).filter((l) => l.ifalias?.startsWith('kvmctl:vm='))).toEqual([]);
  });

  it('releaseNics after a crash finds the VM links by record and alias', async () => {
    const n = nets({ name: 'lan', type: 'host-only', addresses: ['10.7.0.1/24'] });
    const vm = vmSchema.parse({ name: 'crash', nics: [{ network: 'lan' }] });
    const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n });
    expect(p.attachments[0]?.kind).toBe('tap');
    await releaseNics('crash', paths); // netns comes from the record
    expect(await getLink(vmLinkName('crash', 0, 'tap'), { netns: ns.name })).toBeUndefined();
    await releaseNics('crash', paths, { netns: ns.name }); // idempotent
  });

  it('gc after a fake crash removes the kvmctl tap of a VM that is not running, never a foreign tap', async () => {
    await ns.ip('tuntap', 'add', 'dev', 'kvdead0', 'mode', 'tap');
    await ns.ip('link', 'set', 'dev', 'kvdead0', 'alias', 'kvmctl:vm=ghost,nic=net0');
    await ns.ip('tuntap', 'add', 'dev', 'foreign0', 'mode', 'tap');
    await ns.ip('tuntap', 'add', 'dev', 'kvlive0', 'mode', 'tap');
    await ns.ip('link', 'set', 'dev', 'kvlive0', 'alias', 'kvmctl:vm=alive,nic=net0');
    // "alive" runs: its pidfile holds this test process's PID.
    fs.mkdirSync(vmRunDir(paths, 'alive'), { recursive: true });
    fs.writeFileSync(`${vmRunDir(paths, 'alive')}/qemu.pid`, String(process.pid));
    const r = await gcLinks({ paths, netns: ns.name });
    expect(r.removed.map((x) => x.ifname)).toEqual(['kvdead0']);
    expect(r.kept.map((x) => x.ifname)).toEqual(['kvlive0']);
    expect(await getLink('kvdead0', { netns: ns.name })).toBeUndefined();
    expect(await getLink('foreign0', { netns: ns.name })).toBeDefined();
  });

  it('gc leaves the taps of a VM being started (its lock held, no pidfile yet) alone', async () => {
    // CI saw it: demo-b's start ran gc while demo-a's start had made its taps but not yet its QEMU;
    // gc took demo-a's br0 tap, and QEMU then made a bare tap of that name on no bridge.
    const n = nets({ name: 'lan', type: 'host-only', addresses: ['10.7.0.1/24'] });
    const vm = vmSchema.parse({ name: 'starting', nics: [{ network: 'lan' }] });
    const tap = vmLinkName('starting', 0, 'tap');
    await withVmLock(paths, 'starting', async () => {
      await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n });
      const r = await gcLinks({ paths, netns: ns.name });
      expect(r.removed).toEqual([]);
      expect(r.kept.map((x) => x.ifname)).toEqual([tap]);
      expect((await getLink(tap, { netns: ns.name }))?.master).toBe('lan');
    });
    // Lock released and still no QEMU: now it is a leftover.
    const r = await gcLinks({ paths, netns: ns.name });
    expect(r.removed.map((x) => x.ifname)).toEqual([tap]);
  });

  it('two VMs starting at once on a network not yet up: one bridge, both taps on it', async () => {
    const n = nets({ name: 'lan', type: 'host-only', addresses: ['10.7.0.1/24'] });
    const vms = ['one', 'two', 'three'].map((name) => vmSchema.parse({ name, nics: [{ network: 'lan' }] }));
    const ps = await Promise.all(vms.map((vm) => prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n })));
    expect(ps.map((p) => p.attachments[0]?.kind)).toEqual(['tap', 'tap', 'tap']);
    for (const vm of vms) expect((await getLink(vmLinkName(vm.name, 0, 'tap'), { netns: ns.name }))?.master).toBe('lan');
  });

  it('two namespaces, same macvtap ifindex: the second gets a private node with the right major:minor', async () => {
    const other = await createNetns();
    try {
      for (const x of [other, ns]) {
        await x.veth('eth1', 'peer1');
        await x.ip('link', 'add', 'link', 'eth1', 'name', 'mvx', 'type', 'macvtap', 'mode', 'bridge');
      }
      const a = await tapDevOf('mvx', { netns: other.name });
      const b = await tapDevOf('mvx', { netns: ns.name });
      expect(a.ifindex).toBe(b.ifindex); // same /dev/tapN name…
      expect(a.rdev).not.toBe(b.rdev); // …for two different devices
      const vm = vmSchema.parse({ name: 'twin', nics: [{ tap: 'mvx' }] });
      const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: new Map() });
      expect(fs.fstatSync(p.fds[0]!).rdev).toBe(b.rdev);
      const rec = JSON.parse(fs.readFileSync(`${vmRunDir(paths, 'twin')}/nics.json`, 'utf8')) as { nodes: string[] };
      expect(rec.nodes).toHaveLength(1);
      expect(rec.nodes[0]!.startsWith(vmRunDir(paths, 'twin'))).toBe(true);
      await p.release();
      expect(fs.existsSync(rec.nodes[0]!)).toBe(false);
    } finally {
      await other.destroy();
    }
  });
});
