/**
 * Memory: kvmctl CLI peak RSS (GNU time's "Maximum resident set size", else VmHWM sampled from
 * /proc) for list, status, cmdline and start, vs `node -e 0`; and the RSS of one idle tiny guest's
 * QEMU, standard vs fast profile.
 *
 *   node bench/memory.mjs [--quick]
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

export async function run(results) {
  const h = makeHome('m');
  const figures = { cliPeakRssKiB: {}, qemuRssMiB: {} };
  const loads = [load1()];
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
  } finally {
    await h.cleanup();
  }
  console.log('memory: CLI peak RSS (KiB)', figures.cliPeakRssKiB, 'QEMU RSS of one ready 256M guest (MiB)', figures.qemuRssMiB);
  results.add({ id: 'memory', title: 'memory: CLI peak RSS, QEMU RSS per guest', command: `node bench/memory.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/memory.json'));
}
