/**
 * One time-series chart drawn by uPlot (small, canvas, made for time series). Takes the API's
 * column layout as it is: `t` (unix seconds) and one value array per series, nulls as gaps. The
 * uPlot instance is on the container (`el.uplot`) so a test can compare what is drawn with the API.
 * Resizes with its container; a text summary (last value of each series) is the text alternative.
 */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type ChartSeries = { label: string; values: (number | null)[]; color: string; /** The API field it shows (data-fields, for tests). */ field?: string };

const lastValue = (v: (number | null)[]) => {
  for (let i = v.length - 1; i >= 0; i--) if (v[i] !== null) return v[i];
  return null;
};

export function TimeChart({ id, title, t, series, fmt, min0 = true, yMax }: { id: string; title: string; t: number[]; series: ChartSeries[]; fmt: (v: number) => string; min0?: boolean; yMax?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('|');

  // (Re)build when the set of series changes; otherwise only the data is replaced.
  useEffect(() => {
    const el = box.current!;
    const width = Math.max(280, el.clientWidth);
    const opts: uPlot.Options = {
      width,
      height: 180,
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true }, y: { range: (_u, lo, hi) => [min0 ? Math.min(0, lo) : lo, Math.max(yMax ?? 0, hi > lo ? hi : lo + 1)] } },
      axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => fmt(v)) }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, fill: `${s.color}22`, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? '–' : fmt(v)) }))],
    };
    const u = new uPlot(opts, [t, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    (el as HTMLDivElement & { uplot?: uPlot }).uplot = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(280, el.clientWidth), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([t, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [t, series]);

  const summary = series.map((s) => `${s.label} ${(() => { const v = lastValue(s.values); return v === null ? 'no data' : fmt(v); })()}`).join(', ');
  return (
    <section className="card chart" aria-labelledby={`chart-${id}-h`}>
      <h3 id={`chart-${id}-h`}>{title}</h3>
      <div ref={box} data-testid={`chart-${id}`} data-points={t.length} data-fields={series.map((s) => s.field ?? s.label).join(',')} role="img" aria-label={`${title}: ${t.length} points; latest ${summary}`} />
    </section>
  );
}
