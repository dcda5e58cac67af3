/**
 * Metric history and tasks through the real server (fastify inject, in-process) with a real
 * QEMU test guest: the recorder samples every 500 ms (KVMCTL_METRICS_INTERVAL_MS's option),
 * the history routes return columns that grow with time and show the guest's CPU and RSS; a
 * start is a task with its log and result; a preallocated disk create is a task whose progress
 * climbs (events on the bus, live) and which stays listed after it ends, also for a new server
 * (files in <data>/tasks); a cancelled one leaves no file. Also the CLI: kvmctl tasks list/show/log.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historySchema, taskSchema, taskListSchema } from '../../src/api/contract-metrics.js';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import type { KvmEvent } from '../../src/api/contract.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { RingPair } from '../../src/metrics/ring.js';
import { VM_FIELDS } from '../../src/metrics/recorder.js';

let home: Home;
let paths: Paths;
let s: KvmServer;
const events: KvmEvent[] = [];

beforeAll(async () => {
  home = makeHome();
  paths = resolvePaths({ KVMCTL_HOME: home.dir });
  await home.apply('name: mt\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: mt.qcow2, create: { size: 16M } }]\nstopTimeout: 5\n');
  await home.apply('name: full\nmemory: 64M\nkernel: { builtin: test-guest }\n');
  s = await buildServer({ paths, reconcileMs: 200, metricsIntervalMs: 500 });
  s.ctx.bus.subscribe((e) => events.push(e));
}, 120_000);
afterAll(async () => {
  await s?.close();
  await home?.cleanup();
});

const call = async (method: string, url: string, payload?: unknown) => {
  const r = await s.app.inject({ method: method as 'GET', url, payload: payload as object });
  return { status: r.statusCode, body: r.headers['content-type']?.includes('json') ? r.json() : r.body };
};
const until = async <T>(f: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> => {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('metric history and tasks on a real guest', () => {
  it('a start through the API is a task with its log and result; the VM gets a history', async () => {
    const r = await call('POST', '/api/vms/mt/start', { waitForGuest: true, timeoutSec: 120 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const list = taskListSchema.parse((await call('GET', '/api/tasks?vm=mt')).body);
    const start = list.find((t) => t.kind === 'startVm')!;
    expect(start).toMatchObject({ target: 'mt', state: 'ok', owner: 'local' }); // no token: the unix-socket identity
    const full = taskSchema.parse((await call('GET', `/api/tasks/${start.id}`)).body);
    expect(full.log[0]!.line).toBe('POST /api/vms/mt/start');
    expect(full.log.at(-1)!.line).toMatch(/^result: \{"name":"mt","pid":\d+/);
    // The start's own steps, logged from the service layer (src/vm/start.ts).
    expect(full.log.map((l) => l.line)).toEqual(expect.arrayContaining([expect.stringMatching(/^QEMU \d+ up \(TCG|KVM\), QMP answered after \d+ ms$/), expect.stringMatching(/^guest ready after \d+ ms$/)]));
    expect((full.result as { pid: number }).pid).toBe(r.body.pid);
    expect(events.some((e) => e.kind === 'task' && e.action === 'started' && e.task.id === start.id)).toBe(true);
    expect(events.some((e) => e.kind === 'task' && e.action === 'ended' && e.task.id === start.id && e.task.state === 'ok')).toBe(true);

    // Samples every 500 ms: wait for 6 rows with a CPU value.
    const h = await until(async () => {
      const x = historySchema.parse((await call('GET', '/api/vms/mt/metrics?range=1h')).body);
      return x.series.cpuPercent!.filter((v) => v !== null).length >= 6 ? x : undefined;
    }, 30_000, '6 CPU samples');
    expect(h.stepSec).toBe(0.5);
    expect(h.fields).toContain('diskRdBps');
    expect(h.t.every((t, i) => i === 0 || t > h.t[i - 1]!)).toBe(true);
    for (const f of h.fields) expect(h.series[f]).toHaveLength(h.t.length);
    const rss = h.series.rssBytes!.filter((v): v is number => v !== null);
    expect(Math.min(...rss)).toBeGreaterThan(20 * 1024 * 1024); // QEMU with a 128M guest
    // The guest booted under TCG: QEMU used CPU.
    expect(Math.max(...(h.series.cpuPercent!.filter((v) => v !== null) as number[]))).toBeGreaterThan(0);
    // 30d: the coarse ring, 30 × the step.
    const c = historySchema.parse((await call('GET', '/api/vms/mt/metrics?range=30d')).body);
    expect(c.stepSec).toBe(15);
    expect(c.t.length).toBeGreaterThanOrEqual(1);
    const host = historySchema.parse((await call('GET', '/api/host/metrics?range=1h')).body);
    expect(host.series.memTotalBytes!.at(-1)).toBeGreaterThan(0);
    expect(host.sampler!.lastTickVms).toBe(1);
    console.log(`sampler: ${host.sampler!.lastTickMs} ms wall, ${host.sampler!.lastTickCpuMs} ms CPU for ${host.sampler!.lastTickVms} VM(s); ring files: ${fs.readdirSync(path.join(paths.data, 'metrics/vms')).map((f) => `${f} ${fs.statSync(path.join(paths.data, 'metrics/vms', f)).size} B`).join(', ')}`);
    // A full fine ring (8640 samples, what a day at 10 s holds): the 1d answer and its cost.
    const ring = new RingPair(path.join(paths.data, 'metrics/vms/full'), VM_FIELDS, 500);
    const now = Date.now();
    for (let k = 8639; k >= 0; k--) ring.write(now - k * 500, VM_FIELDS.map((_, i) => i * 1000 + (k % 97)));
    ring.close();
    const lat: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await s.app.inject({ method: 'GET', url: '/api/vms/full/metrics?range=1d' });
      lat.push(performance.now() - t0);
      bytes = r.body.length;
      expect(historySchema.parse(r.json()).t.length).toBeGreaterThanOrEqual(8600); // less what aged out of the window while filling
    }
    const lat1h: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await s.app.inject({ method: 'GET', url: '/api/vms/full/metrics?range=1h' });
      lat1h.push(performance.now() - t0);
    }
    console.log(`GET metrics?range=1d, 8640 points: ${bytes} bytes, ${lat.map((x) => x.toFixed(1)).join('/')} ms; range=1h: ${lat1h.map((x) => x.toFixed(1)).join('/')} ms`);
    // Bad input: 400, unknown VM: 404, nothing made.
    expect((await call('GET', '/api/vms/mt/metrics?range=2y')).status).toBe(400);
    expect((await call('GET', '/api/vms/nope/metrics')).status).toBe(404);
    expect(fs.existsSync(path.join(paths.data, 'metrics/vms/nope.fine.ring'))).toBe(false);
  }, 180_000);

  it('a preallocated disk create reports live progress, is kept after it ends and survives a server restart', async () => {
    const before = events.length;
    const r = await call('POST', '/api/disks', { path: 'big.raw', size: '3G', format: 'raw', prealloc: 'full' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const mine = events.slice(before).filter((e): e is Extract<KvmEvent, { kind: 'task' }> => e.kind === 'task' && e.task.kind === 'createDisk');
    const id = mine[0]!.task.id;
    const progress = mine.filter((e) => e.action === 'progress').map((e) => e.task.progress!);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.every((p, i) => i === 0 || p > progress[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(100);
    expect(mine.at(-1)).toMatchObject({ action: 'ended', task: { state: 'ok', target: 'big.raw', progress: 100 } });
    // Persisted: a new registry (a server restart) still lists it, with its log.
    await s.close();
    s = await buildServer({ paths, reconcileMs: 200, metricsIntervalMs: 500 });
    const t = taskSchema.parse((await call('GET', `/api/tasks/${id}`)).body);
    expect(t).toMatchObject({ state: 'ok', progress: 100, kind: 'createDisk' });
    expect(t.log.map((l) => l.line)[0]).toBe('POST /api/disks');
    // The history, too, is still there after the restart.
    const h = historySchema.parse((await call('GET', '/api/vms/mt/metrics?range=1h')).body);
    expect(h.t.length).toBeGreaterThanOrEqual(6);
    // The CLI reads the same files.
    const cli = await home.cli(['tasks', 'list', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as { id: string }[]).some((x) => x.id === id)).toBe(true);
    const show = await home.cli(['tasks', 'log', id]);
    expect(show.stdout).toContain('POST /api/disks');
    expect((await home.cli(['tasks', 'show', 'zz-nope'])).code).toBe(2);
    // A CLI command is a task too (owner cli), read by the server's list; bad input leaves none.
    const dc = await home.cli(['disk', 'create', path.join(home.images, 'cli.qcow2'), '64M']);
    expect(dc.code, dc.stderr).toBe(0);
    const viaApi = taskListSchema.parse((await call('GET', '/api/tasks?limit=5')).body);
    expect(viaApi[0]).toMatchObject({ kind: 'disk create', owner: 'cli', state: 'ok', target: path.join(home.images, 'cli.qcow2') });
    expect(taskSchema.parse((await call('GET', `/api/tasks/${viaApi[0]!.id}`)).body).log[0]!.line).toBe(`kvmctl disk create ${path.join(home.images, 'cli.qcow2')} 64M`);
    const files = fs.readdirSync(path.join(paths.data, 'tasks')).length;
    const bad = await home.cli(['start', 'no-such-vm']);
    expect(bad.code).toBe(2);
    expect(fs.readdirSync(path.join(paths.data, 'tasks')).length).toBe(files);
  }, 180_000);

  it('cancels a running disk create (the partial image is removed); refuses to cancel a stop and an ended task', async () => {
    const p = s.app.inject({ method: 'POST', url: '/api/disks', payload: { path: 'huge.raw', size: '8G', format: 'raw', prealloc: 'full' } });
    const id = await until(() => s.ctx.tasks!.list({ state: 'running' }).find((t) => t.kind === 'createDisk' && t.cancellable)?.id, 20_000, 'a running disk create');
    const c = await call('POST', `/api/tasks/${id}/cancel`);
    expect(c.status, JSON.stringify(c.body)).toBe(200);
    const res = await p;
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    const t = taskSchema.parse((await call('GET', `/api/tasks/${id}`)).body);
    expect(t.state).toBe('cancelled');
    expect(t.log.map((l) => l.line)).toContain('cancel requested');
    expect(fs.readdirSync(home.images).filter((f) => f.includes('huge'))).toEqual([]);
    const again = await call('POST', `/api/tasks/${id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('TASK_ENDED');
    // A backup through the API is a task with the backup's own log lines (src/backup/create.ts).
    const bk = await call('POST', '/api/vms/mt/backups', {});
    expect(bk.status, JSON.stringify(bk.body)).toBe(200);
    const bt = s.ctx.tasks!.list({ vm: 'mt' }).find((x) => x.kind === 'createBackup')!;
    const btFull = taskSchema.parse((await call('GET', `/api/tasks/${bt.id}`)).body);
    expect(btFull.state).toBe('ok');
    expect(btFull.log.map((l) => l.line)).toEqual(expect.arrayContaining([expect.stringMatching(/^backup \S+: full \(.+\), disks data/), expect.stringMatching(/^block jobs done in \d+ ms/)]));
    // A stop cannot be cancelled half-way.
    const stop = s.app.inject({ method: 'POST', url: '/api/vms/mt/stop', payload: { timeoutSec: 5 } });
    // The stop may end before the poll sees it running (a quick ACPI power-off): then cancel says it ended.
    const sid = await until(() => s.ctx.tasks!.list({}).find((x) => x.kind === 'stopVm')?.id, 30_000, 'the stop task');
    const nc = await call('POST', `/api/tasks/${sid}/cancel`);
    expect(nc.status).toBe(409);
    if (nc.body.code === 'TASK_ENDED') expect(taskSchema.parse((await call('GET', `/api/tasks/${sid}`)).body).state).not.toBe('running');
    else expect(nc.body.code).toBe('TASK_NOT_CANCELLABLE');
    expect((await stop).statusCode).toBe(200);
  }, 120_000);
});
