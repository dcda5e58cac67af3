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

export const taskProgress = (p: number): void => taskContext.getStore()?.progress(p);
export const taskLog = (line: string): void => taskContext.getStore()?.log(line);
/** Whether the caller runs inside a task. */
export const currentTask = (): string | undefined => taskContext.getStore()?.id;
export const taskSignal = (): AbortSignal | undefined => taskContext.getStore()?.signal();

/** Fill in `signal` and `onProgress` from the current task where the caller gave none. */
export function withTask<T extends { signal?: AbortSignal; onProgress?: (p: number) => void }>(opts: T): T {
  const t = taskContext.getStore();
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
