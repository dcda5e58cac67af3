/**
 * Metric history of `kvmctl serve`: every `intervalMs` (10 s; KVMCTL_METRICS_INTERVAL_MS for
 * tests) it samples each running VM and the host with its own `MetricsSampler` (so the UI's 2 s
 * /api/metrics poll does not shorten the CPU window), turns counters into rates, and writes one
 * row per series into ring files under `<data>/metrics/` (src/metrics/ring.ts): 8640 fine slots
 * (1 day at 10 s) and 8640 coarse ones (30 days at 5 min). `history()` reads them back for the
 * API as columns (uPlot's data layout), with a null row where samples are missing so a graph
 * shows a gap instead of a line across a stopped period.
 */
import path from 'node:path';
import type { Paths } from '../host/paths.js';
import type { HostMetrics, MetricsSampler, VmMetrics } from '../vm/metrics.js';
import { RingPair, type Row } from './ring.js';

/** Per-VM series: CPU % of one core, bytes, bytes/s and ops/s. Net is from the guest's side: rx = what the guest received. */
export const VM_FIELDS = ['cpuPercent', 'rssBytes', 'balloonBytes', 'diskRdBps', 'diskWrBps', 'diskRdOps', 'diskWrOps', 'netRxBps', 'netTxBps'] as const;
export const HOST_FIELDS = ['cpuPercent', 'memUsedBytes', 'memTotalBytes', 'load1', 'ksmSavedBytes'] as const;
export const RANGES = ['1h', '1d', '30d'] as const;
export type Range = (typeof RANGES)[number];
export type History = { range: Range; stepSec: number; fields: string[]; t: number[]; series: Record<string, (number | null)[]> };

const SLOTS = 8640;
const COARSE = 30;
const RANGE_MS: Record<Range, number> = { '1h': 3600_000, '1d': 86_400_000, '30d': 30 * 86_400_000 };

export function metricsIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.KVMCTL_METRICS_INTERVAL_MS);
  return Number.isFinite(v) && v >= 100 ? Math.round(v) : 10_000;
}

type Counters = { t: number; pid: number; rd: number; wr: number; rdo: number; wro: number; rx: number; tx: number };

/** Counter → rate per second since the previous sample (NaN on the first, or after a reset). Pure. */
export function rate(now: number, prev: number | undefined, dtMs: number): number {
  if (prev === undefined || dtMs <= 0 || now < prev) return NaN;
  return ((now - prev) * 1000) / dtMs;
}

/** A VM sample → its row of VM_FIELDS, and the counters for the next one. Pure. */
export function vmRow(m: VmMetrics, balloonBytes: number | undefined, prev: Counters | undefined, t: number): { row: number[]; counters: Counters } {
  const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0);
  const c: Counters = {
    t,
    pid: m.pid,
    rd: sum(m.block, (b) => b.rdBytes),
    wr: sum(m.block, (b) => b.wrBytes),
    rdo: sum(m.block, (b) => b.rdOps),
    wro: sum(m.block, (b) => b.wrOps),
    // The host side of a tap transmits what the guest receives.
    rx: sum(m.net, (n) => n.txBytes),
    tx: sum(m.net, (n) => n.rxBytes),
  };
  const p = prev && prev.pid === m.pid ? prev : undefined;
  const dt = p ? t - p.t : 0;
  const row = [
    m.cpuPercent ?? NaN,
    m.rssBytes,
    balloonBytes ?? NaN,
    rate(c.rd, p?.rd, dt),
    rate(c.wr, p?.wr, dt),
    rate(c.rdo, p?.rdo, dt),
    rate(c.wro, p?.wro, dt),
    rate(c.rx, p?.rx, dt),
    rate(c.tx, p?.tx, dt),
  ];
  return { row, counters: c };
}

export function hostRow(h: HostMetrics): number[] {
  return [h.cpuPercent ?? NaN, h.memTotalBytes - h.memAvailableBytes, h.memTotalBytes, h.loadavg[0], h.ksmSavedBytes];
}

const round = (x: number) => (Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);

/** Rows → API columns, with a null row after any gap longer than 2 steps. Pure. */
export function toColumns(rows: Row[], fields: readonly string[], stepMs: number, range: Range): History {
  const t: number[] = [];
  const cols: (number | null)[][] = fields.map(() => []);
  let prev: number | undefined;
  for (const r of rows) {
    if (prev !== undefined && r.t - prev > 2 * stepMs) {
      t.push((prev + stepMs) / 1000);
      cols.forEach((c) => c.push(null));
    }
    t.push(r.t / 1000);
    r.v.forEach((x, i) => cols[i]!.push(round(x)));
    prev = r.t;
  }
  return { range, stepSec: stepMs / 1000, fields: [...fields], t, series: Object.fromEntries(fields.map((f, i) => [f, cols[i]!])) };
}

export type RecorderDeps = {
  sampler: MetricsSampler;
  /** The VMs to sample now (running or paused). */
  running: () => Promise<{ name: string; state: 'running' | 'paused' }[]> | { name: string; state: 'running' | 'paused' }[];
  /** query-balloon's `actual` in bytes, or undefined when the VM has no balloon. */
  balloon?: (name: string) => Promise<number | undefined>;
  log?: (m: string) => void;
};

export class MetricsRecorder {
  readonly intervalMs: number;
  private timer?: ReturnType<typeof setInterval>;
  private readonly rings = new Map<string, RingPair>();
  private readonly prev = new Map<string, Counters>();
  private ticking?: Promise<void>;
  /** Cost of the last tick, for the docs' numbers and the API. */
  lastTick = { ms: 0, cpuMs: 0, vms: 0, at: 0 };

  constructor(
    private readonly paths: Paths,
    private readonly deps: RecorderDeps,
    intervalMs = metricsIntervalMs(),
  ) {
    this.intervalMs = intervalMs;
  }

  private dir(): string {
    return path.join(this.paths.data, 'metrics');
  }

  private ring(key: string, fields: readonly string[]): RingPair {
    let r = this.rings.get(key);
    if (!r) {
      r = new RingPair(path.join(this.dir(), key), fields, this.intervalMs, SLOTS, COARSE);
      this.rings.set(key, r);
    }
    return r;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref?.();
    void this.tick();
  }

  /** One sample of everything (skipped when the previous one is still running). */
  tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.doTick()
      .catch((e) => this.deps.log?.(`metrics: ${(e as Error).message}`))
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async doTick(): Promise<void> {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const now = Date.now();
    const names = await this.deps.running();
    const m = await this.deps.sampler.sample(names);
    this.ring('host', HOST_FIELDS).write(now, hostRow(m.host));
    const seen = new Set<string>();
    const balloons = await Promise.all(m.vms.map((v) => this.deps.balloon?.(v.name).catch(() => undefined)));
    for (const [i, v] of m.vms.entries()) {
      seen.add(v.name);
      const { row, counters } = vmRow(v, balloons[i], this.prev.get(v.name), now);
      this.prev.set(v.name, counters);
      this.ring(`vms/${v.name}`, VM_FIELDS).write(now, row);
    }
    for (const k of this.prev.keys()) if (!seen.has(k)) this.prev.delete(k);
    const c = process.cpuUsage(c0);
    this.lastTick = { ms: Math.round((performance.now() - t0) * 100) / 100, cpuMs: Math.round((c.user + c.system) / 10) / 100, vms: m.vms.length, at: now };
  }

  /** History of a VM (name) or the host (undefined) over a range. */
  history(name: string | undefined, range: Range): History {
    const fields = name === undefined ? HOST_FIELDS : VM_FIELDS;
    const r = this.ring(name === undefined ? 'host' : `vms/${name}`, fields);
    const ring = range === '30d' ? r.coarse : r.fine;
    const now = Date.now();
    return toColumns(ring.read(now - RANGE_MS[range], now), fields, ring.spec.stepMs, range);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    for (const r of this.rings.values()) r.close();
    this.rings.clear();
  }
}
