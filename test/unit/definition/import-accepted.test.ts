/**
 * #14 item 4: an importer never writes a definition kvmctl itself rejects. Every importer's output
 * for every file of the import corpora (test/fixtures/net, test/fixtures/import) and for seeded
 * generated variants goes back through the validator (parseDefinitions), which must accept it.
 * The bridge rules importers and validator share live in src/definition/network-rules.ts.
 */
import fs from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { importNetifrc, importToYaml } from '../../../src/net/import/netifrc.js';
import { importCommandLine, importYaml } from '../../../src/qemu/import.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { networkSchema } from '../../../src/definition/network.js';
import { bridgeCrossIssues, settleSysfsTimers } from '../../../src/definition/network-rules.js';

const SEED = Number(process.env.KVT_SEED ?? 0x5eed);
const dir = (d: string) => new URL(`../../fixtures/${d}/`, import.meta.url);
const corpus = (d: string, re: RegExp) => fs.readdirSync(dir(d)).filter((f) => re.test(f)).map((f) => ({ f, text: fs.readFileSync(new URL(f, dir(d)), 'utf8') }));
const netifrcFiles = corpus('net', /netifrc|conf\.d-net/);
const scripts = corpus('import', /\.sh$/);

/** The import's YAML, validated: every document without issues. */
function rejected(yaml: string): string[] {
  return parseDefinitions(yaml, 'import.yaml').flatMap((d) => d.issues.map((i) => `${d.label}: ${i.path}: ${i.message}`));
}

function checkNetifrc(text: string): number {
  const r = importNetifrc(text);
  const y = importToYaml(r, '/etc/conf.d/net');
  expect(rejected(y), `${text}\n--- yaml ---\n${y}`).toEqual([]);
  return r.networks.length;
}

describe('netifrc: bridge_stp_state=1 with bridge_forward_delay=0', () => {
  const text = fs.readFileSync(new URL('stp-forward-delay-0.conf.d-net', dir('net')), 'utf8');

  it('imports the forward delay the bridge really runs with (2 s) and says so with the line', () => {
    const r = importNetifrc(text);
    expect(r.networks).toEqual([{ kind: 'network', name: 'br0', type: 'bridge', uplinks: ['eth1'], addresses: ['192.168.10.2/24'], forwardDelay: 2, helloTime: 2, stp: true }]);
    expect(r.warnings).toEqual([
      'line 6: bridge_forward_delay_br0="0" with bridge_stp_state_br0="1" (line 5): forward delay 0 s with STP on: turning STP on makes the kernel clamp it into 2–30 s, so the bridge runs with 2 s',
    ]);
    expect(importToYaml(r, '/etc/conf.d/net')).toContain('# not mapped: line 6: bridge_forward_delay_br0="0"');
    expect(rejected(importToYaml(r, '/etc/conf.d/net'))).toEqual([]);
  });

  it('the validator refuses the literal translation with the same rule', () => {
    const literal = networkSchema.safeParse({ kind: 'network', name: 'br0', type: 'bridge', uplinks: ['eth1'], stp: true, forwardDelay: 0 });
    expect(literal.success).toBe(false);
    expect(literal.error!.issues.map((i) => i.message)).toEqual(bridgeCrossIssues({ stp: true, forwardDelay: 0 }).map((i) => i.message));
  });

  it('STP on without a forward delay keeps the kernel default 15 s (kvmctl default 0 would be refused)', () => {
    const r = importNetifrc('bridge_br9="eth4"\nbridge_stp_state_br9=1\n');
    expect(r.networks[0]).toMatchObject({ stp: true, forwardDelay: 15 });
    expect(settleSysfsTimers({ stp: true, forwardDelay: 45 })).toMatchObject({ forwardDelay: 30 });
  });

  it('hello time, MTU, ports and addresses the kernel refuses are left out with a warning naming the line', () => {
    const r = importNetifrc('bridge_br1="eth2 eth2 br1"\nbridge_hello_time_br1=0\nmtu_br1=20\nconfig_br1="10.0.0.300/24"\n');
    expect(r.networks[0]).toEqual({ kind: 'network', name: 'br1', type: 'bridge', uplinks: ['eth2'] });
    expect(r.warnings.filter((w) => /^line [1-4]: /.test(w))).toHaveLength(4);
    expect(r.warnings.join('\n')).toMatch(/line 2: bridge_hello_time_br1="0": hello time 0 s is outside the kernel's 1–10 s/);
  });
});

describe('every importer output is accepted by the validator', () => {
  it('netifrc corpus', () => {
    expect(netifrcFiles.length).toBeGreaterThanOrEqual(3);
    let nets = 0;
    for (const { text } of netifrcFiles) nets += checkNetifrc(text);
    expect(nets).toBeGreaterThanOrEqual(5);
  });

  it('qemu launch-script corpus', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(7);
    for (const { f, text } of scripts) {
      const r = importCommandLine(text, { source: f });
      expect(rejected(importYaml(r, f)), f).toEqual([]);
    }
  });

  const ifn = fc.constantFrom('eth0', 'eth1', 'enp3s0', 'tap0', 'tap1', 'br0', 'br_x', 'bad/if', 'eth0.100');
  const num = fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constantFrom(0, 1, 99, 100, 200, 1000, 1001, 3000, 3001), fc.constant('abc'));
  const bridge = fc.record({
    name: fc.constantFrom('br0', 'br_local0', 'lan', '_x', 'br1'),
    ports: fc.array(ifn, { maxLength: 4 }),
    taps: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    config: fc.constantFrom('null', '192.168.1.1/24', 'dhcp', '10.0.0.1 netmask 255.255.255.0', '10.0.0.999/24', 'fe80::1/64', 'fe80::1/200', '1.2.3.4/40'),
    stp: fc.option(fc.constantFrom(0, 1, 2)),
    fd: fc.option(num),
    ht: fc.option(num),
    mtu: fc.option(fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.constant(9000))),
    order: fc.boolean(),
  });
  const fileOf = (bs: fc.infer<typeof bridge>[]) =>
    bs
      .flatMap((b) => {
        const v = b.name;
        const ls = [`bridge_${v}="${b.ports.join(' ')}"`, `config_${v}="${b.config}"`];
        b.ports.forEach((p, i) => b.taps[i] && /^[\w.]+$/.test(p) && ls.push(`tuntap_${p.replace(/\./g, '_')}="tap"`));
        const timers = [b.stp !== null && `bridge_stp_state_${v}=${b.stp}`, b.fd !== null && `bridge_forward_delay_${v}=${b.fd}`, b.ht !== null && `bridge_hello_time_${v}=${b.ht}`, b.mtu !== null && `mtu_${v}=${b.mtu}`].filter((x): x is string => !!x);
        return [...ls, ...(b.order ? timers.reverse() : timers)];
      })
      .join('\n');

  it('generated netifrc files (seeded)', () => {
    fc.assert(fc.property(fc.array(bridge, { minLength: 1, maxLength: 3 }), (bs) => void checkNetifrc(fileOf(bs))), { seed: SEED, numRuns: 300 });
  });

  it('corpus netifrc files with their timers, STP and MTU rewritten (seeded)', () => {
    const edit = fc.record({ fd: num, ht: num, stp: fc.constantFrom(0, 1), mtu: fc.integer({ min: 0, max: 70000 }) });
    fc.assert(
      fc.property(fc.constantFrom(...netifrcFiles), edit, ({ text }, e) => {
        const t = text
          .replace(/^(bridge_forward_delay_\w+)=\S+/gm, `$1=${e.fd}`)
          .replace(/^(bridge_hello_time_\w+)=\S+/gm, `$1=${e.ht}`)
          .replace(/^bridge_(\w+)="[^"]*"/gm, (l, br: string) => (/^(forward_delay|hello_time|stp_state)_/.test(br) ? l : `${l}\nbridge_stp_state_${br}=${e.stp}\nmtu_${br}=${e.mtu}`));
        checkNetifrc(t);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('corpus launch scripts with extra options appended (seeded): imported and accepted, or refused with a code', () => {
    const extra = fc.array(fc.constantFrom('-m 512M', '-m 0', '-smp 3', '-smp 0', '-boot d', '-boot once=d', '-boot order=n', '-cdrom /srv/x.iso', '-hdb /srv/b.img', '-nic user', '-nic tap,ifname=tap7,script=no,downscript=no', '-vga none', '-display none', '-rtc base=utc', '-no-reboot'), { maxLength: 4 });
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.constantFrom(...scripts), extra, ({ f, text }, opts) => {
        const t = text.replace(/\s*"\$@"\s*$/, '').trimEnd().replace(/\\$/, '') + ` ${opts.join(' ')}\n`;
        let r;
        try {
          r = importCommandLine(t, { source: f });
        } catch (e) {
          expect(e).toBeInstanceOf(KvmError);
          refused++;
          return;
        }
        accepted++;
        expect(rejected(importYaml(r, f)), t).toEqual([]);
      }),
      { seed: SEED, numRuns: 150 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});
