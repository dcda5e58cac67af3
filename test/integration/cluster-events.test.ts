/**
 * Cluster events and migration cancel across hosts (issue #17 item 4), on a 2-host test cluster
 * (namespaces, a real 2-member etcd, a `kvmctl agent` and a `kvmctl serve` per host:
 * test/helpers/cluster.ts) with a real QEMU test guest, HA, on h1:
 *  - a migration asked through h2's serve (not the source's) is cancelled through h2's task
 *    cancel: the request reaches h1's agent through etcd, QEMU on h1 says `cancelled`, the VM stays
 *    on h1, and both serves' event streams carry the failed-migration event;
 *  - kill -9 of h1's agent: h2's agent fails the VM over, and the failover event reaches the event
 *    stream of both serves (h1's serve did nothing: it reads the record from etcd); the Cluster
 *    page in Chromium (through h1's serve) lists it under Recent events.
 * Numbers: test-output/cluster-events.json. Screenshots: test-output/cluster-events/.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvmEvent } from '../../src/api/contract.js';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { EventTap } from '../helpers/api-events.js';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { etcdAvailable, killPid, makeCluster, type TestCluster, type TestHost, until } from '../helpers/cluster.js';
import { BIN, ROOT } from '../helpers/kvmctl.js';
import { canUseNetns } from '../helpers/netns.js';

const TTL = 5;
const MARGIN = 1000;
const SHOTS = path.join(ROOT, 'test-output/cluster-events');
const can = canUseNetns();
const why = !can.ok ? can.why : !etcdAvailable() ? 'etcd-server is not installed' : undefined;

type Serve = { proc: ChildProcess; sock: string; base: string; proxy: net.Server; log: () => string };

async function startServe(h: TestHost): Promise<Serve> {
  let log = '';
  const proc = spawn('ip', ['netns', 'exec', h.ns.name, process.execPath, BIN, 'serve'], { env: h.env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  const sock = path.join(h.home, 'run/kvmctl.sock');
  await until(`serve's socket on ${h.name}`, () => fs.existsSync(sock), 30_000);
  // The browser and fetch live in the root namespace: a loopback port here → the serve's unix socket.
  const proxy = net.createServer((client) => {
    const up = net.connect(sock);
    client.pipe(up).pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  await until(`serve healthy on ${h.name} (${log})`, async () => (await fetch(`${base}/api/health`)).ok, 30_000);
  return { proc, sock, base, proxy, log: () => log };
}

async function stopServe(s: Serve | undefined): Promise<void> {
  if (!s) return;
  s.proxy.close();
  if (s.proc.exitCode !== null) return;
  s.proc.kill('SIGTERM');
  await new Promise((r) => {
    const t = setTimeout(() => (s.proc.kill('SIGKILL'), r(null)), 5000);
    s.proc.once('exit', () => (clearTimeout(t), r(null)));
  });
}

const post = (base: string, p: string, body?: unknown) =>
  fetch(`${base}${p}`, { method: 'POST', headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

describe.skipIf(!!why)(`cluster events and cross-host migration cancel${why ? ` (skipped: ${why})` : ''}`, () => {
  let c: TestCluster;
  const serves: Serve[] = [];
  const taps: EventTap[] = [];
  let b: TestBrowser | undefined;
  const numbers: Record<string, unknown> = {};
  const status = async () => {
    const r = await c.hosts[1]!.cli(['cluster', 'status', '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { hosts: { name: string; alive: boolean }[]; vms: { name: string; owner?: string }[] };
  };

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    c = await makeCluster(2, { ttl: TTL, margin: MARGIN });
    await ensureTestGuest(c.hosts[0]!.paths);
    for (const x of c.hosts) await x.startAgent();
    await until('2 live agents', async () => (await status()).hosts.filter((x) => x.alive).length === 2, 30_000, 300);
    const f = path.join(c.dir, 'vms.yaml');
    fs.writeFileSync(f, 'name: hv\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 10\nha: true\n');
    const a = await c.hosts[0]!.cli(['cluster', 'apply', '-f', f]);
    expect(a.code, a.stderr).toBe(0);
    const st = await c.hosts[0]!.cli(['start', 'hv', '--on', 'h1', '--json']);
    expect(st.code, st.stderr).toBe(0);
    await until('guest ready on h1', () => fs.readFileSync(path.join(c.hosts[0]!.home, 'run/vms/hv/serial.log'), 'utf8').includes('KVMCTL-GUEST-READY'), 120_000);
    for (const h of c.hosts) serves.push(await startServe(h));
    for (const s of serves) taps.push(await EventTap.open(s.sock));
  }, 300_000);

  afterAll(async () => {
    for (const t of taps) t.close();
    await b?.close();
    for (const s of serves) await stopServe(s);
    await c?.destroy();
    if (Object.keys(numbers).length) {
      fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
      fs.writeFileSync(path.join(ROOT, 'test-output/cluster-events.json'), `${JSON.stringify(numbers, null, 2)}\n`);
      console.log('cluster events', numbers);
    }
  }, 60_000);

  it('a cancel with no migration in progress is a clear 400 that changes nothing', async () => {
    const r = await post(serves[1]!.base, '/api/cluster/vms/hv/migrate/cancel');
    expect(r.status).toBe(400);
    expect(((await r.json()) as { code: string }).code).toBe('NO_MIGRATION');
    expect((await status()).vms.find((v) => v.name === 'hv')?.owner).toBe('h1');
  });

  it("cancels a migration from h2's serve (not the source's): the VM stays on h1, QEMU there says cancelled, both streams get the event", async () => {
    const h2 = serves[1]!.base;
    // 1 MiB/s: still copying when the cancel comes.
    const asked = post(h2, '/api/cluster/vms/hv/migrate', { to: 'h2', bwlimit: 1024 * 1024 });
    const task = await until(
      'the migration copying (progress > 0)',
      async () => ((await (await fetch(`${h2}/api/tasks?vm=hv&state=running`)).json()) as { id: string; kind: string; progress: number | null }[]).find((t) => t.kind === 'migrateVm' && (t.progress ?? 0) > 0),
      90_000,
      250,
    );
    const t0 = Date.now();
    const cr = await post(h2, `/api/tasks/${task.id}/cancel`);
    expect(cr.status, await cr.clone().text()).toBe(200);
    const answer = await asked;
    numbers.crossHostCancelMs = Date.now() - t0;
    expect(answer.status).toBe(422);
    const err = (await answer.json()) as { code: string; message: string };
    expect(err.code).toBe('MIGRATION_FAILED');
    expect(err.message).toMatch(/cancelled \(asked by the serve on h2\)/);
    const t = (await (await fetch(`${h2}/api/tasks/${task.id}`)).json()) as { state: string };
    expect(t.state).toBe('cancelled');
    const log = (await (await fetch(`${h2}/api/tasks/${task.id}/log`)).json()) as { lines: { text?: string; line?: string }[] } | { text: string }[];
    expect(JSON.stringify(log)).toMatch(/through etcd \(migcancel\)/);
    const q = await c.hosts[0]!.cli(['--json', 'qmp', 'hv', '{"execute":"query-migrate"}']);
    expect(q.code, q.stderr).toBe(0);
    expect((JSON.parse(q.stdout) as { return: { status?: string } }).return.status).toBe('cancelled');
    expect((await status()).vms.find((v) => v.name === 'hv')?.owner).toBe('h1');
    await until('no incoming QEMU left on h2', () => c.hosts[1]!.qemus().length === 0, 60_000);
    for (const tap of taps) {
      const e = await tap.wait((x) => x.kind === 'cluster' && x.type === 'migration' && x.vm === 'hv', 30_000, 'migration event');
      expect(e).toMatchObject({ kind: 'cluster', type: 'migration', vm: 'hv', from: 'h1', to: 'h2', state: 'failed', by: 'h1' });
    }
  }, 240_000);

  it("kill -9 of h1's agent: h2 fails the VM over and the failover event reaches both serves' streams and the Cluster page", async () => {
    if (hasChromium() && fs.existsSync(path.join(ROOT, 'dist/web/index.html'))) {
      b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
      b.page.setDefaultTimeout(30_000);
      await b.page.goto(`${serves[0]!.base}/#/cluster`);
      await b.page.locator('tr[data-vm=hv][data-owner=h1]').waitFor();
    }
    const got: { host: string; e: KvmEvent; at: number }[] = [];
    const waits = taps.map((tap, i) => tap.wait((x) => x.kind === 'cluster' && x.type === 'failover' && x.vm === 'hv', 60_000, 'failover event').then((e) => got.push({ host: c.hosts[i]!.name, e, at: Date.now() })));
    const killedAt = Date.now();
    await killPid(c.hosts[0]!.agentPid, 'SIGKILL');
    await Promise.all(waits);
    for (const g of got) expect(g.e).toMatchObject({ kind: 'cluster', type: 'failover', vm: 'hv', from: 'h1', to: 'h2', by: 'h2' });
    const acted = Date.parse((got[0]!.e as { happenedAt: string }).happenedAt);
    numbers.failoverAfterKillMs = acted - killedAt;
    for (const g of got) numbers[`eventOn${g.host}AfterFailoverMs`] = g.at - acted;
    // Taken over: h2 owns it and its QEMU runs there.
    await until('hv owned by h2', async () => (await status()).vms.find((v) => v.name === 'hv')?.owner === 'h2', 60_000, 300);
    // Recorded in etcd: the cluster status (any serve) lists it, newest first.
    const st = (await (await fetch(`${serves[0]!.base}/api/cluster`)).json()) as { events: { type: string; vm: string }[] };
    expect(st.events[0]).toMatchObject({ type: 'failover', vm: 'hv', from: 'h1', to: 'h2' });
    expect(st.events.some((e) => e.type === 'migration')).toBe(true);
    if (b) {
      const row = b.page.locator('table[aria-label="Cluster events"] tr[data-event=failover][data-vm=hv]');
      const t0 = Date.now();
      await row.waitFor();
      numbers.pageRowAfterEventMs = Date.now() - Math.max(t0, got.find((g) => g.host === 'h1')!.at);
      expect(await row.textContent()).toMatch(/h1 → h2/);
      expect(await b.page.locator('table[aria-label="Cluster events"] tr[data-event=migration][data-vm=hv][data-state=failed]').count()).toBe(1);
      await b.shot('cluster-events');
    }
  }, 180_000);
});
