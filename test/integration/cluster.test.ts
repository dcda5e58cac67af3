/**
 * The cluster with 3 "hosts" (namespaces with a veth to a shared bridge namespace), each with one
 * member of a real 3-member etcd cluster, its own KVMCTL_HOME and a kvmctl agent; real QEMU (TCG)
 * with the test guest. Lease TTL 5 s, failover margin 1 s. QEMU processes of every host are
 * found by their KVMCTL_HOME path in /proc/PID/cmdline.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { busyboxPing, etcdAvailable, killPid, makeCluster, pidsMentioning, type TestCluster, type TestHost, until } from '../helpers/cluster.js';
import { ROOT } from '../helpers/kvmctl.js';
import { canUseNetns } from '../helpers/netns.js';

// 5 s: a leader election (this machine: up to ~2 s under load) must fit before the fence deadline (TTL − 1.25 s after the last answered renewal).
const TTL = 5;
const GUEST_IP = '10.77.0.50';
const MARGIN = 1000;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const VM = (name: string, extra = '') => `name: ${name}
memory: 128M
kernel: { builtin: test-guest }
stopTimeout: 10
${extra}
`;

const can = canUseNetns();
const why = !can.ok ? can.why : !etcdAvailable() ? 'etcd-server is not installed (scripts/setup.sh installs it)' : undefined;

let c: TestCluster;
const h = (name: string) => c.hosts.find((x) => x.name === name)!;
/** Hosts whose KVMCTL_HOME runs a QEMU for this VM right now. */
const runningOn = (vm: string): string[] => c.hosts.flatMap((x) => x.qemus().filter((p) => cmdlineOf(p).includes(`/run/vms/${vm}/`)).map(() => x.name));
/** A process's command line, or '' when it exited since it was listed (a fenced QEMU can go at any moment). */
function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}
async function status(from: TestHost = c.hosts[0]!): Promise<any> {
  const r = await from.cli(['cluster', 'status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return json(r.stdout);
}
async function guestExec(host: TestHost, vm: string, cmd: string): Promise<string> {
  const r = await serialExec(host.paths, vm, cmd, 30_000);
  expect(r.status).toBe(0);
  return r.output.trim();
}
/**
 * Watch where `vm` runs for up to 30 s after a host failed: the most copies seen at once, when it
 * left `victim` (fenced) and when it came up elsewhere; two more seconds after that for a second copy.
 */
async function watchFailover(vm: string, victim: string, since: number): Promise<{ maxCopies: number; fencedAt: number; restartedAt: number; restartedOn: string }> {
  let maxCopies = 0;
  let fencedAt = 0;
  let restartedAt = 0;
  let restartedOn = '';
  while (Date.now() - since < 30_000) {
    const on = runningOn(vm);
    maxCopies = Math.max(maxCopies, on.length);
    if (!fencedAt && !on.includes(victim)) fencedAt = Date.now();
    const other = on.find((n) => n !== victim);
    if (other && !restartedAt) {
      restartedAt = Date.now();
      restartedOn = other;
    }
    if (restartedAt && Date.now() - restartedAt > 2000) break;
    await sleep(50);
  }
  return { maxCopies, fencedAt, restartedAt, restartedOn };
}

async function waitGuest(host: TestHost, vm: string): Promise<void> {
  await until(`${vm} guest ready on ${host.name}`, () => {
    try {
      return fs.readFileSync(path.join(host.home, 'run/vms', vm, 'serial.log'), 'utf8').includes('KVMCTL-GUEST-READY');
    } catch {
      return false;
    }
  }, 120_000, 200);
}

describe.skipIf(!!why)(`cluster on etcd, 3 hosts${why ? ` (skipped: ${why})` : ''}`, () => {
  beforeAll(async () => {
    c = await makeCluster(3, { ttl: TTL, margin: MARGIN, lan: true });
    await ensureTestGuest(c.hosts[0]!.paths);
    for (const x of c.hosts) await x.startAgent();
    await until('3 live agents', async () => (await status()).hosts.filter((x: any) => x.alive).length === 3, 30_000, 300);
    const f = path.join(c.dir, 'vms.yaml');
    fs.writeFileSync(f, ['kind: network\nname: lan\ntype: bridge\ninterface: br0\n', VM('mig', `nics: [{ network: lan, mac: "52:54:00:77:00:50" }]`).replace('test-guest }', `test-guest, append: "kvt.ip0=${GUEST_IP}/24" }`), VM('ha1', 'ha: true'), VM('spare'), VM('shared', 'shares:\n  - { path: /tmp, tag: hostshare }')].join('---\n'));
    const a = await c.hosts[0]!.cli(['cluster', 'apply', '-f', f]);
    expect(a.code, a.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  it('placement spreads VMs over the hosts (most uncommitted memory); kvmctl start/stop write desired state', async () => {
    const placed: Record<string, string> = {};
    for (const vm of ['mig', 'ha1', 'spare']) {
      const r = await c.hosts[0]!.cli(['start', vm, '--json']);
      expect(r.code, r.stderr).toBe(0);
      placed[vm] = json(r.stdout).host;
    }
    expect(new Set(Object.values(placed)).size).toBe(3);
    for (const [vm, host] of Object.entries(placed)) expect(runningOn(vm)).toEqual([host]);
    const st = await status();
    expect(st.vms.find((v: any) => v.name === 'ha1')).toMatchObject({ owner: placed.ha1, ha: true, observed: { state: 'running', host: placed.ha1 } });
    // --on overrides placement; a pinned start of a running VM is a no-op.
    const stop = await c.hosts[1]!.cli(['stop', 'spare', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    await until('spare gone', () => runningOn('spare').length === 0, 20_000);
    expect((await status()).vms.find((v: any) => v.name === 'spare').owner).toBeUndefined();
  }, 120_000);

  it('cluster status reads as a table; --on does not move a running VM; a busy host cannot leave; a VM defined only on one host is left alone by its agent', async () => {
    const t = await c.hosts[1]!.cli(['cluster', 'status']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^h1\s+yes\s+\d+\s+10\.77\.0\.1/m);
    expect(t.stdout).toMatch(/^ha1\s+running@h\d\s+h\d\s+running@h\d\s+yes/m);
    // A running VM is not re-placed by --on (that is what migrate is for); a busy host cannot leave.
    const st = await status();
    const mig = st.vms.find((v: any) => v.name === 'mig').owner as string;
    const other = c.hosts.find((y) => y.name !== mig)!;
    const on = await c.hosts[0]!.cli(['start', 'mig', '--on', other.name]);
    expect(on.code).toBe(2);
    expect(on.stderr).toMatch(/already runs on .*kvmctl migrate mig --to/s);
    const leave = await h(mig).cli(['cluster', 'leave']);
    expect(leave.code).toBe(2);
    expect(leave.stderr).toMatch(/HOST_BUSY.*still runs mig/);
    const x = c.hosts[2]!;
    fs.mkdirSync(x.paths.vmDefs, { recursive: true });
    fs.writeFileSync(path.join(x.paths.vmDefs, 'solo.yaml'), VM('solo'));
    const { startVm } = await import('../../src/vm/start.js');
    const { killVm } = await import('../../src/vm/stop.js');
    const r = await startVm(x.paths, 'solo');
    try {
      await sleep(2500); // a few reconciles
      expect(runningOn('solo')).toEqual([x.name]);
      expect(fs.existsSync(`/proc/${r.pid}`)).toBe(true);
    } finally {
      await killVm(x.paths, 'solo').catch(() => undefined);
      fs.rmSync(path.join(x.paths.vmDefs, 'solo.yaml'));
    }
  }, 60_000);

  it('refuses to live-migrate a VM with a 9p share, before trying', async () => {
    const r = await c.hosts[0]!.cli(['migrate', 'shared', '--to', 'h2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/9p share.*Migration is disabled when VirtFS export path/);
  });

  it('live migration keeps the guest RAM (a marker in tmpfs), its uptime and its network (pings every 100 ms); ownership moves with it', async () => {
    const st = await status();
    const from = st.vms.find((v: any) => v.name === 'mig').owner as string;
    const ha = st.vms.find((v: any) => v.name === 'ha1').owner as string;
    const to = c.hosts.map((x) => x.name).find((n) => n !== from && n !== ha)!;
    await waitGuest(h(from), 'mig');
    await guestExec(h(from), 'mig', 'echo kvmctl-was-here > /tmp/marker');
    const up0 = Number((await guestExec(h(from), 'mig', 'cat /proc/uptime')).split(' ')[0]);
    // Pings from the third host's namespace, every 100 ms, through the shared bridge to the guest's tap (made by kvmctl on each host, on the cluster's network lan).
    const bb = await busyboxPing(c.dir);
    let pinger: ReturnType<typeof spawn> | undefined;
    let pingOut = '';
    if (bb) {
      await until('guest answers ping', async () => (await h(ha).ns.exec([bb, 'ping', '-c', '1', '-W', '1', GUEST_IP], { allowFailure: true })).exitCode === 0, 30_000, 300);
      pinger = spawn('ip', ['netns', 'exec', h(ha).ns.name, bb, 'ping', '-i', '0.1', '-w', '60', GUEST_IP], { stdio: ['ignore', 'pipe', 'pipe'] });
      pinger.stdout!.on('data', (d) => (pingOut += d));
      await sleep(1000);
    }
    const r = await c.hosts[0]!.cli(['migrate', 'mig', '--to', to, '--json'], 120_000);
    if (pinger) {
      await sleep(1500);
      const done = new Promise((res) => pinger!.once('close', res));
      pinger.kill('SIGINT');
      await done;
    }
    expect(r.code, r.stderr).toBe(0);
    const m = json(r.stdout);
    expect(m).toMatchObject({ from, to, state: 'done' });
    expect(m.stats.downtimeMs).toBeGreaterThanOrEqual(0);
    await until('source copy gone', () => runningOn('mig').join() === to, 20_000);
    // The tap was made on the destination's bridge and removed from the source's.
    const ports = async (x: TestHost) => (await x.ns.ip('-o', 'link', 'show', 'master', 'br0')).split('\n').filter(Boolean).map((l) => l.split(': ')[1]!.split('@')[0]!);
    await until('source tap removed', async () => (await ports(h(from))).join() === 'eth0', 10_000, 200);
    expect((await ports(h(to))).filter((p) => p !== 'eth0')).toHaveLength(1);
    expect(await guestExec(h(to), 'mig', 'cat /tmp/marker')).toBe('kvmctl-was-here');
    const up1 = Number((await guestExec(h(to), 'mig', 'cat /proc/uptime')).split(' ')[0]);
    expect(up1).toBeGreaterThan(up0); // the same boot continues (a restart would start near 0)
    expect((await status()).vms.find((v: any) => v.name === 'mig')).toMatchObject({ owner: to, desired: { host: to } });
    const pm = /(\d+) packets transmitted, (\d+) packets received/.exec(pingOut);
    const pingsLost = pm ? Number(pm[1]) - Number(pm[2]) : undefined;
    if (bb) {
      expect(pm, pingOut).toBeTruthy();
      expect(Number(pm![2])).toBeGreaterThan(10);
      expect(pingsLost).toBeLessThanOrEqual(3);
    }
    const numbers = { pingsSent: pm ? Number(pm[1]) : undefined, pingsLost, migrateCliMs: m.totalMs, qemuTotalMs: m.stats.totalTimeMs, downtimeMs: m.stats.downtimeMs, setupMs: m.stats.setupTimeMs, transferredBytes: m.stats.transferredBytes, uptimeBefore: up0, uptimeAfter: up1 };
    fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'test-output/cluster-migration.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    console.log('migration', numbers);
  }, 180_000);

  it('kill -9 of an agent: the watchdog fences its HA VM within the lease TTL, another host restarts it after expiry + margin, never two copies', async () => {
    const victim = h((await status()).vms.find((v: any) => v.name === 'ha1').owner);
    const before = runningOn('ha1');
    expect(before).toEqual([victim.name]);
    const t0 = Date.now();
    await killPid(victim.agentPid, 'SIGKILL');
    const killedAt = Date.now();
    const { maxCopies, fencedAt, restartedAt, restartedOn } = await watchFailover('ha1', victim.name, t0);
    const numbers = { fencedAfterMs: fencedAt - killedAt, restartedAfterMs: restartedAt - killedAt, restartedOn, ttlMs: TTL * 1000, marginMs: MARGIN };
    console.log('failover', numbers);
    fs.writeFileSync(path.join(ROOT, 'test-output/cluster-failover.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    expect(maxCopies).toBe(1);
    expect(fencedAt).toBeGreaterThan(0);
    expect(fencedAt - killedAt).toBeLessThan(TTL * 1000);
    expect(restartedAt).toBeGreaterThan(fencedAt);
    // Not before the lease could have expired (it was renewed at most TTL/4 before the kill) plus the margin.
    expect(restartedAt - killedAt).toBeGreaterThanOrEqual(TTL * 1000 * 0.75 + MARGIN - 100);
    expect(restartedOn).not.toBe(victim.name);
    // The non-HA VM elsewhere is untouched; the watchdog of the dead agent has exited.
    expect(runningOn('mig')).toHaveLength(1);
    await until('watchdog exits', () => pidsMentioning(victim.home, 'watchdog').length === 0, 5000);
    // The host comes back: it does not start a second copy.
    await victim.startAgent();
    await until('victim back', async () => (await status()).hosts.find((x: any) => x.name === victim.name).alive, 20_000, 300);
    await sleep(TTL * 1000);
    expect(runningOn('ha1')).toEqual([restartedOn]);
  }, 120_000);

  it('a partition (the host\'s veth cut): it fences its HA VM within the TTL and keeps its non-HA VM; the HA VM comes back elsewhere once; healing starts no second copy', async () => {
    const victim = h((await status()).vms.find((v: any) => v.name === 'ha1').owner);
    const ctl = c.hosts.find((x) => x !== victim)!;
    const pin = await ctl.cli(['start', 'spare', '--on', victim.name, '--json']);
    expect(pin.code, pin.stderr).toBe(0);
    const sparePid = victim.qemus().find((p) => cmdlineOf(p).includes('/run/vms/spare/'));
    expect(sparePid).toBeGreaterThan(0);
    const port = `p${victim.name.slice(1)}`;
    await c.bridge.ip('link', 'set', port, 'down');
    const cutAt = Date.now();
    let w: Awaited<ReturnType<typeof watchFailover>>;
    try {
      w = await watchFailover('ha1', victim.name, cutAt);
      // The non-HA VM on the cut-off host keeps running.
      expect(victim.qemus()).toContain(sparePid);
    } finally {
      await c.bridge.ip('link', 'set', port, 'up');
    }
    const { maxCopies, fencedAt, restartedAt, restartedOn } = w;
    const numbers = { fencedAfterMs: fencedAt - cutAt, restartedAfterMs: restartedAt - cutAt, restartedOn };
    console.log('partition', numbers);
    fs.writeFileSync(path.join(ROOT, 'test-output/cluster-partition.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    expect(maxCopies).toBe(1);
    // Within the TTL — plus up to one election timeout (1 s) when the cut-off host's own etcd member
    // was the leader: it answers keepalives until it notices it lost the majority (the majority's
    // new leader then extends every lease by the TTL, so the fence still comes before expiry).
    expect(fencedAt - cutAt).toBeLessThan(TTL * 1000 + 1000);
    expect(restartedAt - cutAt).toBeGreaterThanOrEqual(TTL * 1000 * 0.75 + MARGIN - 100);
    expect(restartedOn).not.toBe(victim.name);
    // Healed: the host gets a new lease, takes its non-HA VM back, and starts no second ha1.
    await until('victim owns spare again', async () => (await status(ctl)).vms.find((v: any) => v.name === 'spare').owner === victim.name, 30_000, 300);
    await sleep(TTL * 1000);
    expect(runningOn('ha1')).toEqual([restartedOn]);
    expect(victim.qemus()).toContain(sparePid);
    const st = await ctl.cli(['stop', 'spare']);
    expect(st.code, st.stderr).toBe(0);
  }, 120_000);

  it('stopping one etcd member keeps the cluster working (placement, leases, no fencing)', async () => {
    const haPid = runningOn('ha1');
    const victim = c.hosts[2]!;
    await killPid(victim.etcdPid, 'SIGTERM');
    const st = await status();
    expect(st.etcd.filter((e: any) => !e.ok).map((e: any) => e.endpoint)).toEqual([`http://${victim.ip}:2379`]);
    // Leases keep being renewed through the other members: nothing is fenced for 2 TTLs.
    const qemusBefore = c.hosts.flatMap((x) => x.qemus()).sort();
    await sleep(2 * TTL * 1000);
    expect(c.hosts.flatMap((x) => x.qemus()).sort()).toEqual(qemusBefore);
    expect((await status()).hosts.filter((x: any) => x.alive)).toHaveLength(3);
    // New placements still work.
    const r = await c.hosts[0]!.cli(['start', 'spare', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(runningOn('spare')).toEqual([json(r.stdout).host]);
    expect(runningOn('ha1')).toEqual(haPid);
    const s = await c.hosts[0]!.cli(['stop', 'spare']);
    expect(s.code, s.stderr).toBe(0);
  }, 120_000);

  it('losing etcd quorum: new placements fail, non-HA guests keep running, HA guests are fenced and restarted nowhere', async () => {
    // One member is already down (previous test); stopping a second leaves 1 of 3.
    const down = c.hosts.find((x) => x.etcdPid && fs.existsSync(`/proc/${x.etcdPid}`) && x !== c.hosts[0])!;
    const migPids = c.hosts.flatMap((x) => x.qemus().filter((p) => cmdlineOf(p).includes('/run/vms/mig/')));
    expect(migPids).toHaveLength(1);
    expect(runningOn('ha1')).toHaveLength(1);
    await killPid(down.etcdPid, 'SIGTERM');
    const lostAt = Date.now();
    let fencedAt = 0;
    while (Date.now() - lostAt < TTL * 1000 + 2000) {
      if (!fencedAt && runningOn('ha1').length === 0) fencedAt = Date.now();
      await sleep(50);
    }
    console.log('quorum loss', { haFencedAfterMs: fencedAt - lostAt });
    expect(fencedAt).toBeGreaterThan(0);
    // The leader answers keepalives until it notices the lost quorum (about one election timeout, 1 s) and the stopped member shuts down gracefully; then TTL − 1.25 s.
    expect(fencedAt - lostAt).toBeLessThan(TTL * 1000 + 2500);
    const r = await c.hosts[0]!.cli(['start', 'spare', '--json'], 30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ETCD_UNAVAILABLE|etcd/i);
    await sleep(TTL * 1000);
    expect(runningOn('ha1')).toHaveLength(0);
    expect(c.hosts.flatMap((x) => x.qemus())).toContain(migPids[0]);
  }, 120_000);
});
