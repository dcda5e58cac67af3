/**
 * Typed guest-agent commands (qemu-ga's QAPI schema, qga/qapi-schema.json) on a QgaClient.
 * Only what kvmctl uses; `agent.execute()` reaches the rest.
 */
import { badInput, KvmError } from '../errors.js';
import type { QgaClient } from './client.js';

export type GuestInfo = { version: string; supported_commands: { name: string; enabled: boolean }[] };
export type GuestOsInfo = { id?: string; name?: string; 'pretty-name'?: string; version?: string; 'version-id'?: string; 'kernel-release'?: string; machine?: string };
export type GuestIpAddress = { 'ip-address': string; 'ip-address-type': 'ipv4' | 'ipv6'; prefix: number };
export type GuestInterface = { name: string; 'hardware-address'?: string; 'ip-addresses'?: GuestIpAddress[] };
export type FsfreezeStatus = 'thawed' | 'frozen';
export type ExecResult = { exitCode?: number; signal?: number; stdout: string; stderr: string; truncated: boolean };

export const ping = (a: QgaClient) => a.execute<Record<string, never>>('guest-ping').then(() => true);
export const info = (a: QgaClient) => a.execute<GuestInfo>('guest-info');
export const osInfo = (a: QgaClient) => a.execute<GuestOsInfo>('guest-get-osinfo');
export const hostName = (a: QgaClient) => a.execute<{ 'host-name': string }>('guest-get-host-name').then((r) => r['host-name']);
export const interfaces = (a: QgaClient) => a.execute<GuestInterface[]>('guest-network-get-interfaces');
/** Freezes every freezable filesystem; returns how many. */
export const fsfreeze = (a: QgaClient, timeoutMs?: number) => a.execute<number>('guest-fsfreeze-freeze', undefined, { timeoutMs });
export const fsthaw = (a: QgaClient) => a.execute<number>('guest-fsfreeze-thaw');
export const fsstatus = (a: QgaClient) => a.execute<FsfreezeStatus>('guest-fsfreeze-status');
/** The guest's clock, ns since the epoch. */
export const getTime = (a: QgaClient) => a.execute<number>('guest-get-time');
/** Set the guest clock to `ns`, or (without) from its RTC, which QEMU keeps at the host's time. */
export const setTime = (a: QgaClient, ns?: number) => a.execute('guest-set-time', ns === undefined ? undefined : { time: ns }).then(() => undefined);
export const addSshKeys = (a: QgaClient, username: string, keys: string[], reset = false) =>
  a.execute('guest-ssh-add-authorized-keys', { username, keys, reset }).then(() => undefined);
/**
 * The agent answers guest-shutdown only when it fails (the shutdown command exited non-zero, e.g.
 * in a guest still booting); on success the guest goes down without a word. So: wait briefly for
 * an error, and take silence (or the channel closing) as success.
 */
export async function shutdown(a: QgaClient, mode: 'powerdown' | 'reboot' | 'halt' = 'powerdown'): Promise<void> {
  try {
    await a.execute('guest-shutdown', { mode }, { timeoutMs: 2_000 });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'QGA_TIMEOUT' && code !== 'QGA_DISCONNECTED') throw e;
  }
}

/** Addresses of the guest's interfaces other than loopback. */
export function guestAddresses(ifs: GuestInterface[]): { name: string; mac?: string; addresses: string[] }[] {
  return ifs
    .filter((i) => i.name !== 'lo')
    .map((i) => ({ name: i.name, mac: i['hardware-address'], addresses: (i['ip-addresses'] ?? []).filter((x) => !/^fe80:/i.test(x['ip-address'])).map((x) => `${x['ip-address']}/${x.prefix}`) }));
}

/** What guest-exec-status answers (qga/qapi-schema.json GuestExecStatus). */
type ExecStatus = { exited: boolean; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string; 'out-truncated'?: boolean; 'err-truncated'?: boolean };

/** The most kvmctl sends to a guest program's stdin: qemu-ga takes it as one base64 JSON string (its parser stops at 64 MiB a token) and holds it in memory. */
export const EXEC_MAX_INPUT = 8 * 1024 * 1024;
/** qemu-ga keeps at most this much of each of stdout and stderr (GUEST_EXEC_MAX_OUTPUT) and drops the rest, saying so (`truncated`). */
export const EXEC_MAX_OUTPUT = 16 * 1024 * 1024;

export type ExecOutcome = {
  /** The guest's pid of the program. */
  pid: number;
  exitCode?: number;
  signal?: number;
  /** qemu-ga dropped output beyond EXEC_MAX_OUTPUT of a stream. */
  truncated: boolean;
  /** The timeout (or the abort signal) ended the wait; `killed`: kvmctl then killed the program in the guest (SIGKILL). */
  timedOut: boolean;
  aborted: boolean;
  killed: boolean;
  ms: number;
  stdoutBytes: number;
  stderrBytes: number;
};
export type ExecStreamOptions = {
  input?: Buffer | string;
  env?: string[];
  /** Wait this long for the program (default 60 s), then kill it in the guest. */
  timeoutMs?: number;
  /** Called with output as the agent hands it over (qemu-ga ≤ 10.x: all of it at the exit). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Aborting kills the program in the guest, like a timeout. */
  signal?: AbortSignal;
  /** Polling interval: starts at `first` ms, doubles up to `max` (default 25 → 500). */
  poll?: { first: number; max: number };
};

/** The ms the guest-exec command itself may take: qemu-ga answers once it has read (and decoded) the whole input. */
export const execCommandTimeout = (inputBytes: number) => 10_000 + Math.ceil(inputBytes / 1048576) * 2_000;

/** exit code of a guest program as a process exit status: its code, 128 + signal, or 1 when neither is known. */
export const exitStatusOf = (o: { exitCode?: number; signal?: number }) => o.exitCode ?? (o.signal ? 128 + o.signal : 1);

/**
 * Run a program in the guest (no shell unless you run one) and pass its output to `onOutput` as
 * it arrives. qemu-ga answers guest-exec-status with output only once the program has exited and
 * both pipes closed (qga/commands.c: the buffers are sent and freed with `exited: true`), so with
 * the agents of today the output comes in one piece at the end; an agent that hands over partial
 * output (`exited: false` with data) is streamed as it comes. Polled at 25 ms, doubling to 500 ms.
 * After `timeoutMs` (or an abort) the program is killed in the guest (guest-exec `kill -STOP PID`, then
 * `pkill -KILL -P PID` for its children, then `kill -KILL PID`, found through the agent's PATH: procps) and what it wrote
 * until then is still collected (for up to 5 s: grandchildren that keep its pipes open make the agent
 * wait for them).
 */
export async function execStream(a: QgaClient, argv: string[], opts: ExecStreamOptions = {}): Promise<ExecOutcome> {
  const [path, ...arg] = argv;
  if (!path) throw badInput('BAD_INPUT', 'guest exec needs a program to run', 'kvmctl guest exec NAME -- PROGRAM [ARGS...]');
  const input = opts.input === undefined ? undefined : Buffer.isBuffer(opts.input) ? opts.input : Buffer.from(opts.input);
  if (input && input.length > EXEC_MAX_INPUT)
    throw badInput('INPUT_TOO_LARGE', `standard input for the guest program is ${input.length} bytes; at most ${EXEC_MAX_INPUT} (8 MiB) go through the agent`, 'copy large data another way (a share, scp, a disk) and pass its path');
  const args: Record<string, unknown> = { path, arg, 'capture-output': true };
  if (opts.env) args.env = opts.env;
  if (input) args['input-data'] = input.toString('base64');
  const t0 = Date.now();
  const { pid } = await a.execute<{ pid: number }>('guest-exec', args, { timeoutMs: execCommandTimeout(input?.length ?? 0) });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const end = t0 + timeoutMs;
  const poll = opts.poll ?? { first: 25, max: 500 };
  const o: ExecOutcome = { pid, truncated: false, timedOut: false, aborted: false, killed: false, ms: 0, stdoutBytes: 0, stderrBytes: 0 };
  const take = (s: ExecStatus) => {
    for (const [k, stream] of [['out-data', 'stdout'], ['err-data', 'stderr']] as const) {
      const d = s[k];
      if (!d) continue;
      const b = Buffer.from(d, 'base64');
      if (stream === 'stdout') o.stdoutBytes += b.length;
      else o.stderrBytes += b.length;
      if (b.length) opts.onOutput?.(stream, b);
    }
    if (s['out-truncated'] || s['err-truncated']) o.truncated = true;
  };
  let wait = poll.first;
  for (;;) {
    const s = await a.execute<ExecStatus>('guest-exec-status', { pid });
    take(s);
    if (s.exited) {
      o.exitCode = s.exitcode;
      o.signal = s.signal;
      o.ms = Date.now() - t0;
      return o;
    }
    if (opts.signal?.aborted || Date.now() >= end) break;
    await sleep(Math.min(wait, Math.max(1, end - Date.now())), opts.signal);
    wait = Math.min(wait * 2, poll.max);
  }
  // Out of time (or aborted): kill it in the guest, then collect what it wrote and free the agent's record of it.
  o.timedOut = !opts.signal?.aborted;
  o.aborted = !!opts.signal?.aborted;
  // Stop it (so it neither goes on nor starts more), kill its children (they would hold its stdout and
  // stderr open, and the agent waits for those to close), then it. Each killer is waited for (up to
  // 3 s): a kill that lands before pkill has scanned /proc would orphan the children.
  const killer = async (path: string, arg: string[]): Promise<number | undefined> => {
    const k = await a.execute<{ pid: number }>('guest-exec', { path, arg });
    for (const until = Date.now() + 3_000; Date.now() < until; await sleep(20)) {
      const s = await a.execute<ExecStatus>('guest-exec-status', { pid: k.pid }).catch(() => undefined);
      if (!s) return undefined;
      if (s.exited) return s.exitcode; // and the agent's record of it is freed
    }
    return undefined;
  };
  try {
    await killer('kill', ['-STOP', String(pid)]);
    await killer('pkill', ['-KILL', '-P', String(pid)]).catch(() => undefined);
    // kill exits 1 when the program has ended by itself meanwhile: then nothing keeps running either.
    const code = await killer('kill', ['-KILL', String(pid)]);
    o.killed = code === 0 || code === 1;
  } catch {
    /* no kill(1) in the guest, or the agent stopped answering: it keeps running there */
  }
  if (o.killed) {
    const stop = Date.now() + 5_000;
    while (Date.now() < stop) {
      const s = await a.execute<ExecStatus>('guest-exec-status', { pid }).catch(() => undefined);
      if (!s) break;
      take(s);
      if (s.exited) {
        o.exitCode = s.exitcode;
        o.signal = s.signal;
        break;
      }
      await sleep(50);
    }
  }
  o.ms = Date.now() - t0;
  return o;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Run a program in the guest, wait for it, return its output as text (execStream, collected).
 * A program still running after `timeoutMs` is killed in the guest and QGA_TIMEOUT thrown.
 */
export async function exec(a: QgaClient, argv: string[], opts: { input?: string | Buffer; env?: string[]; timeoutMs?: number } = {}): Promise<ExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const o = await execStream(a, argv, { ...opts, onOutput: (s, b) => (s === 'stdout' ? out : err).push(b) });
  if (o.timedOut) {
    const ms = opts.timeoutMs ?? 60_000;
    throw new KvmError('QGA_TIMEOUT', `guest program ${argv[0]} (pid ${o.pid} in the guest) still ran after ${ms} ms${o.killed ? ': killed' : ''}`, {
      hint: o.killed ? 'give a longer --timeout' : 'it keeps running in the guest (kill(1) failed there); give a longer --timeout',
    });
  }
  return { exitCode: o.exitCode, signal: o.signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), truncated: o.truncated };
}
