/**
 * The start fast path: a second bundle entry, built by scripts/bundle.mjs into ONE CommonJS file
 * (dist/bundle/start.cjs) that bin/kvmctl.js compiles with a V8 code cache, for `kvmctl start …`.
 * `start` is the command whose latency is measured against QEMU's own (issue #19): the full CLI
 * evaluates commander and every command's registration and loads ~35 chunks through the ESM
 * loader before it spawns QEMU; this runs the same code (src/cli/run.ts, src/cli/start-one.ts)
 * from one precompiled file. `main` answers false for a command line it does not take
 * (src/cli/fast-argv.ts) or a host in a cluster, before anything is done: bin/kvmctl.js then runs
 * the full CLI.
 */
import { mark } from '../trace.js';
import { parseFastStart } from './fast-argv.js';

export async function main(args: readonly string[]): Promise<boolean> {
  mark('start-fast: evaluated');
  const fast = parseFastStart(args);
  if (!fast) return false;
  return (await import('./start-fast-run.js')).runFastStart(fast);
}
