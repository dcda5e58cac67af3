/**
 * The task the current async call chain runs in (AsyncLocalStorage), for service code deep
 * below the API: `taskProgress(42)`, `taskLog('…')`, and `taskSignal()` to make an operation
 * cancellable. Outside a task every call is a no-op. A leaf module: imports nothing of kvmctl,
 * so any layer may import it without pointing up.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export type TaskHooks = {
  id: string;
  progress(percent: number): void;
  log(line: string): void;
  /** The task's abort signal; asking for it marks the task cancellable. */
  signal(): AbortSignal;
};

export const taskContext = new AsyncLocalStorage<TaskHooks>();

/**
 * The task of a process that runs one at a time (a CLI command, src/tasks/cli.ts): a plain
 * variable instead of the AsyncLocalStorage, whose first run() turns on async hooks that tax every
 * promise and callback of the process for good (Node 20; ≈ 5 ms of a `kvmctl start` on a quiet machine).
 */
let processTask: TaskHooks | undefined;

/** Run fn as the process's one task (see processTask); nested or concurrent use is an error. */
export async function runAsProcessTask<T>(hooks: TaskHooks, fn: () => Promise<T>): Promise<T> {
  if (processTask) throw new Error(`task ${processTask.id} already runs in this process`);
  processTask = hooks;
  try {
    return await fn();
  } finally {
    processTask = undefined;
  }
}

const store = (): TaskHooks | undefined => taskContext.getStore() ?? processTask;

export const taskProgress = (p: number): void => store()?.progress(p);
export const taskLog = (line: string): void => store()?.log(line);
/** Whether the caller runs inside a task. */
export const currentTask = (): string | undefined => store()?.id;
export const taskSignal = (): AbortSignal | undefined => store()?.signal();

/** Fill in `signal` and `onProgress` from the current task where the caller gave none. */
export function withTask<T extends { signal?: AbortSignal; onProgress?: (p: number) => void }>(opts: T): T {
  const t = store();
  if (!t) return opts;
  const onProgress = opts.onProgress;
  return {
    ...opts,
    signal: opts.signal ?? t.signal(),
    onProgress: (p: number) => {
      t.progress(p);
      onProgress?.(p);
    },
  };
}
