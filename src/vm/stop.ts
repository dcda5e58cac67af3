/**
 * `stop`: ACPI power-down over QMP (or, with method 'agent', guest-shutdown through the guest
 * agent, falling back to ACPI when no agent answers), wait up to the timeout, then QMP `quit`,
 * then SIGKILL; it reports which one ended the VM. `kill` skips to quit/SIGKILL. Always ends.
 */
import { badInput } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
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
/** How long `--method agent` tries guest-shutdown before it presses the ACPI button instead. */
const AGENT_GRACE_MS = 20_000;

/**
 * guest-shutdown through the agent, again every few seconds: a guest still booting may refuse
 * it (systemd's shutdown needs logind and D-Bus up). Talks to the socket directly: the VM
 * already shows as stopping here, so the service layer's running check would refuse.
 */
async function stopByAgent(vm: ReturnType<typeof readVm>, dir: string, pid: number, starttime: number | undefined, until: number): Promise<{ gone: boolean; why?: string }> {
  const { effectiveAgent } = await import('../definition/vm-effective.js');
  if (!effectiveAgent(vm)) return { gone: false, why: 'guest agent: agent is off in the definition' };
  const { QgaClient } = await import('../qga/client.js');
  const { shutdown } = await import('../qga/commands.js');
  let last = 'guest-shutdown did not end the guest';
  while (Date.now() < until) {
    try {
      const a = await QgaClient.connect(`${dir}/qga.sock`);
      try {
        await shutdown(a, 'powerdown');
      } finally {
        a.close();
      }
    } catch (e) {
      last = `guest agent: ${e instanceof Error ? e.message : String(e)}`;
      if ((e as { code?: string }).code === 'QGA_UNAVAILABLE') return { gone: !isAlive(pid, starttime), why: last };
    }
    if (await waitGone(pid, Math.min(REPRESS_MS * 2, Math.max(0, until - Date.now())), starttime)) return { gone: true };
  }
  return { gone: false, why: `${last} in ${Math.round(AGENT_GRACE_MS / 1000)} s` };
}

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
      const r = await stopByAgent(vm, f.dir, pid, starttime, Math.min(end, Date.now() + AGENT_GRACE_MS));
      gone = r.gone;
      if (gone) how = 'agent';
      else note = `${r.why}; used ACPI`;
    }
    if (!opts.force && !gone) {
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
