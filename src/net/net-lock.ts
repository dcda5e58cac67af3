/**
 * One lock per network (`<run>/networks/NAME.lock`), held while it is brought up or down, so that
 * `net up`, `net down` and VM starts that bring a network up on demand run one at a time (three
 * VMs started at once on a network not yet up made three `ip link add` of one bridge).
 */
import path from 'node:path';
import { KvmError } from '../errors.js';
import { withLockFile } from '../host/lock-file.js';
import type { Paths } from '../host/paths.js';

export function netLockFile(paths: Paths, name: string): string {
  return path.join(paths.run, 'networks', `${name}.lock`);
}

/** Not re-entrant: take it once, at the outermost up/down. Waits up to about a minute. */
export function withNetLock<T>(paths: Paths, name: string, fn: () => Promise<T>): Promise<T> {
  return withLockFile(netLockFile(paths, name), {
    retries: 600,
    onFail: (cause) => new KvmError('NETWORK_LOCKED', `network "${name}" is locked by another kvmctl operation`, { hint: 'wait for it to finish and try again', cause }),
  }, fn);
}
