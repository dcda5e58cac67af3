/**
 * Where `kvmctl start --wait` spends its time, path by path (issue #19), alternating run by run:
 *   full       the full CLI (KVMCTL_FAST_START=0: commander, every command, ~35 ESM chunks)
 *   fast       the start fast path (dist/bundle/start.cjs with its V8 code cache)
 *   fast-nocc  the fast path compiled from source (KVMCTL_CODE_CACHE=0)
 *   node -e 0  Node's own start-up
 * Each run reports wall time, the kvmctl process's own CPU time (user + sys from GNU time: QEMU
 * is detached and not counted) — less sensitive to other load on the machine than wall time —
 * and, from KVMCTL_TRACE=1, when QEMU was spawned. Medians over --runs (default 10).
 *
 *   base       with --base PATH: another build's bin/kvmctl.js (e.g. main's, for before/after)
 *
 *   node bench/start-paths.mjs [--runs 10] [--base /path/to/bin/kvmctl.js]
 */
import path from 'node:path';
import { BIN, line, load1, makeHome, Results, ROOT, stats, timed, tinyVm } from './lib.mjs';

const i = process.argv.indexOf('--runs');
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 10;
const b = process.argv.indexOf('--base');
const BASE = b > 0 ? process.argv[b + 1] : undefined;
// fork + exec + wait4: the child's wall time and its rusage (user + sys, microseconds), measured
// around the child alone (not this runner's own start-up).
const RUNNER = `import os, sys, time
t = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, st, ru = os.wait4(pid, 0)
w = time.monotonic() - t
sys.stderr.write("KVTIME %.3f %.3f %d\\n" % (w * 1000, (ru.ru_utime + ru.ru_stime) * 1000, os.waitstatus_to_exitcode(st)))
`;

async function measure(argv, env) {
  const r = await timed(['python3', '-c', RUNNER, ...argv], { env });
  const m = /KVTIME ([\d.]+) ([\d.]+) (-?\d+)/.exec(r.stderr);
  if (r.code !== 0 || !m || m[3] !== '0') throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  const spawned = /trace\s+([\d.]+) ms\s+\+\s*[\d.]+\s+QEMU spawned/.exec(r.stderr);
  return { ms: Number(m[1]), cpuMs: Number(m[2]), spawnedMs: spawned ? Number(spawned[1]) : undefined };
}

export async function run(results) {
  const h = makeHome('p');
  const variants = [
    { key: 'full', env: { KVMCTL_FAST_START: '0' } },
    { key: 'fast', env: {} },
    { key: 'fastNoCodeCache', env: { KVMCTL_CODE_CACHE: '0' } },
    ...(BASE ? [{ key: 'base', env: {}, bin: BASE }] : []),
  ];
  const data = Object.fromEntries([...variants.map((v) => v.key), 'node'].map((k) => [k, { ms: [], cpuMs: [], spawnedMs: [] }]));
  const loads = [];
  // The base build keeps its own home: two builds alternating on one definition cache would make
  // every start a cache miss (each build's entries are keyed by its own identity).
  const hb = BASE ? makeHome('pb') : undefined;
  if (hb) {
    hb.cli = (args, o = {}) => timed([process.execPath, BASE, ...args], { env: hb.env, ...o });
  }
  try {
    await h.apply(tinyVm('sp'));
    if (hb) await hb.apply(tinyVm('sp'));
    for (let r = -1; r < RUNS; r++) {
      loads.push(load1());
      for (const v of variants) {
        const home = v.bin ? hb : h;
        const x = await measure([process.execPath, v.bin ?? BIN, 'start', 'sp', '--wait', '--json'], { ...home.env, KVMCTL_TRACE: '1', ...v.env });
        await home.cliOk(['kill', 'sp']);
        if (r < 0) continue; // warm-up: page cache, host facts, the code cache written
        for (const k of ['ms', 'cpuMs', 'spawnedMs']) if (x[k] !== undefined) data[v.key][k].push(x[k]);
      }
      const n = await measure([process.execPath, '-e', '0'], process.env);
      if (r >= 0) for (const k of ['ms', 'cpuMs']) data.node[k].push(n[k]);
    }
  } finally {
    await h.cleanup();
    await hb?.cleanup();
  }
  const figures = {};
  console.log(`start paths (n=${RUNS} alternating; load ${loads.join(' ')}):`);
  for (const k of Object.keys(data)) {
    figures[k] = { wall: stats(data[k].ms), cpu: stats(data[k].cpuMs), spawned: stats(data[k].spawnedMs) };
    console.log(line(`${k} wall`, figures[k].wall));
    console.log(line(`${k} CPU (user+sys)`, figures[k].cpu));
    if (data[k].spawnedMs.length) console.log(line(`${k} QEMU spawned at`, figures[k].spawned));
  }
  results.add({ id: 'start-paths', title: 'kvmctl start --wait: full CLI vs fast path vs fast path without code cache', command: `node bench/start-paths.mjs --runs ${RUNS}${BASE ? ` --base ${BASE}` : ''}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/start-paths.json'));
}
