/**
 * Whether some kvmctl holds a VM's lock (src/vm/lock.ts takes it): a start or stop is under way.
 * Here, below src/net and src/vm, so that network gc can leave a starting VM's taps alone.
 */
import { isLockHeld } from './lock-file.js';
import { vmRuntimeFiles, type Paths } from './paths.js';

/** True while some kvmctl holds the VM's lock (used to report "starting"/"stopping"). */
export function isVmLocked(paths: Paths, name: string): Promise<boolean> {
  return isLockHeld(vmRuntimeFiles(paths, name).lock);
}
