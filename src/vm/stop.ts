/**
 * `stop`: ACPI power-down over QMP (or, with method 'agent', guest-shutdown through the guest
 * agent, falling back to ACPI when no agent answers), wait up to the timeout, then QMP `quit`,
 * then SIGKILL; it reports which one ended the VM. `kill` skips to quit/SIGKILL. Always ends.
 */
import { badInput } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { readVm } from '../spec/store.js';
import { withVmLock } from './lock.js';
import { isAlive } from './proc.js';
import { qmpOnce } from './qmp-once.js';
import { observe, readJson, writeJson, type LastExit, type RunState } from './state.js';
import { cleanupDead, vmStatus } from './status.js';
import { waitGone } from './proc.js';

export type StopResult = { name: string; how: 'agent' | 'acpi' | 'quit' | 'sigkill'; tookMs: number; note?: string };
export type StopMethod = 'acpi' | 'agent';

const QUIT_WAIT_MS = 2000;
const REPRESS_MS = 3000;

export async function stopVm(paths: Paths, name: string, opts: { timeoutSec?: number; force?: boolean; method?: StopMethod } = {}): Promise<StopResult> {
  const vm = readVm(paths, name);
  const timeoutMs = (opts.timeoutSec ?? vm.stopTimeout) * 1000;
  return withVmLock(paths, name, async () => {
    const s = await vmStatus(paths, name, { lockHeld: true });
    if (s.state === 'stopped' || s.state === 'crashed') {
      throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running (${s.state})`, s.state === 'crashed' ? `it crashed: ${s.reason ?? ''}`.trim() : `kvmctl start ${name}`);
    }
    const o = observe(paths, name);
    const pid = o.pid!;
    const starttime = o.run?.pid === pid ? o.run.starttime : undefined;
    const f = vmRuntimeFiles(paths, name);
    const run = readJson<RunState>(f.state);
    if (run) writeJson(f.state, { ...run, stoppingBy: process.pid });
    const t0 = Date.now();
    let how: StopResult['how'] = 'acpi';
    let gone = false;
    let note: string | undefined;
    const end = Date.now() + timeoutMs;
    if (!opts.force && opts.method === 'agent') {
      try {
        // Not through agentSocket(): the VM already shows as stopping here.
        const { effectiveAgent } = await import('../spec/vm-effective.js');
        if (!effectiveAgent(vm)) throw new Error('agent is off in the definition');
        const { QgaClient } = await import('../qga/client.js');
        const a = await QgaClient.connect(`${f.dir}/qga.sock`);
        try {
          await (await import('../qga/commands.js')).shutdown(a, 'powerdown');
        } finally {
          a.close();
        }
        how = 'agent';
        gone = await waitGone(pid, timeoutMs, starttime);
      } catch (e) {
        note = `guest agent: ${e instanceof Error ? e.message : String(e)}; used ACPI`;
      }
    }
    if (!opts.force && !gone && how !== 'agent') {
      try {
        const q = (await qmpOnce(f.qmp, 'query-status', undefined, 2000)) as { running: boolean };
        if (!q.running) await qmpOnce(f.qmp, 'cont', undefined, 2000); // a paused guest cannot see the button
        // Press the button again every few seconds: a guest still booting (acpid not yet
        // listening) drops the first press, and a second press is harmless.
        while (!gone && Date.now() < end) {
          await qmpOnce(f.qmp, 'system_powerdown', undefined, 2000);
          gone = await waitGone(pid, Math.min(REPRESS_MS, end - Date.now()), starttime);
        }
      } catch {
        gone = !isAlive(pid, starttime);
      }
    }
    if (!gone) {
      how = 'quit';
      gone = await quitThenKill(f.qmp, pid, starttime, (h) => (how = h));
    }
    await cleanupDead(paths, name, { at: new Date().toISOString(), how } satisfies LastExit);
    return { name, how, tookMs: Date.now() - t0, ...(note ? { note } : {}) };
  });
}

async function quitThenKill(qmp: string, pid: number, starttime: number | undefined, set: (h: 'quit' | 'sigkill') => void): Promise<boolean> {
  set('quit');
  try {
    await qmpOnce(qmp, 'quit', undefined, QUIT_WAIT_MS);
  } catch {
    /* QEMU hung or already going: SIGKILL below */
  }
  if (await waitGone(pid, QUIT_WAIT_MS, starttime)) return true;
  set('sigkill');
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  return waitGone(pid, 5000, starttime);
}

/** `kill`: no ACPI; QMP quit, then SIGKILL. */
export async function killVm(paths: Paths, name: string): Promise<StopResult> {
  return stopVm(paths, name, { force: true, timeoutSec: 0 });
}
