/**
 * One lock per VM, so that concurrent `start`s (or a start racing a stop) of one VM run one at a
 * time. A kvmctl killed while holding it leaves a lock that goes stale after a few seconds.
 */
import { KvmError } from '../errors.js';
import { withLockFile } from '../host/lock-file.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';

export function withVmLock<T>(paths: Paths, name: string, fn: () => Promise<T>, waitMs = 120_000): Promise<T> {
  return withLockFile(vmRuntimeFiles(paths, name).lock, {
    retries: Math.ceil(waitMs / 100),
    onFail: (cause) => new KvmError('VM_BUSY', `VM "${name}" is locked by another kvmctl operation`, { hint: 'wait for it to finish and try again', cause }),
  }, fn);
}

// Below src/net too (network gc asks it): src/host/vm-lock-state.ts.
export { isVmLocked } from '../host/vm-lock-state.js';
