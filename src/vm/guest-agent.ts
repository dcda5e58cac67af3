/**
 * The QEMU guest agent of a running VM, for the CLI (`kvmctl guest …`), the API, `stop --method
 * agent` and consistent snapshots. A VM must have `agent: true` (profiles server and desktop turn
 * it on) and have been started with it: QEMU then serves the agent's virtio-serial channel on
 * `<run>/vms/NAME/qga.sock`.
 */
import fs from 'node:fs';
import { badInput } from '../errors.js';
import { type Paths } from '../host/paths.js';
import { QgaClient } from '../qga/client.js';
import * as C from '../qga/commands.js';
import { effectiveAgent } from '../definition/vm-effective.js';
import { readVm } from '../definition/store.js';
import { writeAgentAddresses } from './agent-cache.js';
import { runtimePaths } from './runtime-paths.js';
import { vmStatus } from './status.js';

/** The agent's socket of a running VM with an agent, or a clear error. */
export async function agentSocket(paths: Paths, name: string): Promise<string> {
  const vm = readVm(paths, name);
  if (!effectiveAgent(vm))
    throw badInput('AGENT_DISABLED', `VM "${name}" has no guest agent channel (agent is off)`, `set agent: true (or profile: server) in its definition, apply, and restart it; install qemu-guest-agent in the guest`);
  const s = await vmStatus(paths, name);
  if (s.state !== 'running' && s.state !== 'paused') throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running (${s.state})`, `kvmctl start ${name}`);
  const sock = runtimePaths(paths, name).qga ?? '';
  if (!fs.existsSync(sock))
    throw badInput('AGENT_NOT_CONFIGURED', `VM "${name}" runs without an agent channel (it was started before agent was turned on)`, `kvmctl restart ${name}`);
  return sock;
}

/** Connect, run `fn`, always disconnect (the channel serves one client at a time). */
export async function withAgent<T>(paths: Paths, name: string, fn: (a: QgaClient) => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
  const a = await QgaClient.connect(await agentSocket(paths, name), { timeoutMs: opts.timeoutMs });
  try {
    return await fn(a);
  } finally {
    a.close();
  }
}

/** Wait until the agent in the guest answers (it starts late in a boot). */
export async function waitForAgent(paths: Paths, name: string, timeoutMs: number): Promise<{ ms: number }> {
  const t0 = Date.now();
  let last: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      await withAgent(paths, name, C.ping, { timeoutMs: Math.min(3_000, Math.max(500, timeoutMs - (Date.now() - t0))) });
      return { ms: Date.now() - t0 };
    } catch (e) {
      last = e;
      if ((e as { code?: string }).code !== 'QGA_UNAVAILABLE' && (e as { code?: string }).code !== 'QGA_DISCONNECTED') throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw Object.assign(last instanceof Error ? last : new Error(String(last)), { message: `VM "${name}": no guest agent answered within ${Math.round(timeoutMs / 1000)} s` });
}

export type AgentInfo = { version: string; commands: number; os?: C.GuestOsInfo; hostname?: string; fsfreeze?: C.FsfreezeStatus };

export async function agentInfo(paths: Paths, name: string): Promise<AgentInfo> {
  return withAgent(paths, name, async (a) => {
    const i = await C.info(a);
    const soft = <T>(p: Promise<T>) => p.catch(() => undefined); // older agents lack some commands
    return { version: i.version, commands: i.supported_commands.filter((c) => c.enabled).length, os: await soft(C.osInfo(a)), hostname: await soft(C.hostName(a)), fsfreeze: await soft(C.fsstatus(a)) };
  });
}

/** The agent's addresses (no loopback, no link-local); the answer is kept for `list --wide` (src/vm/agent-cache.ts). */
export async function agentAddresses(paths: Paths, name: string) {
  const ifs = await withAgent(paths, name, async (a) => C.guestAddresses(await C.interfaces(a)));
  writeAgentAddresses(paths, name, { interfaces: ifs });
  return ifs;
}

export const agentExec = (paths: Paths, name: string, argv: string[], o: { input?: string; timeoutMs?: number } = {}) =>
  withAgent(paths, name, (a) => C.exec(a, argv, o));

/** Longest wait for one guest program (CLI --timeout, API timeoutSec). */
export const EXEC_MAX_TIMEOUT_MS = 24 * 3600_000;

/**
 * `kvmctl guest exec` and the API: run a program in the guest with optional stdin, hand its
 * output to `onOutput` as the agent returns it, kill it in the guest after the timeout. Bad input
 * (no program, an env entry without "=", input over 8 MiB, a bad timeout) is refused before the
 * agent is asked anything.
 */
export async function agentExecStream(paths: Paths, name: string, argv: string[], o: C.ExecStreamOptions = {}): Promise<C.ExecOutcome> {
  if (!argv.length || !argv[0]) throw badInput('BAD_INPUT', 'guest exec needs a program to run', `kvmctl guest exec ${name} -- PROGRAM [ARGS...]`);
  const badEnv = (o.env ?? []).find((e) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(e));
  if (badEnv !== undefined) throw badInput('BAD_VALUE', `environment entry "${badEnv}" is not NAME=VALUE`, 'e.g. --env LANG=C.UTF-8');
  const inputBytes = o.input === undefined ? 0 : Buffer.byteLength(o.input);
  if (inputBytes > C.EXEC_MAX_INPUT)
    throw badInput('INPUT_TOO_LARGE', `standard input for the guest program is ${inputBytes} bytes; at most ${C.EXEC_MAX_INPUT} (8 MiB) go through the agent`, 'copy large data another way (a share, scp, a disk) and pass its path');
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0 && o.timeoutMs <= EXEC_MAX_TIMEOUT_MS)) throw badInput('BAD_VALUE', `timeout must be more than 0 and at most ${EXEC_MAX_TIMEOUT_MS / 1000} s`);
  return withAgent(paths, name, (a) => C.execStream(a, argv, o));
}

export const agentFreeze = (paths: Paths, name: string) => withAgent(paths, name, (a) => C.fsfreeze(a));
export const agentThaw = (paths: Paths, name: string) => withAgent(paths, name, (a) => C.fsthaw(a));
export const agentFsStatus = (paths: Paths, name: string) => withAgent(paths, name, (a) => C.fsstatus(a));

/** Set the guest clock to the host's (after a resume or a long pause the guest's is behind). */
export async function agentSyncTime(paths: Paths, name: string, timeoutMs?: number): Promise<{ before: number; after: number; host: number }> {
  return withAgent(paths, name, async (a) => {
    const before = await C.getTime(a);
    const host = Date.now() * 1e6;
    await C.setTime(a, host);
    return { before, after: await C.getTime(a), host };
  }, { timeoutMs });
}

export async function agentAddSshKeys(paths: Paths, name: string, user: string, keys: string[], reset = false): Promise<void> {
  const bad = keys.filter((k) => !/^(ssh|ecdsa|sk)-[a-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/.test(k.trim()));
  if (bad.length) throw badInput('BAD_SSH_KEY', `not an OpenSSH public key: ${bad[0]!.slice(0, 40)}…`, 'pass the contents of a .pub file (e.g. ~/.ssh/id_ed25519.pub)');
  if (!/^[a-z_][a-z0-9_-]*\$?$/.test(user)) throw badInput('BAD_VALUE', `"${user}" is not a user name`);
  await withAgent(paths, name, (a) => C.addSshKeys(a, user, keys.map((k) => k.trim()), reset));
}

export const agentShutdown = (paths: Paths, name: string, mode: 'powerdown' | 'reboot' | 'halt' = 'powerdown') => withAgent(paths, name, (a) => C.shutdown(a, mode));

export type Freeze = { frozen: boolean; filesystems?: number; note?: string; thaw: () => Promise<void> };

/**
 * Freeze the guest's filesystems for a consistent snapshot, when the VM has an agent that answers;
 * else `frozen: false` with a note saying why (the snapshot is then crash-consistent). Callers must
 * call thaw() in a finally. Takes the socket dir directly: the caller holds the VM lock.
 */
export async function freezeIfAgent(vm: { agent?: boolean; profile?: string }, runDir: string): Promise<Freeze> {
  const none = async () => undefined;
  if (!effectiveAgent(vm as Parameters<typeof effectiveAgent>[0])) return { frozen: false, note: 'no guest agent (agent is off): crash-consistent', thaw: none };
  let a: QgaClient;
  try {
    a = await QgaClient.connect(`${runDir}/qga.sock`, { timeoutMs: 2_000 });
  } catch (e) {
    return { frozen: false, note: `guest agent did not answer (${(e as Error).message}): crash-consistent`, thaw: none };
  }
  try {
    const n = await C.fsfreeze(a, 30_000);
    return {
      frozen: true,
      filesystems: n,
      thaw: async () => {
        try {
          await C.fsthaw(a);
        } finally {
          a.close();
        }
      },
    };
  } catch (e) {
    // A freeze that failed half way thaws what it froze; thaw anyway to be sure.
    await C.fsthaw(a).catch(() => undefined);
    a.close();
    return { frozen: false, note: `fsfreeze failed (${(e as Error).message}): crash-consistent`, thaw: none };
  }
}
