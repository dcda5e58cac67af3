/**
 * Graphs and the task panel in a real browser (Debian's Chromium through playwright-core)
 * against the real `kvmctl serve --listen` (token, metrics sampled every second through
 * KVMCTL_METRICS_INTERVAL_MS) and a real QEMU test guest:
 * - the VM's Start button makes a task that appears in the bottom panel while it runs and stays
 *   there, with its log, after it ended;
 * - the VM's Graphs tab draws uPlot charts whose data are exactly the points of
 *   GET /api/vms/:name/metrics (every chart, every series, every point), on a canvas with ink;
 *   the 30-day range switches to the coarse series; the host's Graphs page matches /api/host/metrics;
 * - a preallocated disk create started through the API shows its progress climbing live in the
 *   panel, its log grows while it runs, and the finished task (state, 100 %, log) is still
 *   listed after a page reload.
 * Screenshots: test-output/web-ui-metrics/.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryDto } from '../../src/api/contract-metrics.js';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-metrics');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const VM = 'graphs';

type ChartDump = { id: string; fields: string[]; data: (number | null)[][]; ink: number };

describe.skipIf(!hasChromium() || !WEB_BUILT)('graphs and tasks in Chromium against kvmctl serve and real QEMU', () => {
  let home: Home;
  let server: Served;
  let b: TestBrowser;
  let base = '';
  const token = randomBytes(16).toString('hex');
  const pageErrors: string[] = [];
  const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const r = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const j = (await r.json()) as T;
    if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(j)}`);
    return j;
  };
  const shot = async (name: string) => {
    expect(await b.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `${name}: wider than the window`).toBe(true);
    await b.shot(name);
  };
  /** Every chart on the page: its fields, uPlot's data and how many plotted pixels are not background. */
  const charts = (): Promise<ChartDump[]> =>
    b.page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>('[data-testid^=chart-]')].map((el) => {
        const u = (el as HTMLElement & { uplot?: { data: (number | null)[][]; ctx: CanvasRenderingContext2D; bbox: { left: number; top: number; width: number; height: number } } }).uplot!;
        const { left, top, width, height } = u.bbox;
        const px = u.ctx.getImageData(left, top, Math.max(1, width), Math.max(1, height)).data;
        let ink = 0;
        for (let i = 0; i < px.length; i += 4) if (px[i + 3]! > 0 && px[i]! + px[i + 1]! + px[i + 2]! < 600) ink++;
        return { id: el.dataset.testid!.slice(6), fields: (el.dataset.fields ?? '').split(','), data: u.data.map((a) => [...a]), ink };
      }),
    );
  /** The chart's points are the API's: same times, and at each time the same value of each field. */
  const expectChartsMatch = (cs: ChartDump[], h: HistoryDto) => {
    const at = new Map(h.t.map((t, i) => [t, i]));
    for (const c of cs) {
      const [t, ...cols] = c.data as [number[], ...(number | null)[][]];
      expect(t.length, `${c.id}: points`).toBeGreaterThan(0);
      // The page fetched a moment before this API call: its window may lack the newest points only.
      expect(h.t.length - t.length, `${c.id}: the chart lags the API by more than 3 samples`).toBeLessThanOrEqual(3);
      t.forEach((x, i) => {
        const j = at.get(x);
        expect(j, `${c.id}: t=${x} is not in the API series`).toBeDefined();
        c.fields.forEach((f, k) => expect(cols[k]![i], `${c.id}.${f} at ${x}`).toBe(h.series[f]![j!]));
      });
    }
  };

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    await home.apply(`name: ${VM}\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: ${VM}.qcow2, create: { size: 16M } }]\nstopTimeout: 5\n`);
    server = await startServe(home, token, 30_000, { KVMCTL_METRICS_INTERVAL_MS: '1000' });
    base = server.base;
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.on('pageerror', (e) => pageErrors.push(`${e.message} ${e.stack}`));
    b.page.setDefaultTimeout(30_000);
  }, 120_000);

  afterAll(async () => {
    await b?.close();
    await server?.stop();
    await home?.cleanup();
  });

  it('the Start button makes a task: listed live in the bottom panel, with its log after it ended', async () => {
    const page = b.page;
    await page.goto(`${base}/?token=${token}#/vms/${VM}`);
    await page.locator('[data-testid=vm-state][data-state=stopped]').waitFor();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    const panel = page.getByTestId('task-panel');
    const row = panel.locator('tr', { hasText: 'startVm' }).first();
    await row.waitFor();
    await row.locator('[data-state], .task-state').first().waitFor();
    await page.locator('[data-testid=vm-state][data-state=running]').waitFor({ timeout: 90_000 });
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 30_000 }).toBe('ok');
    await row.getByRole('button', { name: /startVm/ }).click();
    const log = page.getByTestId('task-log');
    await expect.poll(() => log.locator('pre').textContent()).toContain(`POST /api/vms/${VM}/start`);
    expect(await log.locator('pre').textContent()).toMatch(/result: \{"name":"graphs","pid":\d+/);
    expect(await row.locator('td').nth(3).textContent()).toBe('token'); // the main token's identity (src/api/auth.ts)
    await shot('task-panel-start');
  }, 150_000);

  it("the Graphs tab draws exactly the API's series, 1 hour and 30 days", async () => {
    const page = b.page;
    await page.getByRole('tab', { name: 'Graphs' }).click();
    await page.getByTestId('metric-graphs').waitFor();
    // A refresh every 2 s (the step is 1 s): wait for 6 points with CPU values.
    await expect
      .poll(async () => ((await charts()).find((c) => c.id === 'cpu')?.data[1] ?? []).filter((v) => v !== null).length, { timeout: 60_000, intervals: [1000] })
      .toBeGreaterThanOrEqual(6);
    const cs = await charts();
    expect(cs.map((c) => c.id)).toEqual(['cpu', 'memory', 'disk', 'iops', 'net']);
    const h = await api<HistoryDto>('GET', `/api/vms/${VM}/metrics?range=1h`);
    expectChartsMatch(cs, h);
    for (const c of cs.filter((x) => x.id === 'cpu' || x.id === 'memory')) expect(c.ink, `${c.id}: nothing drawn`).toBeGreaterThan(50);
    await shot('vm-graphs-1h');

    await page.getByRole('button', { name: '30 days' }).click();
    await page.locator('[data-testid=metric-graphs][data-range="30d"]').waitFor();
    await page.getByRole('status').filter({ hasText: 'one every 30 s' }).waitFor();
    const coarse = await api<HistoryDto>('GET', `/api/vms/${VM}/metrics?range=30d`);
    expect(coarse.stepSec).toBe(30);
    expectChartsMatch(await charts(), coarse);
    await shot('vm-graphs-30d');
  }, 120_000);

  it("the host's Graphs page matches /api/host/metrics", async () => {
    const page = b.page;
    await page.getByRole('link', { name: 'Graphs' }).click();
    await page.getByRole('heading', { name: 'Host graphs' }).waitFor();
    await expect.poll(async () => (await charts()).find((c) => c.id === 'cpu')?.data[0]?.length ?? 0, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    const cs = await charts();
    expect(cs.map((c) => c.id)).toEqual(['cpu', 'memory', 'load']);
    expectChartsMatch(cs, await api<HistoryDto>('GET', '/api/host/metrics?range=1h'));
    await shot('host-graphs');
  }, 60_000);

  it("a disk create's progress and log appear live in the panel and remain after it ends (and after a reload)", async () => {
    const page = b.page;
    const created = api<{ path: string }>('POST', '/api/disks', { path: 'ui-big.raw', size: '2G', format: 'raw', prealloc: 'full' });
    const first = page.getByTestId('task-panel').locator('tr', { hasText: 'createDisk' }).first();
    await first.waitFor();
    const id = (await first.getAttribute('data-task'))!;
    const row = page.locator(`[data-testid=task-panel] tr[data-task="${id}"]`);
    await row.getByRole('button', { name: /createDisk/ }).click();
    // Sample the progress bar while the task runs.
    const seen: number[] = [];
    let logWhileRunning = '';
    for (let i = 0; i < 400; i++) {
      const st = await row.getAttribute('data-state');
      const v = await row.locator('progress').getAttribute('value').catch(() => null);
      if (v !== null && st === 'running') seen.push(Number(v));
      if (st === 'running' && !logWhileRunning) logWhileRunning = (await page.getByTestId('task-log').locator('pre').textContent()) ?? '';
      if (st !== 'running') break;
      if (i === 3) await shot('task-panel-progress');
      await page.waitForTimeout(100);
    }
    await created;
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 30_000 }).toBe('ok');
    const distinct = [...new Set(seen)];
    expect(distinct.length, `progress seen while running: ${seen.join(',')}`).toBeGreaterThanOrEqual(2);
    expect(distinct.every((p, i) => i === 0 || p > distinct[i - 1]!)).toBe(true);
    expect(logWhileRunning).toContain('POST /api/disks');
    expect(await row.locator('progress').getAttribute('value')).toBe('100');
    const log = page.getByTestId('task-log');
    await expect.poll(() => log.getAttribute('data-state')).toBe('ok');
    expect(await log.locator('pre').textContent()).toContain('result: {"path":');
    await shot('task-panel-disk-done');
    // Kept: after a reload the panel lists it again from GET /api/tasks.
    await page.reload();
    const again = page.locator(`[data-testid=task-panel] tr[data-task="${id}"]`);
    await again.waitFor();
    // and stays ok while the event stream replays the task's earlier (running) events to the new page
    for (let i = 0; i < 10; i++) {
      expect(await again.getAttribute('data-state')).toBe('ok');
      await page.waitForTimeout(100);
    }
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
