/**
 * Real guests on kvmctl networks, each test in its own namespace: two guests on one bridge ping
 * each other; two guests on macvtap (bridge mode) over a veth parent ping each other with the
 * /dev/tapN fds handed over from Node at spawn; the seed's exam_vm layout (br0 over a veth
 * standing in for eth1 + host-only br_local0) end to end; host-only reaches the host only.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TCG_HOST_FACTS } from '../../src/host/facts.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { prepareNics, type PreparedNics } from '../../src/net/attach.js';
import { listLinks } from '../../src/net/ip.js';
import { netUp } from '../../src/net/networks.js';
import type { NicAttachment } from '../../src/qemu/attachments.js';
import { networkSchema, type NetworkSpec } from '../../src/definition/network.js';
import { vmSchema, type VmInput } from '../../src/definition/vm.js';
import { bootGuest, canBootGuest, guestFiles, type GuestVm } from '../helpers/guest-vm.js';
import { canUseNetns, createNetns, tempHome, type Netns } from '../helpers/netns.js';

const can = canUseNetns().ok && canBootGuest();
const nets = (...xs: object[]) => new Map<string, NetworkSpec>(xs.map((x) => networkSchema.parse({ kind: 'network', ...x })).map((n) => [n.name, n]));

/** QEMU -netdev/-device for prepared attachments (the argv builder does this for real VMs). */
function netArgs(atts: NicAttachment[], macs: string[]): string[] {
  return atts.flatMap((a, i) => {
    const nd = a.kind === 'tap' ? `tap,id=n${i},ifname=${a.ifname},script=no,downscript=no,vhost=off` : a.kind === 'fd' ? `tap,id=n${i},fd=${a.fd},vhost=off` : `user,id=n${i}`;
    return ['-netdev', nd, '-device', `virtio-net-pci,netdev=n${i},mac=${a.kind === 'fd' ? a.mac : macs[i]}`];
  });
}

describe.skipIf(!can)('guests on kvmctl networks (real QEMU, TCG, in a namespace)', () => {
  let ns: Netns;
  let paths: Paths;
  const vms: GuestVm[] = [];
  const prepared: PreparedNics[] = [];
  beforeEach(async () => {
    ns = await createNetns();
    paths = resolvePaths({ KVMCTL_HOME: tempHome() });
    await guestFiles(paths);
  }, 600_000);
  afterEach(async () => {
    for (const v of vms.splice(0)) await v.kill();
    for (const p of prepared.splice(0)) await p.release();
    await ns.destroy();
  });

  async function start(vmIn: VmInput, n: Map<string, NetworkSpec>, append: string): Promise<GuestVm> {
    const vm = vmSchema.parse(vmIn);
    const p = await prepareNics(vm, { paths, facts: TCG_HOST_FACTS, netns: ns.name, nets: n });
    prepared.push(p);
    const g = await bootGuest({ paths, netns: ns.name, append, netArgs: netArgs(p.attachments, p.macs), fds: p.fds });
    p.closeFds(); // QEMU holds its own copies now
    vms.push(g);
    return g;
  }

  it('two guests on one bridge ping each other; kill -9 + release leaves no tap', async () => {
    await ns.ip('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'peer1');
    const n = nets({ name: 'br0', type: 'bridge', uplinks: ['eth1'] });
    const a = await start({ name: 'ga', nics: [{ network: 'br0' }] }, n, 'kvt.ip0=10.0.0.2/24 kvt.hostname=ga');
    const b = await start({ name: 'gb', nics: [{ network: 'br0' }] }, n, 'kvt.ip0=10.0.0.3/24 kvt.hostname=gb');
    const [ra, rb] = await Promise.all([a.ready, b.ready]);
    console.log(`bridge guests ready in ${ra.toFixed(0)} / ${rb.toFixed(0)} ms`);
    const out = await a.sh('ping -c 3 -W 3 10.0.0.3 >/dev/null && echo PING-OK || echo PING-FAIL', 40_000);
    expect(out).toContain('PING-OK');
    expect(await b.sh('ping -c 2 -W 3 10.0.0.2 >/dev/null && echo PING-OK || echo PING-FAIL', 40_000)).toContain('PING-OK');
    for (const v of vms.splice(0)) await v.kill(); // kill -9
    for (const p of prepared.splice(0)) await p.release();
    expect((await listLinks({ netns: ns.name })).filter((l) => l.ifalias?.startsWith('kvmctl:vm='))).toEqual([]);
  }, 180_000);

  it('two guests on macvtap (bridge mode) over a veth parent ping each other, fds passed at spawn', async () => {
    await ns.veth('eth1', 'peer1');
    const n = nets({ name: 'mv', type: 'macvtap', parent: 'eth1', mode: 'bridge' });
    const a = await start({ name: 'ma', nics: [{ network: 'mv', mac: '52:54:00:12:34:01' }] }, n, 'kvt.ip0=10.0.1.2/24');
    const b = await start({ name: 'mb', nics: [{ network: 'mv' }] }, n, 'kvt.ip0=10.0.1.3/24');
    await Promise.all([a.ready, b.ready]);
    expect(await a.sh('cat /sys/class/net/eth0/address')).toBe('52:54:00:12:34:01');
    const out = await a.sh('ping -c 3 -W 3 10.0.1.3 >/dev/null && echo PING-OK || echo PING-FAIL', 40_000);
    expect(out).toContain('PING-OK');
  }, 180_000);

  it("the seed's exam_vm layout: br0 over a veth standing in for eth1 + host-only br_local0 on static taps; host-only reaches the host only", async () => {
    const lan = await createNetns(); // "the physical LAN" behind eth1
    try {
      await ns.ip('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', lan.name);
      await lan.ip('addr', 'add', '10.20.0.9/24', 'dev', 'lan0');
      await lan.ip('link', 'set', 'lan0', 'up');
      // an address outside: reachable only if the host forwarded (it must not)
      await ns.ip('link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'out1', 'netns', lan.name);
      await ns.ip('addr', 'add', '10.55.0.1/24', 'dev', 'out0');
      await ns.ip('link', 'set', 'out0', 'up');
      await lan.ip('addr', 'add', '10.55.0.2/24', 'dev', 'out1');
      await lan.ip('link', 'set', 'out1', 'up');
      await lan.ip('route', 'add', '192.168.1.0/24', 'via', '10.55.0.1');
      const n = nets(
        { name: 'br0', type: 'bridge', uplinks: ['eth1'], taps: ['tap0'], forwardDelay: 0, helloTime: 10 },
        { name: 'br_local0', type: 'host-only', addresses: ['192.168.1.1/24'], taps: ['tap_local0'], forwardDelay: 0, helloTime: 10 },
      );
      for (const x of n.values()) await netUp(x, { paths, netns: ns.name });
      const g = await start(
        { name: 'exam_vm', nics: [{ id: 'net0', tap: 'tap0', mac: '52:54:00:87:92:31', vhost: 'on' }, { id: 'net1', tap: 'tap_local0', mac: '52:54:00:87:92:32', vhost: 'on' }] },
        n,
        'kvt.ip0=10.20.0.2/24 kvt.ip1=192.168.1.2/24 kvt.gw=192.168.1.1',
      );
      await g.ready;
      expect(await g.sh('ping -c 2 -W 3 10.20.0.9 >/dev/null && echo LAN-OK || echo LAN-FAIL', 40_000)).toContain('LAN-OK');
      expect(await g.sh('ping -c 2 -W 3 192.168.1.1 >/dev/null && echo HOST-OK || echo HOST-FAIL', 40_000)).toContain('HOST-OK');
      expect(await g.sh('ping -c 2 -W 2 10.55.0.2 >/dev/null && echo FWD-OK || echo FWD-BLOCKED', 40_000)).toContain('FWD-BLOCKED');
    } finally {
      await lan.destroy();
    }
  }, 180_000);
});
