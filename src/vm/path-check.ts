/**
 * Path confinement of a VM definition: every path it names — disks, CD-ROMs, kernel, initrd,
 * 9p/virtiofs share sources, rng source, QMP/monitor/VNC sockets, absolute paths inside extraArgs —
 * must resolve (after symlinks) inside a storage root, or be a block device listed with
 * `kvmctl storage add /dev/…`. One check for apply, validate, the API, import and start (start
 * checks again: a symlink can change after apply). Each problem names the field, the resolved path
 * and the command that would allow it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { listStorageNames } from '../storage/defs.js';
import { badInput, type ErrorIssue } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { isSystemPath, realish, rootOf, rootRefusal, storageRoots, within, type StorageRoots } from '../host/storage-roots.js';
import type { VmSpec } from '../definition/vm.js';

export type PathUse = 'image' | 'kernel' | 'share' | 'socket' | 'rng' | 'extra' | 'firmware' | 'nvram';
/** Where distributions install firmware images: read-only for QEMU, so allowed besides the storage roots. */
export const FIRMWARE_READ_DIRS = ['/usr/share/OVMF', '/usr/share/ovmf', '/usr/share/edk2', '/usr/share/qemu', '/usr/share/seabios', '/usr/lib/ipxe/qemu'];
export const RNG_SOURCES = ['/dev/urandom', '/dev/random', '/dev/hwrng'];

function kind(real: string): 'missing' | 'file' | 'dir' | 'block' | 'char' | 'socket' | 'other' {
  let st: fs.Stats;
  try {
    st = fs.statSync(real);
  } catch {
    return 'missing';
  }
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isBlockDevice()) return 'block';
  if (st.isCharacterDevice()) return 'char';
  if (st.isSocket()) return 'socket';
  return 'other';
}

function addHint(real: string, paths: Paths, isDir: boolean): string {
  const dir = isDir ? real : path.dirname(real);
  return rootRefusal(dir, paths) ? 'move it into a storage root (kvmctl storage list shows them)' : `to allow it: kvmctl storage add ${dir}`;
}

/**
 * The problem with one path, or undefined. `base` resolves a relative path (disks and CD-ROMs:
 * the images dir); other fields must be absolute. `runDir` is also allowed for sockets.
 */
export function pathProblem(p: string, use: PathUse, roots: StorageRoots, paths: Paths, o: { base?: string; allowSystem?: boolean } = {}): string | undefined {
  if (!path.isAbsolute(p) && !o.base) return `"${p}" must be an absolute path`;
  const abs = path.resolve(o.base ?? '/', p);
  const { real } = realish(abs);
  const shown = real === p ? `"${p}"` : `"${p}" (resolves to ${real})`;
  const k = kind(real);
  if (use === 'rng') return RNG_SOURCES.includes(real) ? undefined : `${shown} is not an entropy device (${RNG_SOURCES.join(', ')})`;
  if (k === 'block') {
    if (use !== 'image') return `${shown} is a block device`;
    return roots.devices.some((d) => d.real === real) ? undefined : `${shown} is a block device not listed for VMs; to allow it: kvmctl storage add ${real}`;
  }
  if (k === 'char' || k === 'other') return `${shown} is a device node or FIFO, not an image`;
  if (use === 'firmware' && k === 'file' && FIRMWARE_READ_DIRS.some((d) => within(real, realish(d).real))) return undefined;
  if (use === 'nvram' && within(real, realish(path.join(paths.data, 'vms')).real)) return undefined;
  if (use === 'socket') {
    if (k !== 'missing' && k !== 'socket') return `${shown} exists and is not a socket (QEMU would delete it to listen there)`;
    if (within(real, realish(paths.run).real)) return undefined;
  }
  if (use === 'share') {
    if (isSystemPath(real) || ['/', '/var', '/home', '/root', '/run'].includes(real)) {
      return o.allowSystem ? undefined : `${shown} is the host's system (or holds it): sharing it lets the guest read or change the host; set allowSystemPath: true on the share if you mean it`;
    }
    if (o.allowSystem) return undefined;
  } else if (k === 'dir') return `${shown} is a directory`;
  if (rootOf(real, roots)) return undefined;
  return `${shown} is outside the storage roots (${roots.dirs.map((r) => r.real).join(', ')}); ${addHint(real, paths, use === 'share')}`;
}

/** Absolute paths inside extraArgs tokens (`file=/x`, `path=/x`, or a bare `/x`). */
export function extraArgPaths(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (a.startsWith('/')) out.push(a.split(',')[0]!);
    for (const m of a.matchAll(/(?:^|,)[A-Za-z0-9_.-]+=(\/[^,]*)/g)) out.push(m[1]!);
  }
  return [...new Set(out)];
}

/** Every path problem of a VM definition, with field paths (`disks[0].file`). */
export function vmPathIssues(vm: VmSpec, paths: Paths, roots: StorageRoots = storageRoots(paths)): ErrorIssue[] {
  const issues: ErrorIssue[] = [];
  const check = (field: string, p: string | undefined, use: PathUse, o?: { base?: string; allowSystem?: boolean }) => {
    if (p === undefined) return;
    const why = pathProblem(p, use, roots, paths, o);
    if (why) issues.push({ path: field, message: why });
  };
  vm.disks.forEach((d, i) => check(`disks[${i}].file`, d.file, 'image', { base: paths.images }));
  // A volume disk's storage must be defined on this host (its type and the volume are checked at start).
  const named = new Set(listStorageNames(paths));
  vm.disks.forEach((d, i) => {
    if (d.storage !== undefined && !named.has(d.storage)) issues.push({ path: `disks[${i}].storage`, message: `no storage named "${d.storage}" on this host (kvmctl storage define -f FILE; kvmctl storage list shows them)` });
  });
  vm.cdroms.forEach((c, i) => check(`cdroms[${i}].file`, c.file, 'image', { base: paths.images }));
  check('kernel.path', vm.kernel?.path, 'kernel');
  check('kernel.initrd', vm.kernel?.initrd, 'kernel');
  vm.shares.forEach((s, i) => check(`shares[${i}].path`, s.path, 'share', { allowSystem: s.allowSystemPath }));
  if (typeof vm.rng === 'object') check('rng.source', vm.rng.source, 'rng');
  if (typeof vm.monitor === 'object' && 'socket' in vm.monitor) check('monitor.socket', vm.monitor.socket, 'socket');
  check('qmp.socket', vm.qmp?.socket, 'socket');
  check('display.vnc.socket', vm.display.vnc?.socket, 'socket');
  check('firmware.code', vm.firmware?.code, 'firmware');
  check('firmware.varsTemplate', vm.firmware?.varsTemplate, 'firmware');
  check('firmware.vars', vm.firmware?.vars, 'nvram');
  check('tpm.state', vm.tpm ? vm.tpm.state : undefined, 'nvram');
  extraArgPaths(vm.extraArgs).forEach((p) => {
    if (RNG_SOURCES.includes(p) || p === '/dev/null') return;
    check(`extraArgs (${p})`, p, 'extra');
  });
  return issues;
}

/** A single path given on the command line or to the API (install --iso, cdrom insert): resolved and confined, or exit 2. */
export function confinedPath(paths: Paths, p: string, field: string, o: { base?: string } = {}): string {
  const why = pathProblem(p, 'image', storageRoots(paths), paths, { base: o.base ?? process.cwd() });
  if (why) throw badInput('PATH_OUTSIDE_ROOTS', `${field}: ${why}`, 'kvmctl storage list shows the storage roots; kvmctl storage add DIR adds one');
  return path.resolve(o.base ?? process.cwd(), p);
}
