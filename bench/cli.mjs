/**
 * CLI latency: `kvmctl list`, `status`, `cmdline` with 1, 10 and 100 defined VMs, and `list` /
 * `status` with 10 of them running (fast profile, idle after boot), against bare `node -e 0`
 * (Node's own start-up, the floor of any Node CLI). Alternating in rounds.
 * Issue 2: `kvmctl cmdline exam_vm` well under 200 ms.
 *
 *   node bench/cli.mjs [--quick]
 */
import fs from 'node:fs';
import path from 'node:path';
import { line, load1, makeHome, QUICK, ratio, Results, ROOT, stats, timed, tinyVm, waitMarker, now } from './lib.mjs';

export async function run(results) {
  const h = makeHome('c');
  const runs = QUICK ? 5 : 10;
  const figures = {};
  const loads = [];
  try {
    // exam_vm as shipped (two networks: cmdline plans their taps without touching the host).
    await h.cliOk(['apply', '-f', path.join(ROOT, 'examples/exam_vm.yaml')]);
    const defs = path.join(h.dir, 'defs');
    fs.mkdirSync(defs);
    let defined = 1; // exam_vm
    const grow = async (to) => {
      for (let i = defined; i < to; i++) fs.writeFileSync(path.join(defs, `vm${i}.yaml`), tinyVm(`vm${i}`, { profile: 'fast' }));
      if (to > defined) await h.cliOk(['apply', '-f', defs]);
      defined = to;
    };
    const measure = async (label, cmds) => {
      const ms = Object.fromEntries(Object.keys(cmds).map((k) => [k, []]));
      for (let i = -1; i < runs; i++) {
        loads.push(load1());
        for (const [k, argv] of Object.entries(cmds)) {
          const r = k === 'node' ? await timed([process.execPath, '-e', '0']) : await h.cli(argv);
          if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
          if (i >= 0) ms[k].push(r.ms);
        }
      }
      const st = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, stats(v)]));
      figures[label] = { ...st, overNode: Object.fromEntries(Object.keys(cmds).filter((k) => k !== 'node').map((k) => [k, ratio(st[k].median, st.node.median)])) };
      console.log(`CLI latency, ${label}:`);
      for (const k of Object.keys(cmds)) console.log(line(k === 'node' ? 'node -e 0' : `kvmctl ${cmds[k].join(' ')}`, st[k]));
    };
    const cmds = { node: [], list: ['list'], status: ['status', 'exam_vm'], cmdline: ['cmdline', 'exam_vm'] };
    await measure('1 defined', cmds);
    await grow(10);
    await measure('10 defined', cmds);
    await grow(100);
    await measure('100 defined', cmds);
    // 10 running (fast profile), measured once they are idle at the shell prompt.
    const t0 = now();
    for (let i = 1; i <= 10; i++) await h.cliOk(['start', `vm${i}`, '--json']);
    await Promise.all(Array.from({ length: 10 }, (_, i) => waitMarker(path.join(h.run, `vm${i + 1}`, 'serial.log'), t0, 300_000)));
    await measure('100 defined, 10 running', { node: [], list: ['list'], status: ['status', 'vm1'], cmdline: ['cmdline', 'exam_vm'] });
  } finally {
    await h.cleanup();
  }
  results.add({ id: 'cli-latency', title: 'CLI latency vs node -e 0', command: `node bench/cli.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/cli.json'));
}
