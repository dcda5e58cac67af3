/**
 * Parallel start of N = 1, 2, 4, 8 tiny guests (fast profile and standard): time until all are
 * ready, per-VM p50/p95, and total QEMU RSS once all are ready. Three methods, alternating:
 *   - "kvmctl": N concurrent `kvmctl start VM --wait-for-guest` processes (per VM: its process's wall time);
 *   - "kvmctl one process": one `kvmctl start v1 … vN --wait-for-guest` (all ready: its wall time;
 *     per VM: from its spawn to the marker in that VM's serial log, polled as for bare);
 *   - "bare": the same N argvs spawned at once (ready = marker in each serial log).
 * One batch per (profile, N, method) by default: a batch of 8 TCG boots takes tens of seconds
 * here, so ≥ 10 repetitions do not fit the 10-minute budget of the full run. On its own, with
 * --reps R, each (profile, N) gets R batches per method, the methods' order rotating; all-ready is
 * then the median batch (each batch's in `allReady`), per-VM figures pool the batches.
 *
 *   node bench/parallel.mjs [--quick] [--profiles fast,standard] [--ns 1,2,4,8] [--reps R]
 */
import path from 'node:path';
import { cleanRuntime, cmdlineArgv, killPid, line, load1, makeHome, now, QUICK, ratio, Results, ROOT, rssKb, spawnBare, stats, tinyVm, waitMarker } from './lib.mjs';

const opt = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const NS = opt('--ns')?.split(',').map(Number) ?? (QUICK ? [1, 4] : [1, 2, 4, 8]);
const PROFILES = opt('--profiles')?.split(',') ?? (QUICK ? ['fast'] : ['fast', 'standard']);
/** Batches per (profile, N, method); the methods' order rotates from one repetition to the next. */
const REPS = Number(opt('--reps') ?? 1);
const METHODS = ['kvmctl', 'kvmctl one process', 'bare'];

/** One batch of n VMs started by `method`: all-ready and per-VM times (ms), pids. */
async function batchRun(h, method, batch, argvs) {
  const t0 = now();
  let per;
  let pids;
  if (method === 'kvmctl') {
    const rs = await Promise.all(batch.map((vm) => h.cliOk(['start', vm, '--wait-for-guest', '--json', '--timeout', '300'], { timeoutMs: 320_000 })));
    per = rs.map((r) => r.ms);
    pids = rs.map((r) => JSON.parse(r.stdout).pid);
  } else if (method === 'kvmctl one process') {
    batch.forEach((vm) => cleanRuntime(path.join(h.run, vm))); // no stale marker for the pollers
    const cli = h.cliOk(['start', ...batch, '--wait-for-guest', '--json', '--timeout', '300'], { timeoutMs: 320_000 });
    const polled = Promise.all(batch.map((vm) => waitMarker(path.join(h.run, vm, 'serial.log'), t0, 320_000)));
    const [r, marks] = await Promise.all([cli, polled]);
    per = marks;
    pids = [JSON.parse(r.stdout)].flat().map((o) => o.pid); // one name: an object, several: an array
  } else {
    batch.forEach((vm) => cleanRuntime(path.join(h.run, vm)));
    const ss = batch.map((vm, i) => spawnBare(argvs[i]));
    pids = ss.map((s) => s.pid);
    per = await Promise.all(batch.map((vm, i) => waitMarker(path.join(h.run, vm, 'serial.log'), ss[i].t0, 300_000)));
  }
  return { all: now() - t0, per, pids };
}

export async function run(results) {
  const h = makeHome('p');
  const figures = {};
  const loads = [];
  try {
    for (const profile of PROFILES) for (let i = 0; i < 8; i++) await h.apply(tinyVm(`${profile[0]}${i}`, { profile }));
    for (const profile of PROFILES) {
      const names = Array.from({ length: 8 }, (_, i) => `${profile[0]}${i}`);
      const argvs = await Promise.all(names.map((n) => cmdlineArgv(h, n)));
      for (const n of NS) {
        const acc = Object.fromEntries(METHODS.map((m) => [m, { alls: [], per: [], rss: 0 }]));
        for (let rep = 0; rep < REPS; rep++) {
          for (const method of [...METHODS.slice(rep % METHODS.length), ...METHODS.slice(0, rep % METHODS.length)]) {
            loads.push(load1());
            const batch = names.slice(0, n);
            const { all, per, pids } = await batchRun(h, method, batch, argvs);
            const rssMiB = Math.round(pids.reduce((a, p) => a + rssKb(p), 0) / 1024);
            await Promise.all(pids.map((p) => killPid(p)));
            batch.forEach((vm) => cleanRuntime(path.join(h.run, vm)));
            acc[method].alls.push(all);
            acc[method].per.push(...per);
            acc[method].rss = rssMiB;
            console.log(line(`parallel ${profile} N=${n} ${method}${REPS > 1 ? ` #${rep + 1}` : ''}: all ready ${Math.round(all)} ms, RSS ${rssMiB} MiB; per VM`, stats(per)));
          }
        }
        for (const m of METHODS) {
          const a = acc[m];
          figures[`${profile} N=${n} ${m}`] = { allReadyMs: Math.round(stats(a.alls).median), ...(REPS > 1 ? { allReady: stats(a.alls) } : {}), perVm: stats(a.per), totalRssMiB: a.rss };
        }
      }
    }
  } finally {
    await h.cleanup();
  }
  for (const p of PROFILES) for (const n of NS) for (const m of METHODS.slice(0, -1)) figures[`${p} N=${n} ${m}/bare`] = ratio(figures[`${p} N=${n} ${m}`].allReadyMs, figures[`${p} N=${n} bare`].allReadyMs);
  results.add({ id: 'parallel', title: 'parallel start of N tiny guests', command: `node bench/parallel.mjs${QUICK ? ' --quick' : ''}${['--profiles', '--ns', '--reps'].map((o) => (opt(o) ? ` ${o} ${opt(o)}` : '')).join('')}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/parallel.json'));
}
