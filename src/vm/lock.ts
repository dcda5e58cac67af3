/**
 * One lock per VM, so that concurrent `start`s (or a start racing a stop) of one VM run one at a
 * time. A kvmctl killed while holding it leaves a lock that goes stale after a few seconds.
 */
import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';

export async function withVmLock<T>(paths: Paths, name: string, fn: () => Promise<T>, waitMs = 120_000): Promise<T> {
  const file = vmRuntimeFiles(paths, name).lock;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      stale: 5_000,
      update: 1_000,
      retries: { retries: Math.ceil(waitMs / 100), factor: 1, minTimeout: 50, maxTimeout: 100 },
    });
  } catch (e) {
    throw new KvmError('VM_BUSY', `VM "${name}" is locked by another kvmctl operation`, { hint: 'wait for it to finish and try again', cause: e });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

// Below src/net too (network gc asks it): src/host/vm-lock-state.ts.
export { isVmLocked } from '../host/vm-lock-state.js';
