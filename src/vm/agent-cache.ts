/**
 * The last answer of a VM's guest agent to guest-network-get-interfaces (or that it did not
 * answer), kept in `<run>/vms/NAME/agent-addresses.json` for the QEMU run it came from (pid +
 * /proc starttime from state.json: a restarted VM never shows the previous run's addresses).
 * Written by every address query (`guest ip`, `show`, `list --wide`, the API); read by `list
 * --wide` and the API's VM detail, so they ask the agent at most once per `maxAgeMs` and show the
 * last answer while the channel is busy (one client at a time: a long `guest exec` holds it).
 * A leaf module: fs only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';

export type AgentInterface = { name: string; mac?: string; addresses: string[] };
export type AgentAddressEntry = {
  /** ms since the epoch of the answer (or of the failed attempt). */
  at: number;
  pid: number;
  starttime: number;
  interfaces?: AgentInterface[];
  /** Why the last attempt got no answer. */
  why?: string;
};

const file = (paths: Paths, name: string) => path.join(vmRuntimeFiles(paths, name).dir, 'agent-addresses.json');

function currentRun(paths: Paths, name: string): { pid: number; starttime: number } | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(vmRuntimeFiles(paths, name).state, 'utf8')) as { pid?: number; starttime?: number };
    return typeof r.pid === 'number' && typeof r.starttime === 'number' ? { pid: r.pid, starttime: r.starttime } : undefined;
  } catch {
    return undefined;
  }
}

/** The entry of the VM's current run, if any (a previous run's is ignored). */
export function readAgentAddresses(paths: Paths, name: string): AgentAddressEntry | undefined {
  const run = currentRun(paths, name);
  if (!run) return undefined;
  try {
    const e = JSON.parse(fs.readFileSync(file(paths, name), 'utf8')) as AgentAddressEntry;
    return e.pid === run.pid && e.starttime === run.starttime && typeof e.at === 'number' ? e : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Record an answer (interfaces) or a failed attempt (why). A failure keeps the interfaces of the
 * last answer of the same run, so a busy channel still shows them. Best effort: never throws.
 */
export function writeAgentAddresses(paths: Paths, name: string, r: { interfaces?: AgentInterface[]; why?: string }, now = Date.now()): void {
  const run = currentRun(paths, name);
  if (!run) return;
  const prev = r.interfaces ? undefined : readAgentAddresses(paths, name);
  const e: AgentAddressEntry = { at: now, ...run, interfaces: r.interfaces ?? prev?.interfaces, ...(r.why ? { why: r.why } : {}) };
  const f = file(paths, name);
  const tmp = `${f}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(e)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, f);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}
