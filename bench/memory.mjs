/**
 * Memory: kvmctl CLI peak RSS (GNU time's "Maximum resident set size", else VmHWM sampled from
 * /proc) for list, status, cmdline and start, vs `node -e 0`; and the RSS of one idle tiny guest's
 * QEMU, standard vs fast profile.
 *
 *   node bench/memory.mjs [--quick] [--serve-only]   (--serve-only: just the idle `kvmctl serve` figure)
 */
import fs from 'node:fs';
import path from 'node:path';
import { BIN, killPid, load1, makeHome, now, QUICK, Results, ROOT, rssKb, sleep, timed, tinyVm, waitMarker } from './lib.mjs';

const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

async function peakKb(argv, env) {
  if (GNU_TIME) {
    const r = await timed([GNU_TIME, '-f', 'MAXRSS=%M', ...argv], { env });
    const m = /MAXRSS=(\d+)/.exec(r.stderr);
    if (r.code !== 0 || !m) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return Number(m[1]);
  }
  throw new Error('no /usr/bin/time');
}

const SERVE_ONLY = process.argv.includes('--serve-only');

export async function run(results) {
  const h = makeHome('m');
  const figures = { cliPeakRssKiB: {}, qemuRssMiB: {} };
  const loads = [load1()];
  if (SERVE_ONLY) {
    try {
      figures.serveIdle = await serveIdle(h);
    } finally {
      await h.cleanup();
    }
    console.log('memory: serve idle RSS (MiB), 10 VMs defined, 2 running, no client', figures.serveIdle);
    results.add({ id: 'memory-serve', title: 'memory: kvmctl serve idle RSS', command: 'node bench/memory.mjs --serve-only', figures, loads });
    return;
  }
  try {
    await h.apply(tinyVm('ms'));
    await h.apply(tinyVm('mf', { profile: 'fast' }));
    const node = process.execPath;
    const cmds = {
      'node -e 0': [node, '-e', '0'],
      'kvmctl list': [node, BIN, 'list'],
      'kvmctl status ms': [node, BIN, 'status', 'ms'],
      'kvmctl cmdline ms': [node, BIN, 'cmdline', 'ms'],
    };
    for (const [k, argv] of Object.entries(cmds)) {
      const xs = [];
      for (let i = 0; i < (QUICK ? 2 : 3); i++) xs.push(await peakKb(argv, h.env));
      figures.cliPeakRssKiB[k] = Math.max(...xs);
    }
    figures.cliPeakRssKiB['kvmctl start mf --wait'] = await peakKb([node, BIN, 'start', 'mf', '--wait'], h.env);
    await h.cliOk(['kill', 'mf']);
    for (const vm of ['ms', 'mf']) {
      const t0 = now();
      const r = await h.cliOk(['start', vm, '--json']);
      const pid = JSON.parse(r.stdout).pid;
      await waitMarker(path.join(h.run, vm, 'serial.log'), t0, 240_000);
      await sleep(1000);
      figures.qemuRssMiB[vm === 'ms' ? 'standard' : 'fast'] = Math.round(rssKb(pid) / 1024);
      await killPid(pid);
    }
    figures.serveIdle = await serveIdle(h);
  } finally {
    await h.cleanup();
  }
  console.log('memory: serve idle RSS (MiB), 10 VMs defined, 2 running, no client', figures.serveIdle);
  console.log('memory: CLI peak RSS (KiB)', figures.cliPeakRssKiB, 'QEMU RSS of one ready 256M guest (MiB)', figures.qemuRssMiB);
  results.add({ id: 'memory', title: 'memory: CLI peak RSS, QEMU RSS per guest', command: `node bench/memory.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
}

/**
 * `kvmctl serve` idle (issue #19: target < 60 MB): 10 tiny VMs defined, 2 running, the web
 * console closed; RSS sampled every 5 s for 60 s (30 s with --quick) after a 10 s settle.
 */
async function serveIdle(h) {
  for (let i = 0; i < 10; i++) await h.apply(tinyVm(`si${i}`, { profile: 'fast' }));
  const pids = [];
  for (const vm of ['si0', 'si1']) pids.push(JSON.parse((await h.cliOk(['start', vm, '--json'])).stdout).pid);
  const { spawn } = await import('node:child_process');
  const srv = spawn(process.execPath, [BIN, 'serve', '--socket', path.join(h.dir, 'si.sock')], { env: h.env, stdio: 'ignore' });
  try {
    await sleep(10_000);
    const xs = [];
    for (let t = 0; t < (QUICK ? 30 : 60); t += 5) {
      xs.push(rssKb(srv.pid) / 1024);
      await sleep(5000);
    }
    const s = [...xs].sort((a, b) => a - b);
    return { medianMiB: Math.round(s[s.length >> 1] * 10) / 10, minMiB: Math.round(s[0] * 10) / 10, samplesMiB: xs.map((x) => Math.round(x * 10) / 10), maxMiB: Math.round(s.at(-1) * 10) / 10, samples: xs.length, targetMiB: 60, met: s.at(-1) < 60 };
  } finally {
    await killPid(srv.pid);
    for (const p of pids) await killPid(p);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, SERVE_ONLY ? 'bench/results/memory-serve.json' : 'bench/results/memory.json'));
}
