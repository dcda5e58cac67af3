/**
 * Parallel start of N = 1, 2, 4, 8 tiny guests (fast profile and standard): time until all are
 * ready, per-VM p50/p95, and total QEMU RSS once all are ready; kvmctl (N concurrent
 * `kvmctl start --wait-for-guest`) vs bare QEMU doing the same (the same N argvs spawned at once,
 * ready = marker in each serial log). One batch per (profile, N, method): a batch of 8 TCG boots
 * takes tens of seconds here, so ≥ 10 repetitions do not fit the 10-minute budget.
 *
 *   node bench/parallel.mjs [--quick]
 */
import path from 'node:path';
import { cleanRuntime, cmdlineArgv, killPid, line, load1, makeHome, now, QUICK, ratio, Results, ROOT, rssKb, spawnBare, stats, tinyVm, waitMarker } from './lib.mjs';

const NS = QUICK ? [1, 4] : [1, 2, 4, 8];
const PROFILES = QUICK ? ['fast'] : ['fast', 'standard'];

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
        for (const method of ['kvmctl', 'bare']) {
          loads.push(load1());
          const batch = names.slice(0, n);
          let per;
          let pids;
          const t0 = now();
          if (method === 'kvmctl') {
            const rs = await Promise.all(batch.map((vm) => h.cliOk(['start', vm, '--wait-for-guest', '--json', '--timeout', '300'], { timeoutMs: 320_000 })));
            per = rs.map((r) => r.ms);
            pids = rs.map((r) => JSON.parse(r.stdout).pid);
          } else {
            batch.forEach((vm) => cleanRuntime(path.join(h.run, vm)));
            const ss = batch.map((vm, i) => spawnBare(argvs[i]));
            pids = ss.map((s) => s.pid);
            per = await Promise.all(batch.map((vm, i) => waitMarker(path.join(h.run, vm, 'serial.log'), ss[i].t0, 300_000)));
          }
          const all = now() - t0;
          const rssMiB = Math.round(pids.reduce((a, p) => a + rssKb(p), 0) / 1024);
          await Promise.all(pids.map((p) => killPid(p)));
          batch.forEach((vm) => cleanRuntime(path.join(h.run, vm)));
          const key = `${profile} N=${n} ${method}`;
          figures[key] = { allReadyMs: Math.round(all), perVm: stats(per), totalRssMiB: rssMiB };
          console.log(line(`parallel ${key}: all ready ${Math.round(all)} ms, RSS ${rssMiB} MiB; per VM`, stats(per)));
        }
      }
    }
  } finally {
    await h.cleanup();
  }
  for (const p of PROFILES) for (const n of NS) figures[`${p} N=${n} kvmctl/bare`] = ratio(figures[`${p} N=${n} kvmctl`].allReadyMs, figures[`${p} N=${n} bare`].allReadyMs);
  results.add({ id: 'parallel', title: 'parallel start of N tiny guests', command: `node bench/parallel.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/parallel.json'));
}
