/**
 * Metric history graphs of a VM (its Graphs tab) or of the host (the Graphs page): ranges
 * 1 h / 1 day / 30 days from GET /api/vms/:name/metrics and /api/host/metrics, refreshed at the
 * series' own step (at least every 2 s, at most every minute).
 */
import { useEffect, useMemo, useState } from 'react';
import type { HistoryDto } from '../../../src/api/contract-metrics.js';
import { call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { TimeChart, type ChartSeries } from '../components/TimeChart.js';

type Range = HistoryDto['range'];
const RANGES: { id: Range; label: string }[] = [
  { id: '1h', label: '1 hour' },
  { id: '1d', label: '1 day' },
  { id: '30d', label: '30 days' },
];

const pct = (v: number) => `${Math.round(v * 10) / 10}%`;
const bytes = (v: number) => fmtBytes(v);
const rate = (v: number) => `${fmtBytes(v)}/s`;
const ops = (v: number) => `${Math.round(v * 10) / 10}/s`;
const num = (v: number) => `${Math.round(v * 100) / 100}`;

type Chart = { id: string; title: string; fmt: (v: number) => string; series: [field: string, label: string, color: string][]; yMax?: number };
const VM_CHARTS: Chart[] = [
  { id: 'cpu', title: 'CPU (% of one core)', fmt: pct, series: [['cpuPercent', 'CPU', '#2457c5']] },
  { id: 'memory', title: 'Memory', fmt: bytes, series: [['rssBytes', 'QEMU RSS', '#1d7a3a'], ['balloonBytes', 'Balloon', '#9a6200']] },
  { id: 'disk', title: 'Disk throughput', fmt: rate, series: [['diskRdBps', 'Read', '#2457c5'], ['diskWrBps', 'Write', '#b3261e']] },
  { id: 'iops', title: 'Disk operations', fmt: ops, series: [['diskRdOps', 'Reads', '#2457c5'], ['diskWrOps', 'Writes', '#b3261e']] },
  { id: 'net', title: 'Network (guest side)', fmt: rate, series: [['netRxBps', 'Received', '#1d7a3a'], ['netTxBps', 'Sent', '#7a3fb3']] },
];
const HOST_CHARTS: Chart[] = [
  { id: 'cpu', title: 'CPU (all cores)', fmt: pct, series: [['cpuPercent', 'CPU', '#2457c5']], yMax: 100 },
  { id: 'memory', title: 'Memory', fmt: bytes, series: [['memUsedBytes', 'Used', '#b3261e'], ['memTotalBytes', 'Total', '#5b6475'], ['ksmSavedBytes', 'KSM saved', '#1d7a3a']] },
  { id: 'load', title: 'Load (1 min)', fmt: num, series: [['load1', 'Load', '#7a3fb3']] },
];

export function MetricGraphs({ vm }: { vm?: string }) {
  const [range, setRange] = useState<Range>('1h');
  const [data, setData] = useState<HistoryDto | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const h = vm === undefined ? await call('hostMetricsHistory', { query: { range } }) : await call('vmMetricsHistory', { params: { name: vm }, query: { range } });
        if (!alive) return;
        setData(h);
        setError(null);
        timer = setTimeout(load, Math.min(60_000, Math.max(2000, h.stepSec * 1000)));
      } catch (e) {
        if (!alive) return;
        setError(e);
        timer = setTimeout(load, 10_000);
      }
    };
    setData(null);
    void load();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [vm, range]);

  const charts = vm === undefined ? HOST_CHARTS : VM_CHARTS;
  const built = useMemo(
    () =>
      data
        ? charts.map((c) => ({ c, series: c.series.filter(([f]) => data.series[f]?.some((v) => v !== null) || f === c.series[0]![0]).map(([f, label, color]): ChartSeries => ({ label, color, field: f, values: data.series[f] ?? [] })) }))
        : [],
    [data, charts],
  );

  return (
    <div data-testid="metric-graphs" data-range={range}>
      <div className="row" role="group" aria-label="Time range">
        {RANGES.map((r) => (
          <button key={r.id} type="button" aria-pressed={range === r.id} className={range === r.id ? 'primary' : ''} onClick={() => setRange(r.id)}>
            {r.label}
          </button>
        ))}
        {data && (
          <span className="muted" role="status">
            {data.t.length} samples, one every {data.stepSec >= 60 ? `${data.stepSec / 60} min` : `${data.stepSec} s`}
          </span>
        )}
      </div>
      <ErrorBox error={error} title="Could not load the metric history" />
      {data && data.t.length === 0 && <div className="card">No samples in this range yet{vm ? `: ${vm} has not run while kvmctl serve was sampling` : ''}.</div>}
      <div className="charts">
        {data && data.t.length > 0 && built.map(({ c, series }) => <TimeChart key={c.id} id={c.id} title={c.title} t={data.t} series={series} fmt={c.fmt} yMax={c.yMax} />)}
      </div>
    </div>
  );
}

/** The host's Graphs page. */
export function HostGraphs() {
  return (
    <>
      <h1>Host graphs</h1>
      <MetricGraphs />
    </>
  );
}
