/**
 * Stop: graceful power-down latency — `kvmctl stop` (ACPI over QMP, waits for QEMU to exit) vs
 * bare QMP `system_powerdown` sent by hand and waiting for the process to end — alternating; and
 * forced-stop accuracy: a guest ignoring ACPI (kvt.noacpi=1) stopped with `--timeout 2`, how far
 * past 2 s the VM is gone. Fast profile (the guest boots quicker; power-down goes through
 * microvm's GED power button to busybox acpid, like q35's).
 *
 *   node bench/stop.mjs [--quick]
 */
import net from 'node:net';
import path from 'node:path';
import { alive, cleanRuntime, cmdlineArgv, killPid, line, load1, makeHome, now, QUICK, Results, ROOT, sleep, spawnBare, stats, tinyVm, waitMarker } from './lib.mjs';

/** Minimal QMP: greeting, capabilities, one command. */
function qmp(socket, command) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket);
    let buf = '';
    let step = 0;
    s.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (step === 0 && msg.QMP) {
          s.write('{"execute":"qmp_capabilities"}\n');
          step = 1;
        } else if (step === 1 && 'return' in msg) {
          s.write(`{"execute":"${command}"}\n`);
          step = 2;
        } else if (step === 2 && ('return' in msg || 'error' in msg)) {
          s.end();
          resolve(msg);
        }
      }
    });
    s.on('error', reject);
  });
}

export async function run(results) {
  const h = makeHome('t');
  const runs = QUICK ? 3 : 5;
  const loads = [];
  const figures = {};
  try {
    await h.apply(tinyVm('st', { profile: 'fast' }));
    await h.apply(tinyVm('st-bare', { profile: 'fast' }));
    await h.apply(tinyVm('deaf', { profile: 'fast', append: 'kvt.noacpi=1' }));
    const argv = await cmdlineArgv(h, 'st-bare');
    const dir = path.join(h.run, 'st-bare');
    const k = [];
    const kReported = [];
    const b = [];
    for (let i = 0; i < runs; i++) {
      loads.push(load1());
      await h.cliOk(['start', 'st', '--wait-for-guest'], { timeoutMs: 240_000 });
      const r = await h.cliOk(['stop', 'st', '--json']);
      const j = JSON.parse(r.stdout);
      if (j.how !== 'acpi') throw new Error(`kvmctl stop ended the guest by ${j.how}, not ACPI`);
      k.push(r.ms);
      kReported.push(j.tookMs);
      cleanRuntime(dir);
      const s = spawnBare(argv);
      try {
        await waitMarker(path.join(dir, 'serial.log'), s.t0, 240_000);
        await sleep(300); // as kvmctl's start returns and its stop starts: let the shell settle
        const t0 = now();
        await qmp(path.join(dir, 'qmp.sock'), 'system_powerdown');
        while (alive(s.pid) && now() - t0 < 30_000) await sleep(5);
        b.push(now() - t0);
      } finally {
        await killPid(s.pid);
        cleanRuntime(dir);
      }
    }
    figures.graceful = { kvmctlStopWall: stats(k), kvmctlStopReported: stats(kReported), bareQmpPowerdown: stats(b) };
    console.log('stop (graceful, ACPI):');
    console.log(line('kvmctl stop (wall, CLI start-up included)', figures.graceful.kvmctlStopWall));
    console.log(line('kvmctl stop (its own tookMs)', figures.graceful.kvmctlStopReported));
    console.log(line('bare QMP system_powerdown → QEMU gone', figures.graceful.bareQmpPowerdown));

    const over = [];
    const how = [];
    for (let i = 0; i < (QUICK ? 2 : 3); i++) {
      loads.push(load1());
      await h.cliOk(['start', 'deaf', '--wait-for-guest'], { timeoutMs: 240_000 });
      const r = await h.cliOk(['stop', 'deaf', '--timeout', '2', '--json']);
      const j = JSON.parse(r.stdout);
      over.push(j.tookMs - 2000);
      how.push(j.how);
    }
    figures.forced = { timeoutMs: 2000, overshootMs: stats(over), how };
    console.log(line('forced stop: ms past the 2 s timeout', figures.forced.overshootMs, `(ended by ${how.join(', ')})`));
  } finally {
    await h.cleanup();
  }
  results.add({ id: 'stop', title: 'stop: graceful latency, forced-stop accuracy', command: `node bench/stop.mjs${QUICK ? ' --quick' : ''}`, figures, loads });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/stop.json'));
}
