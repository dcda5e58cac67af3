/**
 * The ONE place kvmctl starts other programs. Never a shell: every program gets an argv array.
 * Failures keep the command line and its stderr so the user sees what the tool said.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { KvmError } from '../errors.js';
import { mark } from '../trace.js';

export type RunResult = { stdout: string; stderr: string; exitCode: number };

export type RunOptions = {
  /** Text written to the program's standard input. */
  input?: string;
  /** Kill the program after this many milliseconds. */
  timeoutMs?: number;
  /** Return the result instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** Error code used when the program fails (default TOOL_FAILED). */
  errorCode?: string;
  hint?: string;
  /** Abort the program (SIGTERM, SIGKILL 2 s later); the error then has code CANCELED. */
  signal?: AbortSignal;
  /** Called with each chunk the program writes to stdout while it runs (progress output). */
  onStdout?: (chunk: string) => void;
};

export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run a program to completion and capture its output. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new KvmError('INTERNAL', 'run() called with an empty argv');
  mark(`run ${file} ${args[0] ?? ''}`);
  let r;
  try {
    // Loaded on first use: execa costs tens of ms to import, and many commands never run a tool.
    const { execa } = await import('execa');
    const sub = execa(file, args, {
      input: opts.input,
      timeout: opts.timeoutMs,
      reject: false,
      env: opts.env,
      cwd: opts.cwd,
      stripFinalNewline: true,
      shell: false,
      ...(opts.signal ? { cancelSignal: opts.signal, forceKillAfterDelay: 2000 } : {}),
    });
    if (opts.onStdout) sub.stdout?.on('data', (b: Buffer) => opts.onStdout!(b.toString()));
    r = await sub;
  } catch (e) {
    throw new KvmError('TOOL_FAILED', `${formatArgv(argv)}: ${(e as Error).message}`, { cause: e });
  }
  const result = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
  if (r.failed && !opts.allowFailure) {
    if (r.isCanceled) throw new KvmError('CANCELED', `${formatArgv(argv)}: canceled`, { details: { argv: [...argv] } });
    const why = r.timedOut
      ? `timed out after ${opts.timeoutMs} ms`
      : r.code === 'ENOENT'
        ? 'program not found'
        : `exit ${r.exitCode ?? r.signal}`;
    const stderr = result.stderr.trim();
    throw new KvmError(opts.errorCode ?? 'TOOL_FAILED', `${formatArgv(argv)}: ${why}${stderr ? ` (${stderr})` : ''}`, {
      hint: opts.hint ?? (r.code === 'ENOENT' ? `install ${file} (see README: setup installs the Debian packages)` : undefined),
      details: { argv: [...argv], exitCode: result.exitCode, stderr },
    });
  }
  return result;
}

export type DetachedOptions = {
  /** stdio array: [stdin, stdout, stderr, extra fds...] — index 3+ are passed to the child as fds 3+. */
  stdio: StdioOptions;
  env?: Record<string, string>;
  cwd?: string;
};

/**
 * Start a long-lived program in its own session (setsid), detached from kvmctl, so that killing or
 * restarting kvmctl never touches it. Extra file descriptors (e.g. an open /dev/tapN) are handed
 * over through the stdio array. Returns the child's PID once it is spawned.
 */
export function spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<{ pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const [file, ...args] = argv;
  if (!file) throw new KvmError('INTERNAL', 'spawnDetached() called with an empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { detached: true, stdio: opts.stdio, env: opts.env, cwd: opts.cwd, shell: false });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
      child.once('exit', (code, signal) => res({ code, signal }));
    });
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        new KvmError('SPAWN_FAILED', `${formatArgv(argv)}: ${e.code === 'ENOENT' ? 'program not found' : e.message}`, {
          hint: e.code === 'ENOENT' ? `install ${file}` : undefined,
        }),
      );
    });
    child.once('spawn', () => {
      child.unref();
      resolve({ pid: child.pid!, exited });
    });
  });
}

/** Start an interactive program attached to this terminal and wait for it (e.g. display curses). */
export function runInteractive(argv: readonly string[], stdio: StdioOptions = 'inherit'): Promise<number> {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, { stdio, shell: false });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}
