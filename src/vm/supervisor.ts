/**
 * Restart policies, applied by `kvmctl serve`. Fed with the state transitions the server's
 * watcher sees; never acts on what it finds when the server starts (a server restart must not
 * restart or kill any guest — running VMs are only adopted).
 *
 * - `on-failure`: a VM that crashed (QEMU died without a clean exit) is started again.
 * - `always`: also a VM that stopped not by kvmctl (the guest powered off: last exit "guest").
 * - Back-off: backoffSec × 2^n (capped at maxBackoffSec) before restart n+1, at most maxRetries
 *   restarts; the count goes back to 0 once the VM has run for resetAfterSec.
 * A stop through kvmctl (API or CLI: last exit acpi/quit/sigkill) never triggers a restart.
 */
import type { Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import type { LastExit, VmState } from './state.js';

export type RestartPolicy = 'no' | 'on-failure' | 'always';
export type PolicySettings = { maxRetries: number; backoffSec: number; maxBackoffSec: number; resetAfterSec: number };

export type SupervisorEvent = {
  kind: 'supervisor';
  vm: string;
  action: 'scheduled' | 'restarted' | 'failed' | 'gave-up' | 'adopted';
  attempt?: number;
  delaySec?: number;
  message: string;
};

export type SupervisionInfo = { policy: RestartPolicy; restarts: number; maxRetries: number; nextRestartAt?: string; gaveUp: boolean };

export type TransitionInput = { name: string; previous: VmState | null; state: VmState; lastExit?: LastExit; initial: boolean };

type Track = { restarts: number; gaveUp: boolean; timer?: NodeJS.Timeout; nextAt?: number; runningSince?: number };

const DEFAULTS: PolicySettings = { maxRetries: 5, backoffSec: 1, maxBackoffSec: 60, resetAfterSec: 300 };

/** Seconds to wait before restart number `attempt` (1-based). Pure. */
export function backoffDelay(attempt: number, p: Pick<PolicySettings, 'backoffSec' | 'maxBackoffSec'>): number {
  return Math.min(p.backoffSec * 2 ** Math.max(0, attempt - 1), p.maxBackoffSec);
}

/** Whether an end of a VM calls for a restart under `policy`. Pure. */
export function wantsRestart(policy: RestartPolicy, state: VmState, lastExit?: LastExit): boolean {
  if (policy === 'no') return false;
  if (state === 'crashed') return true;
  return policy === 'always' && state === 'stopped' && lastExit?.how === 'guest';
}

export class Supervisor {
  private readonly tracks = new Map<string, Track>();
  private closed = false;

  constructor(
    private readonly paths: Paths,
    private readonly deps: {
      start: (name: string) => Promise<unknown>;
      publish: (e: SupervisorEvent) => void;
      log?: (m: string) => void;
      /** Read the definition (default: the store). */
      spec?: (name: string) => Pick<VmSpec, 'restart' | 'restartPolicy'> | undefined;
    },
  ) {}

  private policyOf(name: string): { policy: RestartPolicy; settings: PolicySettings } {
    let spec: Pick<VmSpec, 'restart' | 'restartPolicy'> | undefined;
    try {
      spec = this.deps.spec ? this.deps.spec(name) : readVm(this.paths, name);
    } catch {
      spec = undefined;
    }
    return { policy: spec?.restart ?? 'no', settings: { ...DEFAULTS, ...(spec?.restartPolicy ?? {}) } };
  }

  private track(name: string): Track {
    let t = this.tracks.get(name);
    if (!t) this.tracks.set(name, (t = { restarts: 0, gaveUp: false }));
    return t;
  }

  info(name: string): SupervisionInfo | undefined {
    const { policy, settings } = this.policyOf(name);
    if (policy === 'no') return undefined;
    const t = this.tracks.get(name);
    return {
      policy,
      restarts: t?.restarts ?? 0,
      maxRetries: settings.maxRetries,
      nextRestartAt: t?.nextAt ? new Date(t.nextAt).toISOString() : undefined,
      gaveUp: t?.gaveUp ?? false,
    };
  }

  onTransition(tr: TransitionInput): void {
    if (this.closed) return;
    const t = this.track(tr.name);
    if (tr.state === 'running' || tr.state === 'paused') {
      t.runningSince ??= Date.now();
      if (tr.initial) this.deps.publish({ kind: 'supervisor', vm: tr.name, action: 'adopted', message: `adopted running VM "${tr.name}"` });
      return;
    }
    if (tr.state === 'starting' || tr.state === 'stopping') return;
    // The VM ended (or was found ended at server start).
    const ranFor = t.runningSince ? (Date.now() - t.runningSince) / 1000 : 0;
    t.runningSince = undefined;
    if (tr.initial) return; // never act on what a new server finds
    const { policy, settings } = this.policyOf(tr.name);
    if (!wantsRestart(policy, tr.state, tr.lastExit)) return;
    if (ranFor >= settings.resetAfterSec) {
      t.restarts = 0;
      t.gaveUp = false;
    }
    this.schedule(tr.name, t, settings, tr.state === 'crashed' ? `crashed${tr.lastExit?.reason ? `: ${tr.lastExit.reason.split('\n').pop()}` : ''}` : 'the guest powered off');
  }

  private schedule(name: string, t: Track, s: PolicySettings, why: string): void {
    if (t.timer) return;
    const attempt = t.restarts + 1;
    if (attempt > s.maxRetries) {
      if (!t.gaveUp) {
        t.gaveUp = true;
        this.deps.publish({ kind: 'supervisor', vm: name, action: 'gave-up', attempt: t.restarts, message: `"${name}" ${why}; gave up after ${t.restarts} restart(s) (restartPolicy.maxRetries ${s.maxRetries})` });
      }
      return;
    }
    const delaySec = backoffDelay(attempt, s);
    t.nextAt = Date.now() + delaySec * 1000;
    this.deps.publish({ kind: 'supervisor', vm: name, action: 'scheduled', attempt, delaySec, message: `"${name}" ${why}; restart ${attempt}/${s.maxRetries} in ${delaySec} s` });
    t.timer = setTimeout(() => void this.fire(name, t, attempt), delaySec * 1000);
  }

  private async fire(name: string, t: Track, attempt: number): Promise<void> {
    t.timer = undefined;
    t.nextAt = undefined;
    if (this.closed) return;
    const { policy, settings } = this.policyOf(name);
    if (policy === 'no') return; // the policy was turned off (or the VM removed) meanwhile
    t.restarts = attempt;
    try {
      await this.deps.start(name);
      t.runningSince = Date.now();
      this.deps.publish({ kind: 'supervisor', vm: name, action: 'restarted', attempt, message: `restarted "${name}" (attempt ${attempt}/${settings.maxRetries})` });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      if (err.code === 'VM_RUNNING') return; // someone started it meanwhile
      this.deps.log?.(`supervisor: restart of ${name} failed: ${err.message}`);
      this.deps.publish({ kind: 'supervisor', vm: name, action: 'failed', attempt, message: `restart ${attempt} of "${name}" failed: ${err.message ?? String(e)}` });
      this.schedule(name, t, settings, 'failed to restart');
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.tracks.values()) clearTimeout(t.timer);
  }
}
