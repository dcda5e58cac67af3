/**
 * Faults at random points, with the real CLI, real QEMU (TCG) and a real bridge inside a network
 * namespace made for this test. One home, one small guest (it ignores ACPI, so every stop has to
 * escalate), at most one QEMU at a time. A seeded PRNG (KVT_SEED) walks the VM through ≥ 24 runs:
 *
 *   VM gone  → `kvmctl start --netns NS`, SIGKILLed after a random 0–2 s
 *   VM up    → `kvmctl stop --timeout 0.5`, SIGKILLed after a random 0–1.5 s  (3 in 4)
 *            → SIGKILL of QEMU itself                                      (1 in 4)
 *
 * After each run, once no kvmctl holds the VM's lock, the VM must be either fully up (status
 * running, exactly that one QEMU of this home in /proc, its tap on the bridge, its sockets) or
 * fully gone (status stopped/crashed, no QEMU, no tap of this VM in the namespace, no sockets,
 * pidfile, state or NIC record, lock not held). Figures go to test-output/reliability-kill.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { listLinks } from '../../src/net/ip.js';
import { isVmLocked } from '../../src/vm/lock.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, qemuProcessesMentioning, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';
import { prng, retryDist, SEED, sleep, writeReport } from './lib.js';

const RUNS = Number(process.env.KVT_KILL_RUNS ?? 24);
const VM = 'rk';
const can = canUseNetns().ok && canBootGuest();

let h: Home;
let ns: Netns;
let paths: Paths;
const vmDir = () => path.join(h.dir, 'run/vms', VM);

beforeAll(async () => {
  if (!can) return;
  h = makeHome();
  paths = resolvePaths(h.env);
  ns = await createNetns();
  await h.apply(`kind: network\nname: kvtnet\ntype: bridge\n---\nname: ${VM}\nmemory: 128M\nkernel: { builtin: test-guest, append: "kvt.noacpi=1" }\nnics: [{ network: kvtnet }]\nstopTimeout: 1\n`);
  await ensureTestGuest(paths);
}, 320_000);
afterAll(async () => {
  if (!can) return;
  await h?.cli(['kill', VM]).catch(() => undefined);
  await h?.cleanup();
  await ns?.destroy();
});

type Status = { state: string; pid?: number; reason?: string };
async function status(): Promise<Status> {
  const r = await retryDist(() => h.cli(['status', VM, '--json']));
  if (r.code !== 0) throw new Error(`kvmctl status ${VM} failed (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}
/** Status once no kvmctl holds the lock any more (a killed one's lock goes stale within ~5 s). */
async function settled(): Promise<Status> {
  let st = await status();
  for (let i = 0; i < 60 && (st.state === 'starting' || st.state === 'stopping'); i++) {
    await sleep(250);
    st = await status();
  }
  return st;
}
async function vmTaps(): Promise<{ ifname: string; master?: string }[]> {
  return (await listLinks({ netns: ns.name })).filter((l) => l.ifalias?.startsWith(`kvmctl:vm=${VM},`) || l.linkinfo?.info_kind === 'tun');
}
const LEFTOVER_WHEN_GONE = ['qmp.sock', 'serial.sock', 'monitor.sock', 'vnc.sock', 'qemu.pid', 'state.json', 'nics.json'];

describe.skipIf(!can)('kill -9 at random points of start and stop', () => {
  it(`${RUNS} seeded runs: the VM is always fully up or fully gone`, async () => {
    const rnd = prng(SEED);
    const violations: string[] = [];
    const counts = { runs: 0, cliKilledInStart: 0, cliKilledInStop: 0, cliFinishedFirst: 0, killedAfterSpawn: 0, waitedForStaleLock: 0, qemuKilled: 0, endedUp: 0, endedGone: 0, crashedSeen: 0, lostGuests: 0, strayTaps: 0, leftoverFiles: 0, heldLocks: 0, orphanQemus: 0, staleLockDirsLeft: 0 };
    const runs: { i: number; op: string; delayMs: number; killed: boolean; exit: number | null; after: string; ms: number }[] = [];
    const t0 = Date.now();
    for (let i = 0; i < RUNS; i++) {
      const before = await settled();
      const up = before.state === 'running' || before.state === 'paused';
      const op = !up ? 'start' : rnd() < 0.25 ? 'kill-qemu' : 'stop';
      // A start takes ~1–2 s here (TCG, a loaded machine): up to 2 s so kills land after QEMU's spawn too.
      const delay = Math.round(rnd() * (op === 'start' ? 2000 : 1500));
      const ti = Date.now();
      let killed = false;
      let exit: number | null = null;
      if (op === 'kill-qemu') {
        process.kill(before.pid!, 'SIGKILL');
        killed = true;
        counts.qemuKilled++;
        await sleep(200);
        const st = await status();
        if (st.state !== 'crashed') violations.push(`run ${i}: QEMU killed, status says ${st.state}, want crashed`);
        else counts.crashedSeen++;
      } else {
        const child = h.spawnCli(op === 'start' ? ['start', VM, '--netns', ns.name] : ['stop', VM, '--timeout', '0.5']);
        const closed = new Promise<number | null>((r) => child.once('close', (c) => r(c)));
        await Promise.race([sleep(delay), closed]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          killed = true;
          if (op === 'start' && fs.existsSync(path.join(vmDir(), 'qemu.pid'))) counts.killedAfterSpawn++;
          if (op === 'start') counts.cliKilledInStart++;
          else counts.cliKilledInStop++;
        } else counts.cliFinishedFirst++;
        exit = await closed;
      }
      counts.runs++;

      // Judge the outcome.
      const st = await settled();
      const procs = qemuProcessesMentioning(`${vmDir()}/`);
      const taps = await vmTaps();
      const where = `run ${i} (${op}, ${delay} ms, ${killed ? 'killed' : `exit ${exit}`})`;
      if (st.state === 'running' || st.state === 'paused') {
        counts.endedUp++;
        if (procs.length !== 1 || procs[0] !== st.pid) {
          counts.lostGuests++;
          violations.push(`${where}: status ${st.state} pid ${st.pid} but QEMUs of this home: [${procs.join(', ')}]`);
        }
        if (taps.length !== 1 || taps[0]!.master !== 'kvtnet') {
          counts.strayTaps += Math.max(0, taps.length - 1);
          violations.push(`${where}: up with taps ${JSON.stringify(taps)} (want one, on kvtnet)`);
        }
        for (const f of ['qmp.sock', 'qemu.pid']) if (!fs.existsSync(path.join(vmDir(), f))) violations.push(`${where}: up but ${f} is missing`);
      } else {
        counts.endedGone++;
        if (st.state !== 'stopped' && st.state !== 'crashed') violations.push(`${where}: state ${st.state}, want stopped or crashed`);
        if (procs.length) {
          counts.lostGuests++;
          counts.orphanQemus += procs.length;
          violations.push(`${where}: status ${st.state} but QEMU still runs: [${procs.join(', ')}]`);
        }
        if (taps.length) {
          counts.strayTaps += taps.length;
          violations.push(`${where}: gone but taps left: ${taps.map((t) => t.ifname).join(', ')}`);
        }
        const left = LEFTOVER_WHEN_GONE.filter((f) => fs.existsSync(path.join(vmDir(), f)));
        if (left.length) {
          counts.leftoverFiles += left.length;
          violations.push(`${where}: gone but left ${left.join(', ')}`);
        }
        // A kvmctl killed while holding the lock leaves it to go stale (≤ 5 s): held after 8 s = leaked.
        let locked = await isVmLocked(paths, VM);
        if (locked) counts.waitedForStaleLock++;
        for (let k = 0; locked && k < 32; k++) {
          await sleep(250);
          locked = await isVmLocked(paths, VM);
        }
        if (locked) {
          counts.heldLocks++;
          violations.push(`${where}: gone but the VM's lock is still held`);
        }
        if (fs.existsSync(path.join(h.dir, 'run/vms', `${VM}.lock`))) counts.staleLockDirsLeft++;
      }
      if (op === 'kill-qemu' && st.state !== 'crashed') violations.push(`${where}: QEMU was killed but the VM now shows as ${st.state} (the crash must be remembered)`);
      runs.push({ i, op, delayMs: delay, killed, exit, after: st.state, ms: Date.now() - ti });
    }
    const totalMs = Date.now() - t0;

    // The guest ignores ACPI: a full stop must end by QMP quit within timeout + 2 s.
    let bounded: { how?: string; tookMs?: number; timeoutSec: number } = { timeoutSec: 2 };
    const last = await settled();
    runs.push({ i: -1, op: `final (was ${last.state}, files ${fs.existsSync(vmDir()) ? fs.readdirSync(vmDir()).join(' ') : '-'})`, delayMs: 0, killed: false, exit: null, after: '', ms: 0 });
    if (last.state !== 'running') {
      const s = await h.cli(['start', VM, '--netns', ns.name]);
      expect(s.code, s.stderr).toBe(0);
    }
    const stop = await h.cli(['stop', VM, '--timeout', '2', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    bounded = { ...bounded, ...(JSON.parse(stop.stdout) as { how: string; tookMs: number }) };
    const tapsAfterStop = await vmTaps();
    if (tapsAfterStop.length) violations.push(`final stop left taps ${tapsAfterStop.map((t) => t.ifname).join(', ')}; files: ${fs.readdirSync(vmDir()).join(' ')}; last runs: ${JSON.stringify(runs.slice(-3))}`);

    writeReport('kill', {
      ...counts,
      faultsInjected: counts.cliKilledInStart + counts.cliKilledInStop + counts.qemuKilled,
      leakedResources: counts.strayTaps + counts.leftoverFiles + counts.heldLocks + counts.orphanQemus,
      violations,
      totalMs,
      deafGuestStop: bounded,
      runs,
    });
    expect(violations).toEqual([]);
    expect(counts.runs).toBeGreaterThanOrEqual(20);
    expect(counts.cliKilledInStart + counts.cliKilledInStop).toBeGreaterThan(0);
    expect(bounded.how).toBe('quit');
    expect(bounded.tookMs!).toBeLessThanOrEqual(2000 + 2000);
  }, 400_000);

  // kvmctl serve's supervisor applies `restart:`; that belongs to the serve tests (kill -9 of
  // serve, re-adoption). Here only the daemonless CLI is exercised.
});
