/**
 * `kvmctl shutdown-all`: at host shutdown, power every running VM down gracefully, then force the
 * ones still running (like libvirt-guests). Each VM goes through `stopVm` (ACPI, pressed again
 * every few seconds → QMP quit → SIGKILL), all in parallel, against ONE deadline: t0 + timeout.
 *
 * Reverse autostart order: VMs with a higher `autostart.order` get the ACPI press first (they may
 * depend on the lower ones). A group starts when the group before it is down, or at the latest at
 * its share of the timeout (group k of n at k/n × timeout), so that one guest ignoring ACPI never
 * eats the grace time of the others. Whatever happens, everything ends by about timeout + the
 * force time (quit 2 s, then SIGKILL), which is what an init system's stop timeout must allow.
 */
import type { Paths } from '../host/paths.js';
import { errInfo, readAllVms, type ErrInfo } from './autostart.js';

export type ShutdownOutcome = {
  name: string;
  order: number;
  /** How it ended: the guest powered off (acpi), QMP quit, SIGKILL; or it was already down. */
  how: 'agent' | 'acpi' | 'quit' | 'sigkill' | 'already-stopped' | 'failed';
  /** When its power-down began (ms after shutdown-all began), how long it took, when it ended. */
  atMs: number;
  tookMs: number;
  endMs: number;
  /** Seconds of grace it had left when its group began. */
  graceSec: number;
  error?: ErrInfo;
};

export type ShutdownAllResult = {
  timeoutSec?: number;
  vms: ShutdownOutcome[];
  graceful: number;
  forced: number;
  failed: number;
  tookMs: number;
};

const LIVE = new Set(['running', 'paused', 'starting', 'stopping']);

export async function shutdownAll(paths: Paths, opts: { timeoutSec?: number; log?: (m: string) => void } = {}): Promise<ShutdownAllResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const { vmStatus } = await import('./status.js');
  const { stopVm } = await import('./stop.js');
  const { vms, unreadable } = readAllVms(paths);
  const states = await Promise.all(vms.map(async (vm) => ({ vm, st: await vmStatus(paths, vm.name) })));
  const running = states.filter((s) => LIVE.has(s.st.state)).map((s) => s.vm);
  const outcomes: ShutdownOutcome[] = [];
  // A running VM whose definition no longer reads cannot be stopped by name (stop reads its
  // stopTimeout): say so, loudly, instead of skipping it quietly.
  for (const u of unreadable) {
    const st = await vmStatus(paths, u.name);
    if (!LIVE.has(st.state)) continue;
    outcomes.push({
      name: u.name, order: 0, how: 'failed', atMs: 0, tookMs: 0, endMs: 0, graceSec: 0,
      error: { code: u.error.code, message: `VM "${u.name}" is ${st.state} (pid ${st.pid}) but its definition does not read: ${u.error.message}`, hint: 'fix the definition, then kvmctl stop; or end QEMU by its pid' },
    });
  }

  // Groups in stop order: highest autostart order first.
  const orders = [...new Set(running.map((v) => v.autostart.order))].sort((a, b) => b - a);
  const groups = orders.map((o) => running.filter((v) => v.autostart.order === o));
  const budgetSec = opts.timeoutSec ?? Math.max(0, ...running.map((v) => v.stopTimeout));
  const deadlineOf = (stopTimeout: number) => t0 + (opts.timeoutSec ?? stopTimeout) * 1000;

  let previous: Promise<unknown> = Promise.resolve();
  const all: Promise<unknown>[] = [];
  groups.forEach((group, k) => {
    const latest = t0 + (budgetSec * 1000 * k) / groups.length;
    const begin = Promise.race([previous, new Promise((r) => setTimeout(r, Math.max(0, latest - Date.now())))]);
    const done = begin.then(() =>
      Promise.all(
        group.map(async (vm) => {
          const atMs = Date.now() - t0;
          const graceSec = Math.max(0, (deadlineOf(vm.stopTimeout) - Date.now()) / 1000);
          log(`${vm.name}: powering down (order ${vm.autostart.order}, ${graceSec.toFixed(1)} s of grace)`);
          const base = { name: vm.name, order: vm.autostart.order, atMs, graceSec: Math.round(graceSec * 10) / 10 };
          let o: ShutdownOutcome;
          try {
            const r = await stopVm(paths, vm.name, { timeoutSec: graceSec });
            o = { ...base, how: r.how, tookMs: r.tookMs, endMs: Date.now() - t0 };
          } catch (e) {
            const error = errInfo(e);
            o = error.code === 'VM_NOT_RUNNING'
              ? { ...base, how: 'already-stopped', tookMs: Date.now() - t0 - atMs, endMs: Date.now() - t0 }
              : { ...base, how: 'failed', tookMs: Date.now() - t0 - atMs, endMs: Date.now() - t0, error };
          }
          log(`${vm.name}: ${o.how}${o.error ? ` (${o.error.message})` : ''} after ${o.tookMs} ms`);
          outcomes.push(o);
        }),
      ),
    );
    all.push(done);
    previous = done;
  });
  await Promise.all(all);
  const rank = new Map(running.map((v, i) => [v.name, i]));
  outcomes.sort((a, b) => b.order - a.order || rank.get(a.name)! - rank.get(b.name)!);
  return {
    ...(opts.timeoutSec !== undefined ? { timeoutSec: opts.timeoutSec } : {}),
    vms: outcomes,
    graceful: outcomes.filter((o) => o.how === 'acpi').length,
    forced: outcomes.filter((o) => o.how === 'quit' || o.how === 'sigkill').length,
    failed: outcomes.filter((o) => o.how === 'failed').length,
    tookMs: Date.now() - t0,
  };
}
