/**
 * One lock per network (`<run>/networks/NAME.lock`), held while it is brought up or down, so that
 * `net up`, `net down` and VM starts that bring a network up on demand run one at a time (three
 * VMs started at once on a network not yet up made three `ip link add` of one bridge).
 */
import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';

export function netLockFile(paths: Paths, name: string): string {
  return path.join(paths.run, 'networks', `${name}.lock`);
}

/** Not re-entrant: take it once, at the outermost up/down. */
export async function withNetLock<T>(paths: Paths, name: string, fn: () => Promise<T>): Promise<T> {
  const file = netLockFile(paths, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, { realpath: false, stale: 5_000, update: 1_000, retries: { retries: 600, factor: 1, minTimeout: 50, maxTimeout: 100 } });
  } catch (e) {
    throw new KvmError('NETWORK_LOCKED', `network "${name}" is locked by another kvmctl operation`, { hint: 'wait for it to finish and try again', cause: e });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
