/**
 * Runtime state of a VM, derived every time from files and /proc — never from memory — so that it
 * survives kvmctl restarts: the pidfile (QEMU removes it, and its QMP socket, when it exits
 * cleanly; after a SIGKILL or an abort they stay), state.json written at start, and a QMP
 * `query-status`. last-exit.json remembers how the VM last ended.
 */
import fs from 'node:fs';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { isAlive, readPidfile } from './proc.js';

export type VmState = 'running' | 'paused' | 'stopped' | 'crashed' | 'starting' | 'stopping';

export type RunState = {
  name: string;
  pid: number;
  /** /proc/PID/stat starttime: guards against PID reuse. */
  starttime: number;
  startedAt: string;
  accel: 'kvm' | 'tcg';
  qemuVersion?: string;
  netns?: string;
  warnings: string[];
  /** Set while a stop is in progress: the stopping kvmctl's PID. */
  stoppingBy?: number;
};

export type LastExit = { at: string; how: 'agent' | 'acpi' | 'quit' | 'sigkill' | 'guest' | 'crashed' | 'start-failed'; reason?: string };

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function writeJson(file: string, data: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export type Observed = {
  /** What the files and /proc say, before asking QMP. */
  phase: 'alive' | 'exited-clean' | 'died' | 'none';
  pid?: number;
  run?: RunState;
  lastExit?: LastExit;
};

/** Read the files; no QMP, no cleanup. */
export function observe(paths: Paths, name: string): Observed {
  const f = vmRuntimeFiles(paths, name);
  const run = readJson<RunState>(f.state);
  const lastExit = readJson<LastExit>(`${f.dir}/last-exit.json`);
  const pidFromFile = readPidfile(f.pidfile);
  const pid = pidFromFile ?? run?.pid;
  if (pid !== undefined && isAlive(pid, run && run.pid === pid ? run.starttime : undefined)) return { phase: 'alive', pid, run, lastExit };
  if (pidFromFile !== undefined) return { phase: 'died', pid, run, lastExit }; // pidfile left behind: no clean exit
  if (run) return { phase: 'exited-clean', pid, run, lastExit };
  return { phase: 'none', lastExit };
}

/** The last lines of QEMU's own log: the reason a QEMU died, when it said one. */
export function qemuLogTail(paths: Paths, name: string, lines = 5): string {
  try {
    const text = fs.readFileSync(vmRuntimeFiles(paths, name).qemuLog, 'utf8');
    return text.trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
