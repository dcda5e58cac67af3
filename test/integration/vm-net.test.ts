/**
 * VMs with NICs on kvmctl networks, through the real CLI, inside a namespace this test makes:
 * `start --netns` creates the VM's taps (and brings the bridge up), stop removes them, and after a
 * kill -9 of QEMU the next look (`status`) removes them too; macvtap gets the definition's MAC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, type Netns } from '../helpers/netns.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let ns: Netns;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const links = async () => (JSON.parse(await ns.ip('-json', 'link', 'show')) as { ifname: string; master?: string; address?: string; ifalias?: string }[]);

beforeAll(async () => {
  h = makeHome();
  ns = await createNetns();
  await ns.veth('up0', 'lan0');
  await h.apply(`kind: network
name: vbr0
type: bridge
uplinks: [up0]
---
kind: network
name: mv0
type: macvtap
parent: lan0
mode: bridge
---
name: nicvm
memory: 256M
kernel: { builtin: test-guest, append: "kvt.ip0=10.9.0.2/24 kvt.ip1=10.9.0.3/24" }
nics:
  - { network: vbr0 }
  - { network: mv0, mac: "52:54:00:12:34:56" }
`);
}, 60_000);
afterAll(async () => {
  await h?.cleanup();
  await ns?.destroy();
});

describe('VM NICs on kvmctl networks', () => {
  it('start makes a tap on the bridge and a macvtap with the definition MAC; stop removes both', async () => {
    const s = await h.cli(['start', 'nicvm', '--netns', ns.name, '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    const l = await links();
    const tap = l.find((x) => x.ifalias?.startsWith('kvmctl:vm=nicvm') && x.master === 'vbr0');
    const mv = l.find((x) => x.ifalias?.startsWith('kvmctl:vm=nicvm') && x.address === '52:54:00:12:34:56');
    expect(tap, JSON.stringify(l)).toBeDefined();
    expect(mv, JSON.stringify(l)).toBeDefined();
    // The guest sees the same MAC on its second NIC.
    const { serialExec } = await import('../../src/vm/serial-exec.js');
    const { resolvePaths } = await import('../../src/host/paths.js');
    const r = await serialExec(resolvePaths(h.env), 'nicvm', 'cat /sys/class/net/eth1/address');
    expect(r.output.trim()).toBe('52:54:00:12:34:56');
    // The metrics' NIC counters (the API's and /metrics' source) are the host side of the real tap:
    // 3 pings to an address on the bridge (inside this namespace) show up in them.
    const { MetricsSampler } = await import('../../src/vm/metrics.js');
    const sampler = new MetricsSampler(resolvePaths(h.env));
    const before = (await sampler.vm('nicvm'))!.net.find((n) => n.ifname === tap!.ifname)!;
    await ns.ip('addr', 'add', '10.9.0.1/24', 'dev', 'vbr0');
    const ping = await serialExec(resolvePaths(h.env), 'nicvm', 'ping -c 3 -W 3 10.9.0.1 >/dev/null && echo PING-OK || echo PING-FAIL', 30_000);
    expect(ping.output).toContain('PING-OK');
    const m = await sampler.vm('nicvm');
    expect(m?.net.map((n) => n.ifname).sort()).toEqual([tap!.ifname, mv!.ifname].sort());
    const after = m!.net.find((n) => n.ifname === tap!.ifname)!;
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(3); // echo requests from the guest
    expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(3); // replies to it
    expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(3 * 98); // 3 × an ICMP echo frame
    const stop = await h.cli(['stop', 'nicvm', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await links()).filter((x) => x.ifalias?.startsWith('kvmctl:vm=nicvm'))).toEqual([]);
  });

  it('after kill -9 of QEMU, status reports crashed and no tap or macvtap is left', async () => {
    const s = json((await h.cli(['start', 'nicvm', '--netns', ns.name, '--json'])).stdout);
    expect((await links()).filter((x) => x.ifalias?.startsWith('kvmctl:vm=nicvm'))).toHaveLength(2);
    process.kill(s.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    expect(json((await h.cli(['status', 'nicvm', '--json'])).stdout).state).toBe('crashed');
    expect((await links()).filter((x) => x.ifalias?.startsWith('kvmctl:vm=nicvm'))).toEqual([]);
    // The bridge and its uplink stay (they belong to the network, not the VM).
    expect((await links()).find((x) => x.ifname === 'up0')?.master).toBe('vbr0');
  });
});
