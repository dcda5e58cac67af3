/** Control of a running VM over QMP: pause, resume, reset, monitor commands, raw QMP. */
import { badInput } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import { qmpOnce } from './qmp-once.js';
import { vmStatus } from './status.js';

/** The QMP socket of a running (or paused) VM; VM_NOT_RUNNING (exit 2) otherwise. */
export async function requireRunning(paths: Paths, name: string): Promise<string> {
  readVm(paths, name);
  const s = await vmStatus(paths, name);
  if (s.state !== 'running' && s.state !== 'paused') {
    throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running (${s.state})`, `kvmctl start ${name}`);
  }
  return vmRuntimeFiles(paths, name).qmp;
}

export async function pauseVm(paths: Paths, name: string): Promise<void> {
  await qmpOnce(await requireRunning(paths, name), 'stop');
}
/**
 * Resume; with a guest agent, also set the guest clock to the host's (paused guests fall behind
 * by the pause, as `virsh domtime --sync` fixes). Best effort: the result says whether it did.
 */
export async function resumeVm(paths: Paths, name: string): Promise<{ clockSynced: boolean; note?: string }> {
  await qmpOnce(await requireRunning(paths, name), 'cont');
  return syncClockIfAgent(paths, name);
}

/**
 * Set a running guest's clock to the host's through its agent, if its definition has one (after
 * a resume, above; the cluster's migration destination calls agentSyncTime itself). Never throws:
 * `clockSynced: false` with a note says why not.
 */
export async function syncClockIfAgent(paths: Paths, name: string, timeoutMs = 5_000): Promise<{ clockSynced: boolean; note?: string }> {
  const { effectiveAgent } = await import('../definition/vm-effective.js');
  try {
    if (!effectiveAgent(readVm(paths, name))) return { clockSynced: false };
    await (await import('./guest-agent.js')).agentSyncTime(paths, name, timeoutMs);
    return { clockSynced: true };
  } catch (e) {
    return { clockSynced: false, note: `guest clock not set: ${(e as Error).message}` };
  }
}
export async function resetVm(paths: Paths, name: string): Promise<void> {
  await qmpOnce(await requireRunning(paths, name), 'system_reset');
}

/** Any human-monitor (HMP) command, through QMP's human-monitor-command. */
export async function monitorCommand(paths: Paths, name: string, cmd: string): Promise<string> {
  return String(await qmpOnce(await requireRunning(paths, name), 'human-monitor-command', { 'command-line': cmd }, 30_000));
}

/** A raw QMP command given as JSON text: {"execute": "...", "arguments": {...}}. */
export async function qmpCommand(paths: Paths, name: string, json: string): Promise<unknown> {
  let msg: { execute?: unknown; arguments?: unknown };
  try {
    msg = JSON.parse(json) as typeof msg;
  } catch (e) {
    throw badInput('BAD_QMP', `not JSON: ${(e as Error).message}`, `e.g. kvmctl qmp ${name} '{"execute":"query-status"}'`);
  }
  if (typeof msg.execute !== 'string') throw badInput('BAD_QMP', 'a QMP command needs "execute": "<command>"', `e.g. kvmctl qmp ${name} '{"execute":"query-status"}'`);
  if (msg.arguments !== undefined && (typeof msg.arguments !== 'object' || msg.arguments === null)) throw badInput('BAD_QMP', '"arguments" must be an object');
  return qmpOnce(await requireRunning(paths, name), msg.execute, msg.arguments as Record<string, unknown> | undefined, 30_000);
}
