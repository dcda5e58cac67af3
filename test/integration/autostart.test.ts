/**
 * `kvmctl autostart` and `kvmctl shutdown-all` with three real test guests (TCG here):
 *   a0 (order 0, delay 1 s, on a host-only network)  deaf0 (order 0, ignores ACPI)  b1 (order 1)
 * plus a VM that cannot start (autostart, missing kernel) and one not marked autostart.
 * Everything runs in a network namespace this file makes and deletes (the network-up step makes
 * a bridge). The generated OpenRC script's kvmctl() is also run for real against this home.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths } from '../../src/host/paths.js';
import { makeHome, qemuProcessesMentioning, TINY, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const can = canUseNetns();
let h: Home;
let ns: Netns;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const log = (m: string) => process.stdout.write(`[autostart.test] ${m}\n`);

beforeAll(async () => {
  if (!can.ok) return;
  h = makeHome();
  ns = await createNetns();
  await h.apply(`kind: network
name: lan
type: host-only
addresses: [10.77.0.1/24]
`);
  await h.apply(`${TINY('a0')}autostart: { order: 0, delay: 1 }\nnics: [{ network: lan }]\n`);
  await h.apply(`${TINY('deaf0', 'kvt.noacpi=1')}autostart: { order: 0 }\n`);
  await h.apply(`${TINY('b1')}autostart: { order: 1 }\n`);
  await h.apply(`name: broken\nmemory: 64M\nkernel: { path: ${path.join(h.images, 'nonexistent-vmlinuz')} }\nautostart: true\n`);
  await h.apply(TINY('manual'));
  await ensureTestGuest(resolvePaths(h.env));
}, 320_000);

afterAll(async () => {
  await h?.cleanup();
  await ns?.destroy();
});

async function waitReady(name: string, ms = 90_000): Promise<number> {
  const f = path.join(h.dir, 'run/vms', name, 'serial.log');
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (fs.existsSync(f) && fs.readFileSync(f, 'utf8').includes('KVMCTL-GUEST-READY')) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name}: no ready marker in ${ms} ms`);
}

// Network namespaces need root and /dev/net/tun.
describe.skipIf(!can.ok)('autostart and shutdown-all', () => {
  it('--dry-run shows the groups and networks and starts nothing', async () => {
    const r = await h.cli(['autostart', '--dry-run', '--json', '--netns', ns.name]);
    expect(r.code, r.stderr).toBe(0);
    const p = json(r.stdout);
    expect(p.groups.map((g: any) => [g.order, g.delaySec, g.vms])).toEqual([
      [0, 1, ['a0', 'broken', 'deaf0']],
      [1, 0, ['b1']],
    ]);
    expect(p.networks).toEqual([{ name: 'lan', result: 'would-up', state: 'absent' }]);
    expect(p.groups.flatMap((g: any) => g.outcomes.map((o: any) => o.result))).toEqual(['would-start', 'would-start', 'would-start', 'would-start']);
    expect(h.pids()).toEqual([]);
  });

  it('starts the network, then order 0 in parallel, waits the delay, then order 1; the broken VM is reported, exit 1', async () => {
    const r = await h.cli(['autostart', '--json', '--netns', ns.name], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(1);
    const res = json(r.stdout);
    expect(res.networks).toMatchObject([{ name: 'lan', result: 'up' }]);
    expect(await ns.ip('-br', 'addr', 'show', 'dev', 'lan')).toContain('10.77.0.1/24');
    const [g0, g1] = res.groups;
    const by = Object.fromEntries(res.groups.flatMap((g: any) => g.outcomes).map((o: any) => [o.name, o]));
    expect(by.a0.result).toBe('started');
    expect(by.deaf0.result).toBe('started');
    expect(by.b1.result).toBe('started');
    expect(by.broken).toMatchObject({ result: 'failed' });
    expect(by.broken.error.message).toContain('nonexistent-vmlinuz');
    expect(res).toMatchObject({ started: 3, skipped: 0, failed: 1 });
    expect(by.manual).toBeUndefined();
    // Order 0 in parallel: both began at once, and their starts overlapped.
    const end = (o: any) => o.atMs + o.tookMs;
    expect(Math.abs(by.a0.atMs - by.deaf0.atMs)).toBeLessThan(1000);
    expect(by.a0.atMs).toBeLessThan(end(by.deaf0));
    expect(by.deaf0.atMs).toBeLessThan(end(by.a0));
    // Then the group's delay, then order 1.
    expect(g0.waitedMs).toBeGreaterThanOrEqual(1000);
    const g0End = Math.max(...g0.outcomes.filter((o: any) => o.tookMs !== undefined).map(end));
    expect(by.b1.atMs).toBeGreaterThanOrEqual(g0End + 1000);
    expect(g1.waitedMs).toBeUndefined(); // last group: no delay
    log(`autostart took ${res.tookMs} ms (CLI ${r.ms} ms): a0 ${by.a0.atMs}+${by.a0.tookMs}, deaf0 ${by.deaf0.atMs}+${by.deaf0.tookMs}, delay ${g0.waitedMs}, b1 ${by.b1.atMs}+${by.b1.tookMs}`);
    // a0's tap is on the bridge autostart brought up.
    expect((await ns.ip('-o', 'link', 'show', 'master', 'lan')).trim().split('\n')).toHaveLength(1);
    expect(h.pids().length).toBe(3);
    const ready = await Promise.all(['a0', 'deaf0', 'b1'].map((n) => waitReady(n)));
    log(`guests ready ${ready.join(' / ')} ms after autostart returned`);
  }, 240_000);

  it('a second autostart skips what is running and starts nothing new', async () => {
    const before = h.pids().sort();
    const r = await h.cli(['autostart', '--json', '--netns', ns.name]);
    const res = json(r.stdout);
    expect(res).toMatchObject({ started: 0, skipped: 3, failed: 1 });
    const skipped = res.groups.flatMap((g: any) => g.outcomes).filter((o: any) => o.result === 'skipped');
    expect(skipped.map((o: any) => [o.name, o.state])).toEqual([['a0', 'running'], ['deaf0', 'running'], ['b1', 'running']]);
    expect(res.groups[0].waitedMs).toBeUndefined(); // nothing started: no delay
    expect(h.pids().sort()).toEqual(before);
  });

  it('the OpenRC script\'s kvmctl() runs this kvmctl with this KVMCTL_HOME', async () => {
    const prefix = path.join(h.dir, 'root');
    fs.mkdirSync(prefix);
    const inst = await h.cli(['service', 'install', '--init', 'openrc', '--prefix', prefix, '--timeout', '5', '--json']);
    expect(inst.code, inst.stderr).toBe(0);
    const file = json(inst.stdout).file;
    const r = await run(['sh', '-c', '. "$1"; kvmctl autostart --dry-run --json', 'sh', file], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const plan = json(r.stdout);
    expect(plan.groups.flatMap((g: any) => g.outcomes).filter((o: any) => o.result === 'skipped').map((o: any) => o.name)).toEqual(['a0', 'deaf0', 'b1']);
    expect(fs.readFileSync(file, 'utf8')).toContain('shutdown-all --timeout 5');
    expect((await h.cli(['service', 'uninstall', '--prefix', prefix])).code).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('shutdown-all --timeout 5: order 1 first, the ACPI guests by ACPI, the deaf one by quit, all within timeout + a few s', async () => {
    const r = await h.cli(['shutdown-all', '--timeout', '5', '--json'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const res = json(r.stdout);
    const by = Object.fromEntries(res.vms.map((v: any) => [v.name, v]));
    expect(res.vms.map((v: any) => v.name)).toEqual(['b1', 'a0', 'deaf0']);
    expect(by.b1.how).toBe('acpi');
    expect(by.a0.how).toBe('acpi');
    expect(by.deaf0.how).toBe('quit');
    expect(res).toMatchObject({ graceful: 2, forced: 1, failed: 0 });
    // Reverse order: order 0 begins after b1 is down (or at 2.5 s, half the timeout, at the latest).
    // (t0 is taken before the status of every VM is read: under load that alone takes a while.)
    expect(by.b1.atMs).toBeLessThan(2500);
    for (const n of ['a0', 'deaf0']) {
      expect(by[n].atMs).toBeGreaterThanOrEqual(Math.min(by.b1.endMs, 2500) - 50);
      expect(by[n].atMs).toBeLessThanOrEqual(2500 + 1500);
    }
    // One deadline: the deaf guest is forced at about 5 s after shutdown-all began, not 5 s after its group began.
    expect(by.deaf0.endMs).toBeGreaterThanOrEqual(5000);
    expect(res.tookMs).toBeLessThan(5000 + 7000); // quit waits 2 s, SIGKILL 5 s more at worst
    log(`shutdown-all took ${res.tookMs} ms (CLI ${r.ms} ms): ${res.vms.map((v: any) => `${v.name} ${v.how} ${v.atMs}→${v.endMs} ms (grace ${v.graceSec} s)`).join(', ')}`);
    // No QEMU left, runtime files cleaned, the VMs show as stopped.
    expect(qemuProcessesMentioning(h.dir)).toEqual([]);
    for (const n of ['a0', 'deaf0', 'b1']) {
      expect(fs.existsSync(path.join(h.dir, 'run/vms', n, 'qemu.pid'))).toBe(false);
      expect(json((await h.cli(['status', n, '--json'])).stdout).state).toBe('stopped');
    }
    expect((await ns.ip('-o', 'link', 'show', 'master', 'lan')).trim()).toBe(''); // a0's tap released
    // Nothing left running: a second shutdown-all has nothing to do.
    const again = await h.cli(['shutdown-all', '--timeout', '5', '--json']);
    expect(again.code).toBe(0);
    expect(json(again.stdout)).toMatchObject({ vms: [], graceful: 0, forced: 0, failed: 0 });
  }, 60_000);
});
