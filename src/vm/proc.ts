/** /proc facts about a process: alive (zombies count as gone), start time, command, RSS, CPU. */
import fs from 'node:fs';

export type ProcStat = { pid: number; state: string; ppid: number; utime: number; stime: number; starttime: number; rssPages: number };

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: rest[0]!,
    ppid: Number(rest[1]),
    utime: Number(rest[11]),
    stime: Number(rest[12]),
    starttime: Number(rest[19]),
    rssPages: Number(rest[21]),
  };
}

/** Alive and not a zombie (a QEMU reparented to a slow init stays a zombie for a while). */
export function isAlive(pid: number, starttime?: number): boolean {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return starttime === undefined || st.starttime === starttime;
}

export function procExe(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

export function readPidfile(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Wait until the process is gone (or a zombie); true if it went within the time. */
export async function waitGone(pid: number, timeoutMs: number, starttime?: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isAlive(pid, starttime)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !isAlive(pid, starttime);
}
