/** networkd / ifupdown / script exports, checked by parsing them back. */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exportIfupdown, parseIfupdown } from '../../../src/net/export/ifupdown.js';
import { exportNetworkd, parseIni } from '../../../src/net/export/networkd.js';
import { exportScript, parseScript, scriptCommands } from '../../../src/net/export/script.js';
import { vmLinkName } from '../../../src/net/tap.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { networkSchema, type NetworkSpec } from '../../../src/definition/network.js';
import { vmSchema } from '../../../src/definition/vm.js';

const examNets = parseDefinitions(fs.readFileSync(new URL('../../fixtures/net/exam_vm-networks.yaml', import.meta.url), 'utf8')).map((d) => d.spec as NetworkSpec);

describe('networkd export', () => {
  const files = new Map(exportNetworkd(examNets).map((f) => [f.path, parseIni(f.content)]));
  it('writes a bridge netdev with timers in seconds and no STP', () => {
    const nd = files.get('25-kvmctl-br0.netdev')!;
    expect(nd.get('NetDev')?.get('Kind')).toEqual(['bridge']);
    expect(nd.get('Bridge')?.get('HelloTimeSec')).toEqual(['10']);
    expect(nd.get('Bridge')?.get('ForwardDelaySec')).toEqual(['0']);
    expect(nd.get('Bridge')?.get('STP')).toEqual(['no']);
  });
  it('puts the host address on the host-only bridge and none on br0', () => {
    expect(files.get('25-kvmctl-br_local0.network')!.get('Network')?.get('Address')).toEqual(['192.168.1.1/24']);
    expect(files.get('25-kvmctl-br0.network')!.get('Network')?.get('Address')).toBeUndefined();
  });
  it('enslaves the uplink and the static taps, which are tap netdevs', () => {
    for (const [p, br] of [['eth1', 'br0'], ['tap0', 'br0'], ['tap_local0', 'br_local0']] as const) {
      expect(files.get(`25-kvmctl-${p}.network`)!.get('Network')?.get('Bridge')).toEqual([br]);
    }
    expect(files.get('25-kvmctl-tap0.netdev')!.get('NetDev')?.get('Kind')).toEqual(['tap']);
    expect(files.has('25-kvmctl-eth1.netdev')).toBe(false); // a physical NIC is not created
    expect(files.size).toBe(9);
  });
});

describe('ifupdown export', () => {
  const { auto, stanzas } = parseIfupdown(exportIfupdown(examNets));
  it('brings every interface up at boot, ports before bridges', () => {
    expect(auto).toEqual(['eth1', 'tap0', 'br0', 'tap_local0', 'br_local0']);
  });
  it('br0 is manual with its ports; br_local0 is static with the host address', () => {
    const br0 = stanzas.find((s) => s.iface === 'br0')!;
    expect(br0.method).toBe('manual');
    expect(Object.fromEntries(br0.options)).toMatchObject({ bridge_ports: 'eth1 tap0', bridge_stp: 'off', bridge_fd: '0', bridge_hello: '10' });
    const local = stanzas.find((s) => s.iface === 'br_local0')!;
    expect(local.method).toBe('static');
    expect(Object.fromEntries(local.options)).toMatchObject({ address: '192.168.1.1/24', bridge_ports: 'tap_local0' });
    const tap = stanzas.find((s) => s.iface === 'tap0')!;
    expect(tap.options).toContainEqual(['pre-up', 'ip tuntap add dev tap0 mode tap']);
  });
  it('IPv6 addresses get an inet6 stanza', () => {
    const n = networkSchema.parse({ kind: 'network', name: 'v6', type: 'host-only', addresses: ['fd00::1/64', '10.3.0.1/24'] });
    const s = parseIfupdown(exportIfupdown([n])).stanzas.filter((x) => x.iface === 'v6');
    expect(s.map((x) => `${x.family} ${x.method}`)).toEqual(['inet static', 'inet6 static']);
  });
});

describe('script export', () => {
  it('parses back to exactly the commands it was made from', () => {
    const vm = vmSchema.parse({ name: 'mvm', nics: [{ network: 'mv' }], runAs: { user: 'kvm-admin' } });
    const nets = [...examNets, networkSchema.parse({ kind: 'network', name: 'mv', type: 'macvtap', parent: 'enp8s0f0' })];
    const text = exportScript(nets, [vm]);
    const parsed = parseScript(text).map((w) => w.map((parts) => parts.map((p) => (typeof p === 'string' ? p : `$(cat ${p.cat})`)).join('')));
    expect(parsed).toEqual(scriptCommands(nets, [vm]));
    const x = vmLinkName('mvm', 0, 'macvtap');
    expect(text).toContain(`chown kvm-admin:kvm /dev/tap$(cat /sys/class/net/${x}/ifindex)`);
    expect(text).toContain(`chmod 660 /dev/tap$(cat /sys/class/net/${x}/ifindex)`);
    expect(text).toContain('ip link add name br0 type bridge stp_state 0 forward_delay 0 hello_time 1000');
    expect(text).toContain("ip link set dev br0 alias kvmctl:net=br0");
  });
  it('quotes words with spaces or quotes so that they survive the round trip', () => {
    const words = parseScript("ip link set dev x alias 'a b'\\''c'\n");
    expect(words).toEqual([[['ip'], ['link'], ['set'], ['dev'], ['x'], ['alias'], ["a b'c"]]]);
  });
});
