/** Pure parts of the network layer: schema cross-checks, safety checks, names, MACs, planning. */
import { describe, expect, it } from 'vitest';
import { KVM_HOST_FACTS, TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { deriveMac, plannedAttachments } from '../../../src/net/attach.js';
import { bridgeAddArgs } from '../../../src/net/bridge.js';
import { cidrOverlap, parsePrefix } from '../../../src/net/cidr.js';
import { ownerAlias, parseOwner } from '../../../src/net/ip.js';
import { makedev } from '../../../src/net/macvtap.js';
import { vmLinkName } from '../../../src/net/tap.js';
import { networkSetIssues } from '../../../src/net/validate.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { networkSchema, type NetworkSpec } from '../../../src/definition/network.js';
import { vmSchema } from '../../../src/definition/vm.js';

const N = (x: object) => networkSchema.parse({ kind: 'network', ...x });
const issuesOf = (x: object) => parseDefinitions(JSON.stringify({ kind: 'network', ...x }), 'n.yaml')[0]!.issues;

describe('network schema', () => {
  it('a long network name needs interface: (15-character limit)', () => {
    expect(issuesOf({ name: 'a-very-long-bridge-name', type: 'bridge' })).toEqual([
      { path: 'interface', message: expect.stringMatching(/"a-very-long-bridge-name".*at most 15 characters/) },
    ]);
    expect(issuesOf({ name: 'a-very-long-bridge-name', type: 'bridge', interface: 'brlong' })).toEqual([]);
    expect(issuesOf({ name: 'a-very-long-macvtap-network', type: 'macvtap', parent: 'eth1' })).toEqual([]);
  });
  it('rejects an uplink listed twice, the bridge as its own port, STP with a too short forward delay', () => {
    const msgs = issuesOf({ name: 'br0', type: 'bridge', uplinks: ['eth1', 'eth1', 'br0'], taps: ['eth1'], stp: true, forwardDelay: 0 }).map((i) => `${i.path}: ${i.message}`);
    expect(msgs).toEqual([
      'uplinks: "eth1" is listed twice (also in uplinks)',
      'uplinks: "br0" is the bridge itself',
      'taps: "eth1" is listed twice (also in uplinks)',
      'forwardDelay: with stp: true the kernel needs a forwardDelay of 2–30 seconds, got 0',
    ]);
  });
  it('unknown keys get a did-you-mean, host-only needs an address', () => {
    expect(issuesOf({ name: 'b', type: 'bridge', uplink: ['eth1'] })[0]?.message).toMatch(/did you mean "uplinks"/);
    expect(issuesOf({ name: 'h', type: 'host-only', addresses: [] })[0]).toEqual({ path: 'addresses', message: expect.stringMatching(/at least 1/) });
  });
  it('bridge timers go to ip in centiseconds', () => {
    expect(bridgeAddArgs(N({ name: 'br0', type: 'bridge', forwardDelay: 4, helloTime: 2, stp: true, igmpSnooping: false }) as never)).toEqual(
      ['link', 'add', 'name', 'br0', 'type', 'bridge', 'stp_state', '1', 'forward_delay', '400', 'hello_time', '200', 'mcast_snooping', '0'],
    );
  });
});

describe('cross-network safety checks', () => {
  it('duplicate names, an interface claimed twice, overlapping addresses, a bridge port used as macvtap parent', () => {
    const nets: NetworkSpec[] = [
      N({ name: 'a', type: 'host-only', addresses: ['192.168.1.1/24'], taps: ['tap0'] }),
      N({ name: 'b', type: 'host-only', addresses: ['192.168.1.129/25'] }),
      N({ name: 'c', type: 'bridge', uplinks: ['eth1'], taps: ['tap0'] }),
      N({ name: 'd', type: 'bridge', interface: 'a' }),
      N({ name: 'm', type: 'macvtap', parent: 'eth1' }),
      N({ name: 'a', type: 'user' }),
    ];
    expect(networkSetIssues(nets).map((i) => `${i.path}: ${i.message}`)).toEqual([
      'network/a: network "a" is defined twice',
      'network/c: static tap: interface "tap0" is already the static tap of network "a"',
      'network/d: bridge: interface "a" is already the bridge of network "a"',
      'network/m: parent: "eth1" is the uplink of network "c"; a bridge port cannot also be a macvtap parent',
      'network/b: addresses: 192.168.1.129/25 overlaps 192.168.1.1/24 of network "a"',
    ]);
  });
  it('cidr overlap, v4 and v6', () => {
    expect(cidrOverlap('10.0.0.1/8', '10.200.0.1/24')).toBe(true);
    expect(cidrOverlap('10.0.0.1/24', '10.0.1.1/24')).toBe(false);
    expect(cidrOverlap('fd00::1/64', 'fd00:0:0:0:1::1/80')).toBe(true);
    expect(cidrOverlap('fd00::1/64', 'fd00:0:0:1::1/64')).toBe(false);
    expect(cidrOverlap('10.0.0.1/24', 'fd00::1/64')).toBe(false);
    expect(parsePrefix('::ffff:1.2.3.4/128')?.addr).toBe(0xffff01020304n);
    expect(parsePrefix('1.2.3.256/24')).toBeUndefined();
  });
});

describe('names, MACs, ownership marks', () => {
  it('VM link names are deterministic and fit 15 characters', () => {
    const a = vmLinkName('a-very-long-vm-name-that-goes-on-and-on', 99, 'macvtap');
    expect(a).toMatch(/^kv[0-9a-f]{8}m99$/);
    expect(a.length).toBeLessThanOrEqual(15);
    expect(vmLinkName('web', 0, 'tap')).toBe(vmLinkName('web', 0, 'tap'));
    expect(vmLinkName('web', 0, 'tap')).not.toBe(vmLinkName('web2', 0, 'tap'));
  });
  it('derived MACs are stable, unicast, locally administered under 52:54:00', () => {
    const m = deriveMac('exam_vm', 'net0');
    expect(m).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(deriveMac('exam_vm', 'net0')).toBe(m);
    expect(deriveMac('exam_vm', 'net1')).not.toBe(m);
  });
  it('alias marks round-trip; foreign aliases are not ours', () => {
    for (const o of [{ kind: 'vm', vm: 'web.1', nic: 'net0' }, { kind: 'net', net: 'br0' }, { kind: 'net-tap', net: 'br_local0' }] as const) {
      expect(parseOwner(ownerAlias(o))).toEqual(o);
    }
    expect(parseOwner('uplink to the lab switch')).toBeUndefined();
    expect(parseOwner(undefined)).toBeUndefined();
  });
  it('makedev matches glibc for small and large numbers', () => {
    expect(makedev(246, 1)).toBe(246 * 256 + 1);
    expect(makedev(8, 300)).toBe((8 << 8) | (300 & 0xff) | ((300 & ~0xff) << 12));
  });
});

describe('plannedAttachments (pure, for kvmctl cmdline)', () => {
  const nets = new Map<string, NetworkSpec>([
    ['br0', N({ name: 'br0', type: 'bridge', uplinks: ['eth1'] })],
    ['mv', N({ name: 'mv', type: 'macvtap', parent: 'eth1' })],
    ['nat', N({ name: 'nat', type: 'user', forwards: [{ hostPort: 2222, guestPort: 22 }] })],
  ]);
  const vm = vmSchema.parse({
    name: 'web',
    nics: [{ network: 'br0' }, { network: 'mv' }, { network: 'nat' }, { tap: 'tap0', vhost: 'off' }, { network: 'mv', mac: '52:54:00:AA:00:01' }, { user: true }],
  });
  it('one attachment per NIC; macvtap fds numbered 3, 4, … in order', () => {
    expect(plannedAttachments(vm, nets, KVM_HOST_FACTS)).toEqual([
      { kind: 'tap', ifname: vmLinkName('web', 0, 'tap'), vhost: true },
      { kind: 'fd', fd: 3, vhost: true, mac: deriveMac('web', 'net1') },
      { kind: 'user', forwards: [{ proto: 'tcp', hostPort: 2222, guestPort: 22 }] },
      { kind: 'tap', ifname: 'tap0', vhost: false },
      { kind: 'fd', fd: 4, vhost: true, mac: '52:54:00:aa:00:01' },
      { kind: 'user', forwards: [] },
    ]);
  });
  it('no /dev/vhost-net → vhost off everywhere', () => {
    expect(plannedAttachments(vm, nets, TCG_HOST_FACTS).every((a) => a.kind === 'user' || a.vhost === false)).toBe(true);
  });
  it('an unknown network is bad input', () => {
    expect(() => plannedAttachments(vmSchema.parse({ name: 'x', nics: [{ network: 'nope' }] }), nets, KVM_HOST_FACTS)).toThrow(/no network named "nope"/);
  });
});
