/**
 * KVMCTL_TRACE=1: phase marks on the way through a command, printed to stderr at exit with the
 * time since the process started (performance.now() counts from Node's own start), so a slow
 * start can be read off without a profiler: `KVMCTL_TRACE=1 kvmctl start web --wait`.
 * Costs nothing when off (one env read).
 */
const on = !!process.env.KVMCTL_TRACE;
const marks: [string, number][] = [];

export function mark(label: string): void {
  if (!on) return;
  if (!marks.length) process.once('exit', () => process.stderr.write(`${marks.map(([l, t], i) => `trace ${t.toFixed(1).padStart(7)} ms  +${(t - (marks[i - 1]?.[1] ?? 0)).toFixed(1).padStart(5)}  ${l}`).join('\n')}\ntrace ${performance.now().toFixed(1).padStart(7)} ms  exit\n`));
  marks.push([label, performance.now()]);
}
