/**
 * `kvmctl serve` idles most of its life, so it trades peak JavaScript speed for memory (issue #19:
 * < 60 MB with 10 VMs defined, 2 running, no client):
 * - no optimizing compiler (TurboFan): its code and the pages of the node binary it runs from
 *   are ≈ 4 MiB of an idle server; a server's work is I/O and QMP, not hot loops;
 * - no baseline compiler (Sparkplug) either, and `--optimize-for-size`: −0.9 MiB each, measured
 *   (fifth session, BENCHMARKS.md), so requests run in the interpreter (Ignition).
 *   KVMCTL_SERVE_OPTIMIZE=1 keeps all of V8's defaults. (V8's --lite-mode saves ~1 MiB more but
 *   aborts V8 when set at run time, as --max-lazy does: those change what already-compiled
 *   functions assume; these three only stop V8 from compiling more, or choose smaller heaps.)
 * - one full garbage collection once start-up has settled: what loading the API, the schemas and
 *   the first reconcile left behind is returned at once, not whenever V8's memory reducer gets to
 *   it (the idle RSS varied 62–80 MiB with the timing of that).
 * Both set V8 flags at run time (v8.setFlagsFromString), the only way without a second Node start
 * for flags on the command line; bin/kvmctl.js turns the optimizer off for `serve` before any of
 * kvmctl's code loads (the definition validator's zod schemas get hot while they are built).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** One full GC `afterMs` from now (the timer does not keep the process alive). */
export function settleHeap(afterMs = 5000): void {
  setTimeout(() => {
    v8.setFlagsFromString('--expose-gc');
    (vm.runInNewContext('gc') as () => void)();
  }, afterMs).unref();
}
