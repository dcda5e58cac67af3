/**
 * The pure parts of nat networks: schema and cross-checks of fixed IPs, dnsmasq config and lease
 * parsing, the nftables text, the firewall decision (Docker, firewalld, unknown drops), the
 * export files, and examples/nat.yaml.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportNatFiles } from '../../../src/net/export/nat.js';
import { dnsmasqConfig, parseLeases, staticLeases } from '../../../src/net/nat/dnsmasq.js';
import { planFirewall, pickZone } from '../../../src/net/nat/firewall.js';
import { applyText, dockerUserRules, natTable, removeText, type NftObject } from '../../../src/net/nat/nft.js';
import { deriveMac } from '../../../src/net/mac.js';
import { crossDefinitionIssues } from '../../../src/definition/cross.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { networkSchema, type NatSpec, type NetworkSpec } from '../../../src/definition/network.js';
import { natDhcpRange } from '../../../src/definition/network-views.js';
import { vmSchema } from '../../../src/definition/vm.js';

const nat = (x: object = {}) => networkSchema.parse({ kind: 'network', name: 'natnet', type: 'nat', address: '10.77.0.1/24', ...x }) as NatSpec;
const issues = (x: object) => {
  const r = networkSchema.safeParse({ kind: 'network', name: 'natnet', type: 'nat', address: '10.77.0.1/24', ...x });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};
const vm = (name: string, nics: object[]) => vmSchema.parse({ name, nics });

describe('nat network schema', () => {
  it('defaults: DHCP in the upper half of the subnet, an hour, no forwards', () => {
    const n = nat();
    expect(natDhcpRange(n)).toEqual({ start: '10.77.0.128', end: '10.77.0.254' });
    expect(n.dhcp).toEqual({ leaseTime: 3600 });
    expect(n.forwards).toEqual([]);
    expect(natDhcpRange(nat({ address: '172.20.0.1/16' }))).toEqual({ start: '172.20.128.0', end: '172.20.255.254' });
    expect(natDhcpRange(nat({ dhcp: false }))).toBeUndefined();
  });
  it('refuses bad addresses, ranges and forwards with the path', () => {
    expect(issues({ address: '10.77.0.0/24' })[0]).toMatch(/^address: .*network address/);
    expect(issues({ address: '10.77.0.1/31' })[0]).toMatch(/prefix length of 8–30/);
    expect(issues({ dhcp: { start: '10.78.0.5' } })[0]).toMatch(/^dhcp.start: 10.78.0.5 is not inside 10.77.0.0\/24/);
    expect(issues({ dhcp: { start: '10.77.0.1', end: '10.77.0.9' } })[0]).toMatch(/contains the host's own address/);
    expect(issues({ dhcp: { start: '10.77.0.90', end: '10.77.0.9' } })[0]).toMatch(/comes before start/);
    expect(issues({ forwards: [{ hostPort: 80, guest: '10.77.0.5' }, { hostPort: 80, guest: '10.77.0.6' }] })[0]).toMatch(/^forwards.1.hostPort: tcp port 80 is already forwarded/);
    expect(issues({ forwards: [{ hostPort: 80, guest: '192.168.0.5' }] })[0]).toMatch(/not inside/);
    expect(issues({ uplinks: ['eth0'] })[0]).toMatch(/uplinks/);
  });
  it('NIC ip: only on nat networks, inside the subnet, not the host, once per network', () => {
    const nets: NetworkSpec[] = [nat(), networkSchema.parse({ kind: 'network', name: 'br0', type: 'bridge' })];
    const vms = [
      vm('a', [{ network: 'natnet', ip: '10.77.0.10' }]),
      vm('b', [{ network: 'natnet', ip: '10.77.0.10' }, { network: 'br0', ip: '10.0.0.2' }]),
      vm('c', [{ network: 'natnet', ip: '10.77.0.1' }, { network: 'natnet', ip: '10.1.0.1' }]),
    ];
    const msgs = crossDefinitionIssues(vms, nets, '/tmp').map((i) => `${i.path}: ${i.message}`);
    expect(msgs).toContain('vm/b: nics[0].ip: 10.77.0.10 is already the fixed address of VM "a" nics[0] on network "natnet"');
    expect(msgs).toContain('vm/b: nics[1].ip: a fixed ip: is only for NICs on a nat network ("br0" is bridge)');
    expect(msgs).toContain('vm/c: nics[0].ip: 10.77.0.1 is the host\'s own address on network "natnet"');
    expect(msgs).toContain('vm/c: nics[1].ip: 10.1.0.1 is not inside network "natnet"\'s 10.77.0.0/24');
    expect(vmSchema.safeParse({ name: 'x', nics: [{ network: 'natnet', ip: '10.77.0.300' }] }).success).toBe(false);
  });
});

describe('dnsmasq', () => {
  const n = nat({ dns: { domain: 'kvt.test', upstream: ['10.99.0.53'], hosts: { 'up.kvt.test': '10.99.0.2' } } });
  const vms = [vm('web', [{ network: 'natnet', ip: '10.77.0.50' }]), vm('db_1', [{ network: 'natnet', mac: '52:54:00:AA:BB:CC' }]), vm('other', [{ user: true }])];
  it('static leases from the VM definitions: stable derived MACs, fixed IPs, names only when they are DNS labels', () => {
    expect(staticLeases(n, vms)).toEqual([
      { mac: '52:54:00:aa:bb:cc', ip: undefined, name: undefined, vm: 'db_1', nic: 'net0' },
      { mac: deriveMac('web', 'net0'), ip: '10.77.0.50', name: 'web', vm: 'web', nic: 'net0' },
    ]);
  });
  it('config: only its bridge, own pid/lease files, upstream servers or none, leases and names', () => {
    const c = dnsmasqConfig(n, 'natnet', staticLeases(n, vms), { pidFile: '/r/p', leaseFile: '/r/l', logFile: '/r/log' });
    for (const l of ['interface=natnet', 'bind-dynamic', 'except-interface=lo', 'no-hosts', 'pid-file=/r/p', 'dhcp-leasefile=/r/l', 'no-resolv', 'server=10.99.0.53',
      'dhcp-range=10.77.0.128,10.77.0.254,255.255.255.0,3600', 'dhcp-option=option:router,10.77.0.1', 'domain=kvt.test', 'local=/kvt.test/',
      'dhcp-host=52:54:00:aa:bb:cc', `dhcp-host=${deriveMac('web', 'net0')},10.77.0.50,web`, 'host-record=web,web.kvt.test,10.77.0.50', 'host-record=up.kvt.test,10.99.0.2']) {
      expect(c.split('\n')).toContain(l);
    }
    // No upstream list: the host's resolv.conf (dnsmasq's default); DHCP off: no range.
    const c2 = dnsmasqConfig(nat({ dhcp: false }), 'natnet', [], { pidFile: '/p', leaseFile: '/l' });
    expect(c2).not.toMatch(/no-resolv|dhcp-range/);
  });
  it('lease file lines', () => {
    expect(parseLeases('1700000000 52:54:00:12:34:56 10.77.0.130 natvm 01:52:54:00:12:34:56\n0 52:54:00:AA:BB:CC 10.77.0.50 * *\ngarbage\n')).toEqual([
      { expires: 1700000000, mac: '52:54:00:12:34:56', ip: '10.77.0.130', hostname: 'natvm' },
      { expires: 0, mac: '52:54:00:aa:bb:cc', ip: '10.77.0.50', hostname: undefined },
    ]);
  });
});

describe('nftables text', () => {
  const r = { name: 'natnet', bridge: 'natnet', address: '10.77.0.1/24', forwards: [{ proto: 'tcp' as const, hostPort: 8080, ip: '10.77.0.50', port: 80 }, { proto: 'udp' as const, hostAddr: '10.99.0.1', hostPort: 5353, ip: '10.77.0.50', port: 53 }] };
  it('one table of its own: forward filter, masquerade, DNAT for forwards', () => {
    const t = natTable(r);
    expect(t).toMatch(/^table inet kvmctl-natnet \{/);
    expect(t).toContain('iifname "natnet" ip saddr 10.77.0.0/24 oifname != "natnet" accept');
    expect(t).toContain('oifname "natnet" ct status dnat accept');
    expect(t).toContain('ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 oifname != "natnet" masquerade');
    expect(t).toContain('iifname != "natnet" fib daddr type local tcp dport 8080 dnat ip to 10.77.0.50:80');
    expect(t).toContain('ip daddr 10.99.0.1 udp dport 5353 dnat ip to 10.77.0.50:53');
    expect(natTable({ ...r, uplink: 'eth0' })).toContain('oifname "eth0" masquerade');
  });
  it('apply replaces the table atomically and tags DOCKER-USER rules; remove deletes only what is there', () => {
    const a = applyText(r, { families: ['ip'], stale: [{ family: 'ip', handle: 7 }] }).split('\n');
    expect(a.slice(0, 3)).toEqual(['table inet kvmctl-natnet', 'delete table inet kvmctl-natnet', 'table inet kvmctl-natnet {']);
    expect(a).toContain('delete rule ip filter DOCKER-USER handle 7');
    expect(a).toContain('insert rule ip filter DOCKER-USER iifname "natnet" accept comment "kvmctl:net=natnet"');
    expect(removeText('natnet', [{ family: 'ip', handle: 9 }], false)).toBe('delete rule ip filter DOCKER-USER handle 9\n');
    expect(removeText('natnet', [], false)).toBe('');
  });
});

// `nft -j list ruleset` objects, as nft 1.0.6 prints them.
const chain = (family: string, table: string, name: string, extra: object = {}): NftObject => ({ chain: { family, table, name, handle: 1, ...extra } });
const rule = (family: string, table: string, ch: string, expr: object[], extra: object = {}): NftObject => ({ rule: { family, table, chain: ch, handle: 10, expr: expr as Record<string, unknown>[], ...extra } });
const iif = (n: string) => ({ match: { op: '==', left: { meta: { key: 'iifname' } }, right: n } });
const oif = (n: string) => ({ match: { op: '==', left: { meta: { key: 'oifname' } }, right: n } });
const est = { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } };
const base = { type: 'filter', hook: 'forward', prio: 0 };
const opts = { bridge: 'natnet', ownTable: 'kvmctl-natnet', firewalldRunning: false };

describe('firewall decision', () => {
  it('nothing else filters: no blockers, nothing to do', () => {
    expect(planFirewall([], opts)).toEqual({ dockerUser: [], firewalld: false, blockers: [], notes: [] });
  });
  it('Docker: FORWARD policy drop with DOCKER-USER → rules go to DOCKER-USER, not a blocker', () => {
    const rs = [{ table: { family: 'ip', name: 'filter' } }, chain('ip', 'filter', 'FORWARD', { ...base, policy: 'drop' }), chain('ip', 'filter', 'DOCKER-USER'), rule('ip', 'filter', 'FORWARD', [{ jump: { target: 'DOCKER-USER' } }])];
    const p = planFirewall(rs, opts);
    expect(p.dockerUser).toEqual(['ip']);
    expect(p.blockers).toEqual([]);
  });
  it('an unknown drop policy blocks both directions and names table, chain and the fix', () => {
    const p = planFirewall([chain('inet', 'corpfw', 'guard', { ...base, policy: 'drop' })], opts);
    expect(p.blockers.map((b) => `${b.family} ${b.table} ${b.chain}`)).toEqual(['inet corpfw guard', 'inet corpfw guard']);
    expect(p.blockers[0]!.fix).toEqual(['nft insert rule inet corpfw guard iifname "natnet" accept']);
  });
  it('a drop policy that accepts the bridge (directly or in a jumped-to chain) and established replies is fine', () => {
    const rs = [chain('inet', 'fw', 'fwd', { ...base, policy: 'drop' }), chain('inet', 'fw', 'vms'), rule('inet', 'fw', 'fwd', [est, { accept: null }]), rule('inet', 'fw', 'fwd', [{ jump: { target: 'vms' } }]), rule('inet', 'fw', 'vms', [iif('nat*'), { accept: null }])];
    expect(planFirewall(rs, opts).blockers).toEqual([]);
  });
  it('an unconditional reject in an accept-policy chain blocks; a drop for other interfaces does not', () => {
    expect(planFirewall([chain('ip', 'x', 'f', { ...base, policy: 'accept' }), rule('ip', 'x', 'f', [{ reject: null }])], opts).blockers).toHaveLength(2);
    expect(planFirewall([chain('ip', 'x', 'f', { ...base, policy: 'accept' }), rule('ip', 'x', 'f', [oif('eth9'), { drop: null }]), rule('ip', 'x', 'f', [iif('eth9'), { drop: null }])], opts).blockers).toEqual([]);
  });
  it('input policy drop without an accept for the bridge blocks DHCP/DNS', () => {
    const p = planFirewall([chain('inet', 'filter', 'input', { type: 'filter', hook: 'input', prio: 0, policy: 'drop' })], opts);
    expect(p.blockers[0]!.why).toContain('DHCP and DNS');
    expect(p.blockers[0]!.fix[0]).toContain('udp dport { 53, 67 } accept');
  });
  it('firewalld: running → zone, not a blocker; its table without the daemon → blocker with a hint', () => {
    const rs = [{ table: { family: 'inet', name: 'firewalld' } }, chain('inet', 'firewalld', 'filter_FORWARD', { ...base, policy: 'accept' }), rule('inet', 'firewalld', 'filter_FORWARD', [{ reject: { type: 'icmpx', expr: 'admin-prohibited' } }])];
    const on = planFirewall(rs, { ...opts, firewalldRunning: true });
    expect(on.firewalld).toBe(true);
    expect(on.blockers).toEqual([]);
    const off = planFirewall(rs, opts);
    expect(off.blockers[0]!.fix[0]).toContain('start firewalld');
    expect(pickZone(['public', 'libvirt', 'trusted'])).toBe('libvirt');
    expect(pickZone(['public', 'trusted'])).toBe('trusted');
  });
  it("kvmctl's own table and its tagged DOCKER-USER rules are recognised", () => {
    const rs = [chain('inet', 'kvmctl-natnet', 'forward', { ...base, policy: 'accept' }), rule('inet', 'kvmctl-natnet', 'forward', [iif('natnet'), { drop: null }]), rule('ip', 'filter', 'DOCKER-USER', [iif('natnet'), { accept: null }], { handle: 42, comment: 'kvmctl:net=natnet' }), rule('ip', 'filter', 'DOCKER-USER', [{ accept: null }], { handle: 43, comment: 'someone' })];
    expect(planFirewall(rs, opts).blockers).toEqual([]);
    expect(dockerUserRules(rs, 'natnet')).toEqual([{ family: 'ip', handle: 42, net: 'natnet' }]);
    expect(dockerUserRules(rs, 'other')).toEqual([]);
  });
});

describe('export and example', () => {
  it('nat export files: the table, dnsmasq config with static leases, the sysctl', () => {
    const files = exportNatFiles(nat({ forwards: [{ hostPort: 2222, guest: 'web', guestPort: 22 }] }), [vm('web', [{ network: 'natnet', ip: '10.77.0.50' }])]);
    expect(files.map((f) => f.path)).toEqual(['kvmctl-natnet.nft', 'dnsmasq-kvmctl-natnet.conf', '99-kvmctl-natnet.conf']);
    expect(files[0]!.content).toContain('dnat ip to 10.77.0.50:22');
    expect(files[1]!.content).toContain('pid-file=/run/dnsmasq-kvmctl-natnet.pid');
    expect(files[1]!.content).toContain(',10.77.0.50,web');
    expect(files[2]!.content).toContain('net.ipv4.ip_forward = 1');
  });
  it('examples/nat.yaml: network natnet and VM natvm on it, taking its address by DHCP', () => {
    const file = path.resolve(__dirname, '../../../examples/nat.yaml');
    const docs = parseDefinitions(fs.readFileSync(file, 'utf8'), 'nat.yaml');
    expect(docs.flatMap((d) => d.issues)).toEqual([]);
    const net = docs.find((d) => d.kind === 'network')!.spec as NatSpec;
    const v = docs.find((d) => d.kind === 'vm')!.spec as ReturnType<typeof vmSchema.parse>;
    expect(net).toMatchObject({ name: 'natnet', type: 'nat' });
    expect(v.name).toBe('natvm');
    expect(v.nics[0]!.network).toBe('natnet');
    expect(v.kernel?.append).toContain('kvt.dhcp=eth0');
  });
});
