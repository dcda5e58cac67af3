#!/usr/bin/env node
/**
 * `npm run bench`: every benchmark in one invocation, then BENCHMARKS.md from the results.
 *   node bench/run-all.js [--quick] [--only start,cli,parallel,stop,memory,libvirt] [--no-libvirt] [--no-report]
 * Results: bench/results/latest.json (raw figures, load averages), BENCHMARKS.md (the report).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { BIN, QUICK, Results, ROOT, load1 } from './lib.mjs';

const arg = (k) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ALL = ['start', 'cli', 'parallel', 'stop', 'memory', 'libvirt'];
let which = arg('only') ? arg('only').split(',') : ALL;
if (process.argv.includes('--no-libvirt')) which = which.filter((w) => w !== 'libvirt');

const results = new Results();
const out = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
};
results.meta.qemu = out('qemu-system-x86_64', ['--version'])?.split('\n')[0];
results.meta.freeG = out('free', ['-g']);
results.meta.cli = BIN;
results.meta.gitHead = out('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
results.meta.command = process.env.npm_lifecycle_event?.startsWith('bench') ? `npm run ${process.env.npm_lifecycle_event}` : `node bench/run-all.js ${process.argv.slice(2).join(' ')}`.trim();
console.log(`kvmctl benchmarks${QUICK ? ' (quick)' : ''}: ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${results.meta.qemu}`);

const t0 = Date.now();
results.meta.durations = {};
for (const w of which) {
  const t = Date.now();
  console.log(`\n== ${w} (load ${load1()})`);
  try {
    const m = await import(`./${w}.mjs`);
    await m.run(results);
  } catch (e) {
    console.error(`bench ${w} failed: ${e.stack ?? e}`);
    results.add({ id: w, failed: String(e.message ?? e) });
  }
  results.meta.durations[w] = Math.round((Date.now() - t) / 1000);
  results.save(); // keep what we have even if a later benchmark dies
}
results.meta.totalSeconds = Math.round((Date.now() - t0) / 1000);
results.meta.loadAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
const file = results.save();
console.log(`\nraw results: ${path.relative(process.cwd(), file)} (${results.meta.totalSeconds} s)`);
if (!process.argv.includes('--no-report')) {
  const { writeReport } = await import('./report.mjs');
  console.log(`report: ${path.relative(process.cwd(), writeReport(results))}`);
}
