/**
 * The cluster view in a real browser against a 2-host test cluster (namespaces, a real 2-member
 * etcd, a `kvmctl agent` per host: test/helpers/cluster.ts) and a real QEMU test guest:
 * `kvmctl serve` runs in h1's namespace (its unix socket; the test bridges a loopback TCP port of
 * the root namespace to that socket, since the browser lives there), the Cluster page lists both
 * hosts alive with their lease and memory, and the guest on h1; Migrate to h2 runs as a task whose
 * row appears in the task panel while it runs, the VM's owner becomes h2 (the CLI's cluster status
 * agrees, the guest keeps its boot) and the task keeps the migration's steps in its log. Before
 * that, a migration asked at 1 MiB/s is cancelled from the task panel: the VM stays on h1.
 * Screenshots: test-output/web-ui-cluster/.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { etcdAvailable, makeCluster, type TestCluster, until } from '../helpers/cluster.js';
import { BIN, ROOT } from '../helpers/kvmctl.js';
import { canUseNetns } from '../helpers/netns.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-cluster');
const can = canUseNetns();
const why = !can.ok ? can.why : !etcdAvailable() ? 'etcd-server is not installed' : !hasChromium() ? 'no Chromium' : !fs.existsSync(path.join(ROOT, 'dist/web/index.html')) ? 'the web UI is not built' : undefined;
describe.skipIf(!!why)(`cluster view in Chromium${why ? ` (skipped: ${why})` : ''}`, () => {
  let c: TestCluster;
  let serve: ChildProcess | undefined;
  let proxy: net.Server | undefined;
  let b: TestBrowser;
  let base = '';
  let serveLog = '';
  const pageErrors: string[] = [];
  const status = async () => {
    const r = await c.hosts[0]!.cli(['cluster', 'status', '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { hosts: { name: string; alive: boolean }[]; vms: { name: string; owner?: string }[] };
  };

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    c = await makeCluster(2, { ttl: 5, margin: 1000 });
    await ensureTestGuest(c.hosts[0]!.paths);
    for (const x of c.hosts) await x.startAgent();
    await until('2 live agents', async () => (await status()).hosts.filter((x) => x.alive).length === 2, 30_000, 300);
    const f = path.join(c.dir, 'vms.yaml');
    fs.writeFileSync(f, 'name: mv\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 10\n');
    const a = await c.hosts[0]!.cli(['cluster', 'apply', '-f', f]);
    expect(a.code, a.stderr).toBe(0);
    const st = await c.hosts[0]!.cli(['start', 'mv', '--on', 'h1', '--json']);
    expect(st.code, st.stderr).toBe(0);
    await until('guest ready on h1', () => fs.readFileSync(path.join(c.hosts[0]!.home, 'run/vms/mv/serial.log'), 'utf8').includes('KVMCTL-GUEST-READY'), 120_000);

    // kvmctl serve on h1, inside its namespace (it reaches etcd there); a loopback port here → its unix socket.
    const h1 = c.hosts[0]!;
    serve = spawn('ip', ['netns', 'exec', h1.ns.name, process.execPath, BIN, 'serve'], { env: h1.env, stdio: ['ignore', 'pipe', 'pipe'] });
    serve.stdout!.on('data', (d) => (serveLog += d));
    serve.stderr!.on('data', (d) => (serveLog += d));
    const sock = path.join(h1.home, 'run/kvmctl.sock');
    await until(`serve's socket (${serveLog})`, () => fs.existsSync(sock), 30_000);
    proxy = net.createServer((client) => {
      const up = net.connect(sock);
      client.pipe(up).pipe(client);
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => proxy!.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    await until('serve healthy', async () => (await fetch(`${base}/api/health`)).ok, 30_000);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.setDefaultTimeout(30_000);
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    proxy?.close();
    if (serve?.pid && serve.exitCode === null) {
      serve.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (serve!.kill('SIGKILL'), r(null)), 5000);
        serve!.once('exit', () => (clearTimeout(t), r(null)));
      });
    }
    await c?.destroy();
  }, 60_000);

  it('cancels a migration from the task panel: the VM stays on h1, running the same boot, and nothing is left on h2', async () => {
    const page = b.page;
    await page.goto(`${base}/#/cluster`);
    await page.locator('tr[data-vm=mv][data-owner=h1]').waitFor();
    const h1 = c.hosts[0]!;
    const uptime0 = Number((await serialExec(h1.paths, 'mv', 'cat /proc/uptime', 30_000)).output.trim().split(' ')[0]);
    // Asked through the API at 1 MiB/s (bwlimit), so it is still copying when the cancel comes.
    const asked = fetch(`${base}/api/cluster/vms/mv/migrate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'h2', bwlimit: 1024 * 1024 }) });
    const fresh = page.locator('[data-testid=task-panel] tr[data-state=running]', { hasText: 'migrateVm' }).first();
    await fresh.waitFor();
    const task = page.locator(`[data-testid=task-panel] tr[data-task="${await fresh.getAttribute('data-task')}"]`);
    const cancel = task.getByRole('button', { name: 'Cancel this task' });
    await cancel.waitFor({ timeout: 30_000 });
    // Let QEMU get going first (the agent reports its progress; it holds qmp.sock meanwhile).
    await expect
      .poll(async () => ((await (await fetch(`${base}/api/tasks?vm=mv&state=running`)).json()) as { kind: string; progress: number | null }[]).find((t) => t.kind === 'migrateVm')?.progress ?? 0, { timeout: 60_000, intervals: [250] })
      .toBeGreaterThan(0);
    await b.shot('cluster-migration-cancelling');
    await cancel.click();
    await expect.poll(() => task.getAttribute('data-state'), { timeout: 60_000, intervals: [250] }).toBe('cancelled');
    const answer = await asked;
    expect(answer.status).toBe(422);
    expect(((await answer.json()) as { code: string }).code).toBe('MIGRATION_FAILED');
    await task.getByRole('button', { name: /migrateVm/ }).click();
    const log = (await page.getByTestId('task-log').locator('pre').textContent()) ?? '';
    expect(log).toMatch(/cancel requested/);
    expect(log).toMatch(/migrate_cancel/);
    await b.shot('cluster-migration-cancelled');
    await task.getByRole('button', { name: /migrateVm/ }).click(); // closes the log again
    await page.getByTestId('task-log').waitFor({ state: 'detached' });
    const q = await h1.cli(['--json', 'qmp', 'mv', '{"execute":"query-migrate"}']);
    expect(q.code, q.stderr).toBe(0);
    expect((JSON.parse(q.stdout) as { return: { status?: string } }).return.status).toBe('cancelled');
    expect((await status()).vms.find((v) => v.name === 'mv')?.owner).toBe('h1');
    await until('no incoming QEMU left on h2', () => c.hosts[1]!.qemus().length === 0, 60_000);
    expect(Number((await serialExec(h1.paths, 'mv', 'cat /proc/uptime', 30_000)).output.trim().split(' ')[0])).toBeGreaterThan(uptime0);
    // The cancelled request is cleared: a new migration is accepted (the next test).
  }, 240_000);

  it('lists the hosts with their lease and the VM on h1; Migrate moves it to h2 as a task with progress and log', async () => {
    const page = b.page;
    await page.goto(`${base}/#/cluster`);
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    for (const h of ['h1', 'h2']) await page.locator(`tr[data-host=${h}][data-alive=true]`).waitFor();
    expect(await page.locator('tr[data-host=h1]').textContent()).toMatch(/alive · \d+ s left/);
    const row = page.locator('tr[data-vm=mv]');
    await page.locator('tr[data-vm=mv][data-owner=h1]').waitFor();
    expect(await page.locator('tr[data-host=h1] td').last().textContent()).toBe('mv');
    await b.shot('cluster-before');

    const guestUptime = async (h: number) => Number((await serialExec(c.hosts[h]!.paths, 'mv', 'cat /proc/uptime', 30_000)).output.trim().split(' ')[0]);
    const uptime0 = await guestUptime(0);
    await page.getByLabel('Migrate mv to').selectOption('h2');
    await row.getByRole('button', { name: 'Migrate' }).click();
    // The new task's row (the cancelled one from the test before is in the panel too).
    const fresh = page.locator('[data-testid=task-panel] tr[data-state=running]', { hasText: 'migrateVm' }).first();
    await fresh.waitFor();
    const task = page.locator(`[data-testid=task-panel] tr[data-task="${await fresh.getAttribute('data-task')}"]`);
    await b.shot('cluster-migrating');
    await expect.poll(() => task.getAttribute('data-state'), { timeout: 120_000, intervals: [250] }).toBe('ok');
    await page.locator('tr[data-vm=mv][data-owner=h2]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('migration-mv').getAttribute('data-state')).toBe('ok');
    expect((await status()).vms.find((v) => v.name === 'mv')?.owner).toBe('h2');
    await task.getByRole('button', { name: /migrateVm/ }).click();
    const log = (await page.getByTestId('task-log').locator('pre').textContent()) ?? '';
    expect(log).toContain('POST /api/cluster/vms/mv/migrate');
    expect(log).toMatch(/h1 → h2: requested/);
    expect(log).toMatch(/h1 → h2: done/);
    expect(log).toMatch(/result: \{"name":"mv","from":"h1","to":"h2"/);
    await b.shot('cluster-after');
    // The same boot goes on at h2 (a restart would start near 0).
    expect(await guestUptime(1)).toBeGreaterThan(uptime0);
    // The task reported QEMU's progress (it ends at 100 when it had any).
    const tasks = (await (await fetch(`${base}/api/tasks?vm=mv`)).json()) as { kind: string; progress: number | null; owner: string }[];
    expect(tasks.find((t) => t.kind === 'migrateVm')).toMatchObject({ progress: 100, owner: 'local' });
    expect(pageErrors).toEqual([]);
  }, 200_000);
});
