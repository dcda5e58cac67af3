/**
 * A tiny inline SVG line of the last values (CPU %), with a text alternative. `slots` values fill
 * the width; fewer start at the right edge and grow leftwards as samples come in.
 */
export function Sparkline({ values, max, label, width = 120, height = 26, slots = 40 }: { values: number[]; max?: number; label: string; width?: number; height?: number; slots?: number }) {
  const top = Math.max(max ?? 0, ...values, 1e-9);
  const n = values.length;
  const step = width / Math.max(1, slots - 1);
  const pts = values.map((v, i) => `${width - (n - 1 - i) * step},${height - 2 - (Math.max(0, v) / top) * (height - 4)}`).join(' ');
  const last = values[n - 1];
  return (
    <svg className="spark" width={width} height={height} role="img" aria-label={label} data-points={n}>
      <rect x={0} y={0} width={width} height={height} fill="#f1f3f7" rx={3} />
      {n > 0 && <polyline points={pts} fill="none" stroke="#2457c5" strokeWidth={1.5} />}
      {last !== undefined && <circle cx={width} cy={height - 2 - (Math.max(0, last) / top) * (height - 4)} r={2} fill="#2457c5" />}
    </svg>
  );
}
