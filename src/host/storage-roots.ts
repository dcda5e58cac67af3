/**
 * Storage roots: the directories (and the block devices, listed one by one) that paths in VM
 * definitions may reach. A path counts as inside only after symlinks are resolved (realpath of the
 * path, or of its nearest existing ancestor for a file that will be created), so `../` and a
 * symlink inside a root pointing out are both outside. kvmctl's images dir and the test guest
 * cache are always roots; `kvmctl storage add DIR` adds more (host.json, never through the API).
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';
import { readHostConfig, writeHostConfig } from './host-config.js';
import { guestCacheRoot, type Paths } from './paths.js';

export type RootSource = 'images' | 'guest-cache' | 'runtime' | 'added';
export type StorageRoot = { path: string; real: string; source: RootSource };
export type StorageRoots = { dirs: StorageRoot[]; devices: { path: string; real: string }[] };

/** Directories never usable as a root, and whose contents are "the host's system" for shares. */
export const SYSTEM_DIRS = ['/etc', '/boot', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/dev', '/proc', '/sys'];
/** Too broad to be a root (they hold the system dirs or the host's state), though not system dirs themselves. */
const TOO_BROAD = ['/', '/var', '/run', '/var/lib', '/home', '/root', '/srv', '/mnt', '/media', '/opt', '/tmp'];

/** realpath of p, or of its nearest existing ancestor with the rest appended; whether p exists. */
export function realish(p: string): { real: string; exists: boolean } {
  const abs = path.resolve(p);
  try {
    return { real: fs.realpathSync(abs), exists: true };
  } catch {
    /* not there (yet) */
  }
  let dir = path.dirname(abs);
  const rest = [path.basename(abs)];
  for (;;) {
    try {
      return { real: path.join(fs.realpathSync(dir), ...rest), exists: false };
    } catch {
      if (dir === path.dirname(dir)) return { real: abs, exists: false };
      rest.unshift(path.basename(dir));
      dir = path.dirname(dir);
    }
  }
}

/** Whether x is root itself or below it (both already resolved). */
export function within(x: string, root: string): boolean {
  const rel = path.relative(root, x);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export function isSystemPath(real: string): boolean {
  return real === '/' || SYSTEM_DIRS.some((d) => within(real, d));
}

export function storageRoots(paths: Paths, env: NodeJS.ProcessEnv = process.env): StorageRoots {
  const cfg = readHostConfig(paths);
  const dir = (p: string, source: RootSource): StorageRoot => ({ path: p, real: realish(p).real, source });
  return {
    dirs: [dir(paths.images, 'images'), dir(guestCacheRoot(paths, env), 'guest-cache'), ...cfg.storage.roots.map((r) => dir(r, 'added'))],
    devices: cfg.storage.devices.map((d) => ({ path: d, real: realish(d).real })),
  };
}

/** The root a resolved path is in, if any. */
export function rootOf(real: string, roots: StorageRoots): StorageRoot | undefined {
  return roots.dirs.find((r) => within(real, r.real));
}

/** Why a directory cannot be a root, or undefined when it can. */
export function rootRefusal(real: string, paths: Paths): string | undefined {
  if (isSystemPath(real)) return `${real} is a system directory (or inside one): a VM given files from it could read or overwrite the host`;
  if (TOO_BROAD.includes(real)) return `${real} is too broad to be a storage root: give a directory for VM files below it, such as ${path.join(real === '/' ? '/var/lib' : real, 'vms')}`;
  const cfg = realish(paths.config).real;
  if (within(cfg, real)) return `${real} holds kvmctl's own configuration (${cfg}): a VM could be given its definitions or tokens`;
  return undefined;
}

export type StorageAddResult = { kind: 'dir' | 'device'; path: string; real: string; added: boolean };

/** `kvmctl storage add PATH`: a directory becomes a root; a block device is listed as usable. */
export function addStorage(paths: Paths, p: string): StorageAddResult {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw badInput('STORAGE_NOT_FOUND', `${abs} does not exist`, `create it first (mkdir -p ${abs})`);
  }
  const real = fs.realpathSync(abs);
  const cfg = readHostConfig(paths);
  if (st.isBlockDevice()) {
    const added = !cfg.storage.devices.includes(real);
    if (added) writeHostConfig(paths, { ...cfg, storage: { ...cfg.storage, devices: [...cfg.storage.devices, real] } });
    return { kind: 'device', path: abs, real, added };
  }
  if (!st.isDirectory()) throw badInput('STORAGE_NOT_DIR', `${abs} is neither a directory nor a block device`, 'a storage root is a directory; add the directory the image is in');
  const why = rootRefusal(real, paths);
  if (why) throw badInput('STORAGE_ROOT_REFUSED', why, 'add a directory that holds only VM disks, ISOs, kernels and shares');
  const added = !cfg.storage.roots.includes(real);
  if (added) writeHostConfig(paths, { ...cfg, storage: { ...cfg.storage, roots: [...cfg.storage.roots, real] } });
  return { kind: 'dir', path: abs, real, added };
}

/** `kvmctl storage rm PATH`: forget a root or a device (files stay; definitions using them stop validating). */
export function removeStorage(paths: Paths, p: string): { removed: string } {
  const abs = path.resolve(p);
  const real = realish(abs).real;
  const cfg = readHostConfig(paths);
  const match = (x: string) => x === abs || x === real;
  const roots = cfg.storage.roots.filter((r) => !match(r));
  const devices = cfg.storage.devices.filter((d) => !match(d));
  if (roots.length === cfg.storage.roots.length && devices.length === cfg.storage.devices.length) {
    if (real === realish(paths.images).real) throw badInput('STORAGE_BUILTIN', `${abs} is kvmctl's own images dir, always a root`, 'it cannot be removed');
    throw badInput('STORAGE_NOT_A_ROOT', `${abs} is not an added storage root or device`, 'kvmctl storage list shows them');
  }
  writeHostConfig(paths, { ...cfg, storage: { roots, devices } });
  return { removed: real };
}
