/**
 * The task registry of `kvmctl serve`: every long (mutating) operation started through the API
 * runs as a task with an id, kind, target, owner, start/end, progress, log lines and its result
 * or error. Tasks are announced on the event bus as they start, progress, log and end, and kept
 * after they end: each is a JSON file `<data>/tasks/ID.json` (written when it starts and ends,
 * and at most once a second while it runs, so `kvmctl tasks` sees live progress from another
 * process), the newest `keep` (500) of them; older files are removed.
 *
 * Service code reports through src/tasks/current.ts (AsyncLocalStorage), so no function
 * signature below the API changes for it. A task is cancellable once its operation asked for the
 * task's abort signal; cancel() aborts it, and the operation's own cleanup runs (a disk create
 * removes its partial file).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { currentTask, runAsProcessTask, taskContext, type TaskHooks } from './current.js';

export type TaskState = 'running' | 'ok' | 'failed' | 'cancelled';
export type TaskLine = { at: string; line: string };
export type TaskRecord = {
  id: string;
  kind: string;
  target?: string;
  owner: string;
  /** The process that runs it (the server, or a kvmctl CLI command). */
  pid?: number;
  state: TaskState;
  startedAt: string;
  endedAt?: string;
  progress: number | null;
  cancellable: boolean;
  log: TaskLine[];
  result?: unknown;
  error?: { code: string; message: string; hint?: string };
};
export type TaskSummary = Omit<TaskRecord, 'log' | 'result'> & { logLines: number };
export type TaskAction = 'started' | 'progress' | 'log' | 'ended';
export type TaskPublish = (action: TaskAction, task: TaskSummary, line?: TaskLine) => void;

const MAX_LINES = 2000;
const LINE_CHARS = 2000;

/** A task another process runs (a kvmctl CLI command): it is cancelled there, not through the server. */
export function elsewhere(t: TaskRecord): KvmError {
  return new KvmError('TASK_NOT_CANCELLABLE', `task ${t.id} (${t.kind}) runs in another process (PID ${t.pid}, owner ${t.owner})`, { hint: `stop it where it runs (Ctrl-C in its terminal, or kill -INT ${t.pid}): disk operations then remove their partial file` });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const tasksDir = (paths: Paths): string => path.join(paths.data, 'tasks');

export function summarize(t: TaskRecord): TaskSummary {
  const { log, result: _r, ...rest } = t;
  return { ...rest, logLines: log.length };
}

/** Every task file, newest first (a corrupt file is skipped). Used by the CLI too. */
export function readTasks(paths: Paths): TaskRecord[] {
  const dir = tasksDir(paths);
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: TaskRecord[] = [];
  for (const f of files) {
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as TaskRecord);
    } catch {
      /* half-written or foreign: skip */
    }
  }
  return out.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Mark tasks whose process is gone while they ran as failed (TASK_INTERRUPTED). */
export function recoverInterrupted(paths: Paths): void {
  for (const t of readTasks(paths)) {
    if (t.state !== 'running' || (t.pid !== undefined && t.pid !== process.pid && alive(t.pid))) continue;
    t.state = 'failed';
    t.endedAt = new Date().toISOString();
    t.error = { code: 'TASK_INTERRUPTED', message: 'the process that ran this task (kvmctl serve or a CLI command) ended before it did', hint: 'check the target and run the operation again if needed' };
    writeTask(paths, t);
  }
}

function writeTask(paths: Paths, t: TaskRecord): void {
  fs.mkdirSync(tasksDir(paths), { recursive: true, mode: 0o700 });
  const file = path.join(tasksDir(paths), `${t.id}.json`);
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(t), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readTask(paths: Paths, id: string): TaskRecord {
  if (!/^[a-z0-9-]{1,40}$/.test(id)) throw new KvmError('TASK_NOT_FOUND', `no task "${id}"`, { hint: 'kvmctl tasks list shows the ids', exit: 2 });
  try {
    return JSON.parse(fs.readFileSync(path.join(tasksDir(paths), `${id}.json`), 'utf8')) as TaskRecord;
  } catch {
    throw new KvmError('TASK_NOT_FOUND', `no task "${id}"`, { hint: 'kvmctl tasks list shows the ids (only the newest 500 are kept)', exit: 2 });
  }
}

type Live = { rec: TaskRecord; abort: AbortController; dirty: boolean; lastWrite: number; lastProgressEvent: number; notBefore: number };

export class TaskRegistry {
  private readonly live = new Map<string, Live>();
  private seq = 0;
  private flushTimer?: ReturnType<typeof setInterval>;

  constructor(
    private readonly paths: Paths,
    private readonly publish: TaskPublish = () => undefined,
    private readonly keep = 500,
    recover = true,
  ) {
    // Tasks a previous server or CLI command left running were cut off when it stopped. A CLI task
    // (one per command) skips this scan: reading up to `keep` files cost ~10 ms of every `kvmctl
    // start` in a full history (issue #19); serve and `kvmctl tasks` do it instead.
    if (recover) recoverInterrupted(paths);
    this.prune();
  }

  private newId(): string {
    this.seq = (this.seq + 1) % 1_679_616;
    return `${Date.now().toString(36)}-${this.seq.toString(36).padStart(4, '0')}`;
  }

  private write(t: TaskRecord): void {
    writeTask(this.paths, t);
  }

  private prune(): void {
    const dir = tasksDir(this.paths);
    if (!fs.existsSync(dir)) return;
    const ids = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .sort();
    for (const id of ids.slice(0, Math.max(0, ids.length - this.keep))) {
      if (!this.live.has(id)) fs.rmSync(path.join(dir, `${id}.json`), { force: true });
    }
  }

  private flushSoon(l: Live): void {
    l.dirty = true;
    if (Date.now() - l.lastWrite >= 1000) this.flush(l);
    else this.flushTimer ??= setInterval(() => this.flushAll(), 500);
  }

  private flush(l: Live, final = false): void {
    if (!l.dirty || (!final && Date.now() < l.notBefore)) return;
    l.dirty = false;
    l.lastWrite = Date.now();
    try {
      this.write(l.rec);
    } catch {
      /* the data dir went away: the task still runs; its end is retried */
    }
  }

  private flushAll(): void {
    for (const l of this.live.values()) this.flush(l);
    if (this.live.size === 0 && this.flushTimer) {
      clearInterval(this.flushTimer);
      this.flushTimer = undefined;
    }
  }

  /** Run `fn` as a task; resolves/rejects with fn's result (the task keeps it too). */
  /**
   * `quietMs`: write nothing for that long (a CLI command refused at once leaves no file);
   * `discard(e)`: a failure that is no task at all (bad input, exit 2): nothing is kept.
   */
  async run<T>(meta: { kind: string; target?: string; owner: string; quietMs?: number; discard?: (e: unknown) => boolean; /** the process's only task (a CLI command): no AsyncLocalStorage (src/tasks/current.ts) */ processWide?: boolean }, fn: () => Promise<T>): Promise<T> {
    const rec: TaskRecord = { id: this.newId(), kind: meta.kind, target: meta.target, owner: meta.owner, pid: process.pid, state: 'running', startedAt: new Date().toISOString(), progress: null, cancellable: false, log: [] };
    const l: Live = { rec, abort: new AbortController(), dirty: true, lastWrite: 0, lastProgressEvent: 0, notBefore: Date.now() + (meta.quietMs ?? 0) };
    this.live.set(rec.id, l);
    if (meta.quietMs) this.flushTimer ??= setInterval(() => this.flushAll(), 500);
    this.flush(l);
    let discard = false;
    this.publish('started', summarize(rec));
    const hooks: TaskHooks = {
      id: rec.id,
      progress: (p) => {
        if (rec.state !== 'running' || !Number.isFinite(p)) return;
        const v = Math.max(0, Math.min(100, Math.round(p * 10) / 10));
        if (rec.progress !== null && v <= rec.progress) return;
        rec.progress = v;
        this.flushSoon(l);
        // Events at most 5 a second (and always 100): the bus ring holds 1000 events for every client.
        const now = Date.now();
        if (v === 100 || now - l.lastProgressEvent >= 200) {
          l.lastProgressEvent = now;
          this.publish('progress', summarize(rec));
        }
      },
      log: (line) => this.addLine(l, line),
      signal: () => {
        if (!rec.cancellable) {
          rec.cancellable = true;
          this.flushSoon(l);
          this.publish('progress', summarize(rec)); // the UI shows its Cancel button from now on
        }
        return l.abort.signal;
      },
    };
    try {
      const out = meta.processWide ? await runAsProcessTask(hooks, fn) : await taskContext.run(hooks, fn);
      rec.state = 'ok';
      rec.result = out;
      if (rec.progress !== null) rec.progress = 100;
      return out;
    } catch (e) {
      const k = e instanceof KvmError ? e : undefined;
      discard = !!meta.discard?.(e);
      rec.state = l.abort.signal.aborted ? 'cancelled' : 'failed';
      rec.error = { code: k?.code ?? 'ERROR', message: (e as Error).message ?? String(e), hint: k?.hint };
      this.addLine(l, `error: ${rec.error.code}: ${rec.error.message}`);
      throw e;
    } finally {
      rec.endedAt = new Date().toISOString();
      rec.cancellable = false;
      l.dirty = true;
      if (discard) fs.rmSync(path.join(tasksDir(this.paths), `${rec.id}.json`), { force: true });
      else this.flush(l, true);
      this.live.delete(rec.id);
      this.publish('ended', summarize(rec));
      this.prune();
    }
  }

  private addLine(l: Live, text: string): void {
    const rec = l.rec;
    if (rec.endedAt) return; // a callback that outlived its task
    for (const raw of String(text).split('\n')) {
      if (rec.log.length >= MAX_LINES) return;
      const line = { at: new Date().toISOString(), line: raw.length > LINE_CHARS ? `${raw.slice(0, LINE_CHARS)}…` : raw };
      rec.log.push(line);
      this.publish('log', summarize(rec), line);
    }
    this.flushSoon(l);
  }

  /** Log a line into a running task from outside its call chain (the API wrapper's own lines). */
  log(id: string, line: string): void {
    const l = this.live.get(id);
    if (l) this.addLine(l, line);
  }

  /** The id of the task the caller runs in, if any. */
  current(): string | undefined {
    return currentTask();
  }

  get(id: string): TaskRecord {
    const l = this.live.get(id);
    return l ? l.rec : readTask(this.paths, id);
  }

  list(filter: { vm?: string; state?: TaskState; limit?: number } = {}): TaskSummary[] {
    const byId = new Map(readTasks(this.paths).map((t) => [t.id, t]));
    for (const l of this.live.values()) byId.set(l.rec.id, l.rec);
    return [...byId.values()]
      .filter((t) => (filter.vm === undefined || t.target === filter.vm) && (filter.state === undefined || t.state === filter.state))
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, filter.limit ?? 100)
      .map(summarize);
  }

  cancel(id: string): TaskSummary {
    const l = this.live.get(id);
    if (!l) {
      const t = readTask(this.paths, id);
      if (t.state === 'running' && t.pid !== undefined && t.pid !== process.pid) throw elsewhere(t);
      throw new KvmError('TASK_ENDED', `task ${id} already ended (${t.state})`, { hint: 'only a running task can be cancelled' });
    }
    if (!l.rec.cancellable) {
      throw new KvmError('TASK_NOT_CANCELLABLE', `task ${id} (${l.rec.kind}) cannot be cancelled: the operation has no safe point to stop at`, {
        hint: 'wait for it to end; disk create/convert can be cancelled (the partial image is removed)',
      });
    }
    this.addLine(l, 'cancel requested');
    l.abort.abort();
    return summarize(l.rec);
  }

  close(): void {
    this.flushAll();
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
  }
}
