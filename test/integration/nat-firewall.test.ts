/**
 * NAT networks against other firewalls and crashes, without guests, in a "host" namespace of its
 * own (never the root namespace's nftables or sysctls): an unknown table that drops forwarded
 * traffic makes `net up` fail naming it and change nothing; kvmctl's table deleted behind its back
 * is repaired by `net up`; a dnsmasq killed with -9 is restarted by `net up` and `net down` still
 * cleans up; kvmctl killed with -9 at each step of `net up` leaves nothing after `net gc`; two nat
 * networks share ip_forward, restored when the last one goes down.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const can = canUseNetns().ok && ['/usr/sbin/nft', '/usr/sbin/dnsmasq'].every((p) => fs.existsSync(p));

const NETS = `kind: network
name: natA
type: nat
address: 10.78.0.1/24
dns: { upstream: [] }
---
kind: network
name: natB
type: nat
address: 10.79.0.1/24
dhcp: { start: 10.79.0.10, end: 10.79.0.20, leaseTime: 600 }
dns: { upstream: [] }
`;

describe.skipIf(!can)('nat networks: other firewalls, repairs, crashes (namespace, no guests)', () => {
  let h: Home;
  let paths: Paths;
  let ns: Netns;
  const nft = async () => (await ns.exec(['nft', 'list', 'ruleset'])).stdout;
  const fwd = async () => (await ns.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
  const cli = (...a: string[]) => h.cli([...a, '--netns', ns.name]);
  /** Nothing of kvmctl's left in the namespace: no table, no tagged rule, no bridge, no dnsmasq, ip_forward back to 0. */
  async function expectClean(): Promise<void> {
    const rs = await nft();
    expect(rs).not.toContain('kvmctl');
    expect(await ns.ip('-br', 'link')).not.toMatch(/^nat[AB]/m);
    for (const n of ['natA', 'natB']) expect(dnsmasqPids(natFiles(paths, n).conf)).toEqual([]);
    expect(await fwd()).toBe('0');
  }

  beforeAll(async () => {
    h = makeHome();
    paths = resolvePaths(h.env);
    ns = await createNetns('kvt-natf');
    await ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
    await ns.ip('addr', 'add', '10.98.0.1/24', 'dev', 'up0');
    await ns.ip('link', 'set', 'up0', 'up');
    await ns.ip('route', 'add', 'default', 'via', '10.98.0.2');
    await h.apply(NETS);
  }, 60_000);
  afterAll(async () => {
    for (const n of ['natA', 'natB']) for (const pid of dnsmasqPids(natFiles(paths, n).conf)) process.kill(pid, 'SIGKILL');
    await h?.cleanup();
    await ns?.destroy();
  });

  it('an unknown table that drops forwarded traffic: net up fails naming table and chain, and changes nothing', async () => {
    await run(['ip', 'netns', 'exec', ns.name, 'nft', '-f', '-'], { input: 'table inet corpfw {\n\tchain guard {\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tct state invalid drop\n\t}\n}\n' });
    const before = await nft();
    const r = await cli('net', 'up', 'natA');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NAT_BLOCKED_BY_FIREWALL');
    expect(r.stderr).toContain('table inet corpfw chain guard');
    expect(r.stderr).toContain('nft insert rule inet corpfw guard iifname "natA" accept');
    expect(await nft()).toBe(before);
    await expectClean();
    // Once that table allows the bridge, net up succeeds.
    await ns.exec(['nft', 'insert', 'rule', 'inet', 'corpfw', 'guard', 'iifname', 'natA', 'accept']);
    await ns.exec(['nft', 'insert', 'rule', 'inet', 'corpfw', 'guard', 'oifname', 'natA', 'ct', 'state', 'established,related', 'accept']);
    const ok = await cli('net', 'up', 'natA');
    expect(ok.code, ok.stderr).toBe(0);
    expect((await cli('net', 'down', 'natA')).code).toBe(0);
    await ns.exec(['nft', 'delete', 'table', 'inet', 'corpfw']);
    await expectClean();
  }, 60_000);

  it("kvmctl's table deleted behind its back: status says degraded, net up repairs it; a dnsmasq killed with -9 is restarted", async () => {
    expect((await cli('net', 'up', 'natA')).code).toBe(0);
    const table = (await nft()).match(/table inet kvmctl-natA \{[\s\S]*?\n\}/)![0];
    await ns.exec(['nft', 'delete', 'table', 'inet', 'kvmctl-natA']);
    const show = await cli('net', 'show', 'natA');
    expect(show.stdout).toContain('# state: degraded');
    expect(show.stdout).toContain('table inet kvmctl-natA is missing');
    const rep = await cli('net', 'up', 'natA');
    expect(rep.code, rep.stderr).toBe(0);
    expect(rep.stdout).toContain('repaired nftables table inet kvmctl-natA');
    expect((await nft()).match(/table inet kvmctl-natA \{[\s\S]*?\n\}/)![0]).toBe(table);

    const [pid] = dnsmasqPids(natFiles(paths, 'natA').conf);
    expect(pid).toBeGreaterThan(1);
    process.kill(pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    expect((await cli('net', 'show', 'natA')).stdout).toContain('dnsmasq is not running');
    const again = await cli('net', 'up', 'natA');
    expect(again.stdout).toMatch(/started dnsmasq \(pid \d+\)/);
    const [pid2] = dnsmasqPids(natFiles(paths, 'natA').conf);
    expect(pid2).not.toBe(pid);
    process.kill(pid2!, 'SIGKILL'); // and net down copes with a dead dnsmasq
    const d = await cli('net', 'down', 'natA');
    expect(d.code, d.stderr).toBe(0);
    await expectClean();
  }, 60_000);

  it('two nat networks share ip_forward: on while either is up, restored by the last net down', async () => {
    expect((await cli('net', 'up', 'natA')).code).toBe(0);
    expect((await cli('net', 'up', 'natB')).code).toBe(0);
    expect(fs.readFileSync(natFiles(paths, 'natB').conf, 'utf8')).toContain('dhcp-range=10.79.0.10,10.79.0.20,255.255.255.0,600');
    expect(await fwd()).toBe('1');
    expect((await cli('net', 'down', 'natA')).code).toBe(0);
    expect(await fwd()).toBe('1');
    expect(await nft()).toContain('kvmctl-natB');
    expect((await cli('net', 'down', 'natB')).code).toBe(0);
    await expectClean();
  }, 60_000);

  for (const step of ['after-state', 'after-bridge', 'after-dnsmasq', 'after-nft']) {
    it(`kvmctl killed with -9 during net up (${step}): net gc leaves nothing`, async () => {
      const r = await h.cli(['net', 'up', 'natA', '--netns', ns.name], { env: { KVMCTL_FAULT: `nat-up:${step}` } });
      expect(r.code, r.stderr).not.toBe(0); // SIGKILL
      expect(r.stderr).toBe("");
      expect(JSON.parse(fs.readFileSync(natFiles(paths, 'natA').state, 'utf8')).phase).toBe('starting');
      const gc = await cli('net', 'gc');
      expect(gc.code, gc.stderr).toBe(0);
      expect(gc.stdout).toContain('natA:');
      await expectClean();
      expect(fs.existsSync(natFiles(paths, 'natA').state)).toBe(false);
      expect(fs.readdirSync(path.join(paths.run, 'nat-sysctl'))).toEqual([]);
    }, 60_000);
  }
});
