/**
 * Start latency and guest-ready time.
 *  A. `kvmctl start --wait` (returns when QMP answers and the VM runs) vs the seed's way: the same
 *     argv (from `kvmctl cmdline --json`, without -sandbox) plus -daemonize, run directly (returns
 *     once QEMU is initialised). Alternating A/B. Target: kvmctl ≤ 1.25× the seed's way.
 *  B. Time to the test guest's ready marker: kvmctl standard vs kvmctl fast profile vs bare QEMU
 *     running the same two argvs, and bare QEMU with the pre-tuning default (q35, bzImage, no
 *     lpj=/no_timer_check/mitigations=off) that the 6.7 s figure refers to. Alternating.
 *
 *   node bench/start.mjs [--quick] [--latency-only] [--guest-only] [--runs N]
 *   (--latency-only: part A alone; --guest-only: part B alone; --runs: rounds of part B, default 5)
 */
import fs from 'node:fs';
import path from 'node:path';
import { cleanRuntime, cmdlineArgv, killPid, line, load1, makeHome, QUICK, ratio, Results, runDaemonized, seedArgv, spawnBare, stats, timed, tinyVm, waitMarker } from './lib.mjs';

export async function run(results) {
  const h = makeHome('s');
  try {
    await h.apply(tinyVm('sa'));
    await h.apply(tinyVm('sa-bare'));
    await h.apply(tinyVm('gs'));
    await h.apply(tinyVm('gf', { profile: 'fast' }));
    await h.apply(tinyVm('gs-bare'));
    await h.apply(tinyVm('gf-bare', { profile: 'fast' }));
    if (!process.argv.includes('--guest-only')) await startLatency(h, results);
    if (!process.argv.includes('--latency-only')) await guestReady(h, results);
  } finally {
    await h.cleanup();
  }
}

async function startLatency(h, results) {
  const runs = QUICK ? 5 : 10;
  const seed = seedArgv(await cmdlineArgv(h, 'sa-bare'));
  const rtBare = path.join(h.run, 'sa-bare');
  const a = [];
  const aQmp = [];
  const b = [];
  const nodeFloor = [];
  const loads = [];
  // one warm-up of each (page cache, host-facts cache)
  for (let i = -1; i < runs; i++) {
    loads.push(load1());
    const k = await h.cliOk(['start', 'sa', '--wait', '--json']);
    if (i >= 0) {
      a.push(k.ms);
      aQmp.push(JSON.parse(k.stdout).qmpReadyMs);
    }
    await h.cliOk(['kill', 'sa']);
    cleanRuntime(rtBare);
    const d = await runDaemonized(seed);
    if (i >= 0) b.push(d.ms);
    await killPid(d.pid);
    cleanRuntime(rtBare);
    const n = await timed([process.execPath, '-e', '0']);
    if (i >= 0) nodeFloor.push(n.ms);
  }
  const sa = stats(a);
  const sb = stats(b);
  const r = ratio(sa.median, sb.median);
  console.log('start latency (QMP ready):');
  console.log(line('kvmctl start --wait (wall)', sa));
  console.log(line('  of which QMP ready after spawn (kvmctl)', stats(aQmp)));
  console.log(line('seed: same argv + -daemonize (wall)', sb));
  console.log(line('node -e 0 (the floor of any Node CLI)', stats(nodeFloor)));
  // Net of Node's own start-up (issue #19): what kvmctl adds over `node -e 0`, against the seed's way.
  const nf = stats(nodeFloor);
  const net = ratio(sa.median - nf.median, sb.median);
  console.log(`  ratio kvmctl/seed ${r}; net of Node's start-up (kvmctl − node -e 0)/seed ${net} (target ≤ 1.15)`);
  results.add({
    id: 'start-latency',
    title: 'start to QMP-ready: kvmctl start --wait vs argv + -daemonize',
    command: `node bench/start.mjs${QUICK ? ' --quick' : ''}`,
    figures: { kvmctl: sa, kvmctlQmpReadyMs: stats(aQmp), seedDaemonize: sb, nodeFloor: nf, ratio: r, netRatio: net, target: 1.15, met: net !== undefined && net <= 1.15 },
    loads,
  });
}

async function guestReady(h, results) {
  const ri = process.argv.indexOf('--runs');
  const runs = ri > 0 ? Number(process.argv[ri + 1]) : QUICK ? 3 : 5;
  const argvStd = await cmdlineArgv(h, 'gs-bare');
  const argvFast = await cmdlineArgv(h, 'gf-bare');
  // The pre-tuning default: same q35 argv, the compressed bzImage, no boot-speed kernel options.
  const argvOld = argvStd.map((x, i) =>
    argvStd[i - 1] === '-kernel' ? x.replace(/vmlinux$/, 'vmlinuz') : argvStd[i - 1] === '-append' ? x.replace(/ ?lpj=\d+| ?no_timer_check| ?mitigations=off/g, '') : x,
  );
  const variants = [
    { key: 'kvmctlStandard', label: 'kvmctl start --wait-for-guest (standard, q35)', vm: 'gs' },
    { key: 'kvmctlFast', label: 'kvmctl start --wait-for-guest (fast, microvm)', vm: 'gf' },
    { key: 'bareStandard', label: 'bare QEMU, same argv (standard)', argv: argvStd, dir: path.join(h.run, 'gs-bare') },
    { key: 'bareFast', label: 'bare QEMU, same argv (fast)', argv: argvFast, dir: path.join(h.run, 'gf-bare') },
    { key: 'bareOldDefault', label: 'bare QEMU, q35 + bzImage, no lpj= (old default)', argv: argvOld, dir: path.join(h.run, 'gs-bare') },
  ];
  const ms = Object.fromEntries(variants.map((v) => [v.key, []]));
  const loads = [];
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      loads.push(load1());
      if (v.vm) {
        const r = await h.cliOk(['start', v.vm, '--wait-for-guest', '--json'], { timeoutMs: 240_000 });
        ms[v.key].push(r.ms);
        await h.cliOk(['kill', v.vm]);
      } else {
        cleanRuntime(v.dir);
        const s = spawnBare(v.argv);
        try {
          ms[v.key].push(await waitMarker(path.join(v.dir, 'serial.log'), s.t0, 240_000));
        } finally {
          await killPid(s.pid);
          cleanRuntime(v.dir);
        }
      }
    }
  }
  const st = Object.fromEntries(variants.map((v) => [v.key, stats(ms[v.key])]));
  console.log('guest ready (spawn → KVMCTL-GUEST-READY on the serial console):');
  for (const v of variants) console.log(line(v.label, st[v.key]));
  const figures = {
    ...st,
    fastVsStandard: ratio(st.kvmctlStandard.median, st.kvmctlFast.median),
    fastVsOldDefault: ratio(st.bareOldDefault.median, st.kvmctlFast.median),
    kvmctlOverStandardBare: ratio(st.kvmctlStandard.median, st.bareStandard.median),
    kvmctlOverFastBare: ratio(st.kvmctlFast.median, st.bareFast.median),
  };
  console.log(`  speed-up fast vs standard ${figures.fastVsStandard}×, fast vs old default ${figures.fastVsOldDefault}× (target ≥ 2.5×)`);
  results.add({ id: 'guest-ready', title: 'start to guest ready: standard vs fast profile vs bare QEMU', command: `node bench/start.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
  fs.writeFileSync(path.join(h.dir, 'argv-old-default.json'), JSON.stringify(argvOld));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(path.dirname(new URL(import.meta.url).pathname), 'results/start.json'));
}
