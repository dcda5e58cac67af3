/**
 * A lock file held while `fn` runs (proper-lockfile). The lock is refreshed every second and goes
 * stale 5 s after its holder died, so a kvmctl killed mid-operation never blocks the next one for
 * long. Not re-entrant. Used for the per-VM lock (src/vm/lock.ts) and the per-network lock
 * (src/net/net-lock.ts); each says how long to wait and which error to throw when it cannot.
 */
import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';

const LOCK_STALE_MS = 5_000;

export async function withLockFile<T>(
  file: string,
  opts: { retries: number; onFail: (cause: unknown) => Error },
  fn: () => Promise<T>,
): Promise<T> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      stale: LOCK_STALE_MS,
      update: 1_000,
      retries: { retries: opts.retries, factor: 1, minTimeout: 50, maxTimeout: 100 },
    });
  } catch (e) {
    throw opts.onFail(e);
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

/** True while some process holds the lock file (false when it is absent or stale). */
export async function isLockHeld(file: string): Promise<boolean> {
  try {
    return await lockfile.check(file, { realpath: false, stale: LOCK_STALE_MS });
  } catch {
    return false;
  }
}
