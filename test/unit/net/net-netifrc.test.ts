/** netifrc export/import against the seed's exact /etc/conf.d/net text (shared/seed/README.md §4). */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exportNetifrc, netifrcBlock, shellVar } from '../../../src/net/export/netifrc.js';
import { importNetifrc, importToYaml, parseNetifrc } from '../../../src/net/import/netifrc.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { networkSchema, type NetworkSpec } from '../../../src/definition/network.js';

const fixture = (f: string) => fs.readFileSync(new URL(`../../fixtures/net/${f}`, import.meta.url), 'utf8');
const seedText = fixture('seed-conf.d-net');
const examNets = parseDefinitions(fixture('exam_vm-networks.yaml'), 'exam_vm-networks.yaml').map((d) => d.spec as NetworkSpec);

/** The seed's lines without the annotations the README added and without the host's own eth0. */
const seedLines = seedText
  .split('\n')
  .map((l) => l.replace(/\s+#.*$/, '').trimEnd())
  .filter((l) => l && !l.startsWith('#') && !/_eth0=/.test(l));

const codeLines = (t: string) => t.split('\n').filter((l) => l && !l.startsWith('#'));

describe('netifrc export (golden: the seed)', () => {
  it('the seed layout reproduces the seed blocks line for line', () => {
    expect(examNets.map((n) => n.name)).toEqual(['br0', 'br_local0']);
    expect(codeLines(exportNetifrc(examNets))).toEqual(seedLines);
    expect(seedLines).toHaveLength(15);
  });

  it('matches the golden file, comments and boot-service list included', () => {
    const out = exportNetifrc(examNets);
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(new URL('../../fixtures/net/exam_vm.netifrc', import.meta.url), out);
    expect(out).toBe(fixture('exam_vm.netifrc'));
    expect(out).toContain('#   rc-update add net.br0 default');
    expect(out).toContain('ln -s net.lo net.tap_local0');
  });

  it('timers are centiseconds: helloTime 2 s → 200, forwardDelay 15 s → 1500; STP and options appear', () => {
    const n = networkSchema.parse({ kind: 'network', name: 'br.lan', type: 'bridge', uplinks: ['eth2'], stp: true, forwardDelay: 15, helloTime: 2, igmpSnooping: true, mtu: 9000 });
    expect(netifrcBlock(n)).toEqual([
      'config_eth2="null"',
      'bridge_br_lan="eth2"',
      'config_br_lan="null"',
      'mtu_br_lan="9000"',
      'bridge_stp_state_br_lan=1',
      'bridge_forward_delay_br_lan=1500',
      'bridge_hello_time_br_lan=200',
      'bridge_multicast_snooping_br_lan=1',
      'depend_br_lan() { need net.eth2; }',
    ]);
    expect(shellVar('eth0.100')).toBe('eth0_100');
  });

  it('macvtap and user networks are comments only', () => {
    const out = exportNetifrc([
      networkSchema.parse({ kind: 'network', name: 'mv', type: 'macvtap', parent: 'enp8s0f0' }),
      networkSchema.parse({ kind: 'network', name: 'nat', type: 'user' }),
    ]);
    expect(codeLines(out)).toEqual([]);
    expect(out).toMatch(/netifrc cannot make macvtaps/);
  });
});

describe('netifrc import', () => {
  it('parses assignments, multi-line values and depend functions', () => {
    const p = parseNetifrc('a="x y"\nb=1 # c\nconfig_br0="10.0.0.1/24\n10.0.1.1/24"\ndepend_br0() {\nneed net.eth1\nneed net.tap0\n}\n');
    expect(p.vars.get('a')).toBe('x y');
    expect(p.vars.get('b')).toBe('1');
    expect(p.vars.get('config_br0')).toBe('10.0.0.1/24\n10.0.1.1/24');
    expect(p.functions.get('depend_br0')).toEqual(['need net.eth1', 'need net.tap0']);
  });

  it("reads the seed's file back into the two networks, warning about the host's eth0", () => {
    const r = importNetifrc(seedText);
    const nets = r.networks.map((n) => networkSchema.parse(n));
    expect(nets).toEqual(examNets);
    expect(r.warnings).toEqual([
      'config_eth0="192.168.0.1/24": not a bridge setting; left to the host\'s own network config',
      'routes_eth0="default via 192.168.0.254": not a bridge setting; left to the host\'s own network config',
    ]);
    expect(r.notes.join('\n')).toMatch(/tap0 is made by network br0/);
    // round trip: import → export gives the seed again
    expect(codeLines(exportNetifrc(nets))).toEqual(seedLines);
  });

  it('the YAML it writes validates as kvmctl definitions', () => {
    const y = importToYaml(importNetifrc(seedText), '/etc/conf.d/net');
    const docs = parseDefinitions(y, 'import.yaml');
    expect(docs.map((d) => d.issues)).toEqual([[], []]);
    expect(y).toMatch(/# not mapped: config_eth0/);
  });

  it('warns about what it cannot map: dhcp, netmask form converted, lone taps, other functions', () => {
    const r = importNetifrc('bridge_br1="eth3"\nconfig_br1="dhcp"\nbridge_br2="eth4"\nconfig_br2="10.1.0.1 netmask 255.255.255.0"\ntuntap_tap9="tap"\npostup() { true; }\n');
    expect(r.networks).toEqual([
      { kind: 'network', name: 'br1', type: 'bridge', uplinks: ['eth3'] },
      { kind: 'network', name: 'br2', type: 'bridge', uplinks: ['eth4'], addresses: ['10.1.0.1/24'] },
    ]);
    expect(r.warnings.join('\n')).toMatch(/config_br1: "dhcp" cannot be mapped/);
    expect(r.warnings.join('\n')).toMatch(/tap tap9 is in no bridge/);
    expect(r.warnings.join('\n')).toMatch(/postup\(\): not mapped/);
  });
});
