/**
 * Disk image service: create, info, resize, convert, snapshots, clone, check, remove, and
 * `ensureDisk` for the VM lifecycle. Used by the CLI and (later) the API. Data safety first:
 * nothing is overwritten without `force`, nothing in use by a QEMU is modified or deleted, new
 * images appear under their final name only when complete.
 *
 * Still to come, for running VMs (they need the VM layer's QMP client): `snapshotExternal(qmp,
 * {device, overlay})` via blockdev-snapshot-sync, cd-rom eject/insert. They will reuse
 * `createImage({backing})` for the overlay file and the same OpOptions.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { diskFile, diskFormat } from '../qemu/argv.js';
import type { DiskSpec } from '../definition/vm.js';
import { formatSize, parseSize } from '../definition/units.js';
import * as qi from './qemu-img.js';
import { IMAGE_FORMATS, PREALLOC_MODES, type ImageInfo, type ImageSnapshot, type Prealloc } from './qemu-img.js';
import { watchAllocation, type OnProgress } from './progress.js';
import { withTask } from '../tasks/current.js';
import { resizeImageSafe, type ResizeOptions, type ResizeResult } from './resize.js';
import { assertFreeSpace, assertNotInUse, assertNotWritten, existsError, qemuLocksOn, sameFile, writeViaTemp, type InUseResolver } from './safety.js';

export { assertNotInUse, imageInUse, setImageInUseResolver, type InUseResolver } from './safety.js';

/** Options every mutating operation accepts. */
export type OpOptions = {
  /** Names the running VM that uses a path (the VM layer's hook), for clearer refusals. */
  inUseBy?: InUseResolver;
  /** Abort a long operation; the partial file is removed and INTERRUPTED is thrown. */
  signal?: AbortSignal;
  onProgress?: OnProgress;
  /** Catch SIGINT/SIGTERM during long writes to clean up (default true). */
  trapSignals?: boolean;
};

const PREALLOC_BY_FORMAT: Record<string, readonly Prealloc[]> = {
  raw: ['off', 'falloc', 'full'],
  qcow2: PREALLOC_MODES,
};

function mustExist(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw badInput('DISK_NOT_FOUND', `${file} does not exist`);
  }
  if (!st.isFile() && !st.isBlockDevice()) throw badInput('DISK_NOT_A_FILE', `${file} is not an image file`);
}

export { sameFile } from './safety.js';

/** How an overlay refers to its base: relative when the base lies at or below the overlay's dir. */
function backingRef(overlayAbs: string, baseAbs: string): string {
  const rel = path.relative(path.dirname(overlayAbs), baseAbs);
  return rel.startsWith('..') || path.isAbsolute(rel) ? baseAbs : rel;
}

/** Info of an image; falls back to a shared read (-U) when a running QEMU holds it. */
export async function inspectImage(file: string, opts: { chain?: boolean } = {}): Promise<{ info: ImageInfo; chain?: ImageInfo[]; inUse: boolean }> {
  const abs = path.resolve(file);
  mustExist(abs);
  let inUse = qemuLocksOn(abs).open;
  const read = async (forceShare: boolean) => {
    if (opts.chain) {
      const chain = await qi.infoChain(abs, { forceShare });
      return { info: chain[0]!, chain };
    }
    return { info: await qi.info(abs, { forceShare }) };
  };
  const attempt = async (forceShare: boolean) => {
    try {
      return await read(forceShare);
    } catch (e) {
      // A missing or broken backing file breaks --backing-chain: show the image itself.
      if (opts.chain && e instanceof KvmError && e.code !== 'DISK_IN_USE') return { info: await qi.info(abs, { forceShare }) };
      throw e;
    }
  };
  try {
    return { ...(await attempt(false)), inUse };
  } catch (e) {
    if (!(e instanceof KvmError) || e.code !== 'DISK_IN_USE') throw e;
    inUse = true;
    return { ...(await attempt(true)), inUse };
  }
}

export type CreateOptions = {
  path: string;
  /** Bytes; optional with a backing file (the overlay then has the base's size). */
  size?: number;
  format?: string;
  prealloc?: Prealloc;
  clusterSize?: number;
  /** Make a qcow2 overlay on this base image. */
  backing?: string;
  force?: boolean;
  /** Refuse up front when a preallocated image does not fit (default true; off for thin storage). */
  checkFreeSpace?: boolean;
  /** Create missing parent directories (ensureDisk). */
  mkdirs?: boolean;
};

function validateCreate(o: CreateOptions, format: string, prealloc: Prealloc): void {
  if (!(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw badInput('DISK_BAD_FORMAT', `unknown image format "${format}"`, `use one of ${IMAGE_FORMATS.join(', ')}`);
  }
  const allowed = PREALLOC_BY_FORMAT[format];
  if (allowed && !allowed.includes(prealloc)) {
    throw badInput('DISK_BAD_PREALLOC', `${format} images do not support preallocation "${prealloc}"`, `use one of ${allowed.join(', ')}`);
  }
  if (!allowed && prealloc !== 'off') throw badInput('DISK_BAD_PREALLOC', `kvmctl creates ${format} images only without preallocation`, 'use raw or qcow2');
  if (o.size === undefined && !o.backing) throw badInput('DISK_BAD_SIZE', `a size is needed to create ${o.path}`, 'e.g. 20G');
  if (o.size !== undefined && (!Number.isSafeInteger(o.size) || o.size < 512)) {
    throw badInput('DISK_BAD_SIZE', `${o.size} bytes is too small for an image (at least 512)`);
  }
  if (o.size !== undefined && o.size % 512 !== 0) throw badInput('DISK_BAD_SIZE', `image size must be a multiple of 512 bytes (got ${o.size})`);
  if (o.clusterSize !== undefined) {
    if (format !== 'qcow2') throw badInput('DISK_BAD_OPTION', `--cluster-size applies to qcow2 only, not ${format}`);
    const c = o.clusterSize;
    if (!Number.isSafeInteger(c) || c < 512 || c > 2 * 1024 * 1024 || (c & (c - 1)) !== 0) {
      throw badInput('DISK_BAD_OPTION', `cluster size ${c} must be a power of two from 512 to 2M (default 64K)`);
    }
  }
  if (o.backing && format !== 'qcow2') throw badInput('DISK_BAD_OPTION', `a backing file needs a qcow2 image, not ${format}`);
}

/** Create an image: validated, never over an existing file without `force` (nor one in use). */
export async function createImage(o: CreateOptions, opts: OpOptions = {}): Promise<{ path: string; info: ImageInfo }> {
  opts = withTask(opts); // inside an API task: its progress and its cancel
  const abs = path.resolve(o.path);
  const format = o.format ?? (o.backing ? 'qcow2' : 'raw');
  const prealloc = o.prealloc ?? 'off';
  validateCreate(o, format, prealloc);
  const dir = path.dirname(abs);
  if (o.mkdirs) fs.mkdirSync(dir, { recursive: true });
  else if (!fs.existsSync(dir)) throw badInput('DISK_NO_DIR', `directory ${dir} does not exist`, `mkdir -p ${dir}`);
  if (fs.existsSync(abs)) {
    if (!o.force) throw existsError(abs);
    if (!fs.statSync(abs).isFile()) throw badInput('DISK_NOT_A_FILE', `${abs} is not a regular file; refusing to replace it`);
    await assertNotInUse(abs, { inUseBy: opts.inUseBy, doing: 'overwrite' });
  }
  let backing: { file: string; format: string } | undefined;
  if (o.backing) {
    const base = path.resolve(o.backing);
    mustExist(base);
    if (sameFile(base, abs)) throw badInput('DISK_BAD_OPTION', `an image cannot be its own backing file (${abs})`);
    await assertNotWritten(base, { inUseBy: opts.inUseBy, doing: 'put an overlay on' });
    const bi = await qi.info(base); // fails with DISK_IN_USE when a QEMU writes to it
    backing = { file: backingRef(abs, base), format: bi.format };
  }
  if ((prealloc === 'full' || prealloc === 'falloc') && o.size !== undefined && o.checkFreeSpace !== false) {
    assertFreeSpace(dir, o.size, `a ${formatSize(o.size)} ${format} image with preallocation=${prealloc}`);
  }
  await writeViaTemp(abs, { overwrite: !!o.force, signal: opts.signal, trapSignals: opts.trapSignals }, async (tmp, signal) => {
    const stop = opts.onProgress && prealloc === 'full' && o.size ? watchAllocation(tmp, o.size, opts.onProgress) : undefined;
    try {
      await qi.create({ path: tmp, format, size: o.size, prealloc, clusterSize: o.clusterSize, backing }, { signal });
    } catch (e) {
      if (e instanceof KvmError && e.code === 'DISK_FULL') {
        throw new KvmError('DISK_FULL', `no space left while creating ${abs}; nothing was left under that name`, {
          hint: 'free space, pick another directory, or use --prealloc off (sparse)',
          details: e.details,
          cause: e,
        });
      }
      throw e;
    } finally {
      stop?.();
    }
    if (stop) opts.onProgress?.(100); // only when progress was being reported (prealloc=full)
  });
  return { path: abs, info: await qi.info(abs) };
}

/**
 * For the VM lifecycle: create the image of a definition's disk that has `create:` when it does
 * not exist yet. Never overwrites (also not in a race with another start). Relative disk paths
 * are resolved against paths.images.
 */
export async function ensureDisk(disk: DiskSpec, paths: Paths, opts: OpOptions = {}): Promise<{ path: string; created: boolean }> {
  const abs = path.resolve(paths.images, diskFile(disk));
  if (fs.existsSync(abs) || !disk.create) return { path: abs, created: false };
  try {
    await createImage({ path: abs, size: disk.create.size, format: diskFormat(disk), prealloc: disk.create.prealloc, mkdirs: true }, opts);
  } catch (e) {
    if (e instanceof KvmError && e.code === 'DISK_EXISTS') return { path: abs, created: false };
    throw e;
  }
  return { path: abs, created: true };
}

/** Parse `+SIZE`, `-SIZE` (relative) or `SIZE` (absolute) against the current size. */
export function resolveNewSize(spec: string | number, current: number): number {
  const m = typeof spec === 'number' ? { sign: '', rest: spec } : { sign: /^[+-]/.test(spec.trim()) ? spec.trim()[0]! : '', rest: spec.trim().replace(/^[+-]/, '') };
  const n = parseSize(m.rest);
  if (n === undefined) throw badInput('DISK_BAD_SIZE', `"${spec}" is not a size`, 'use e.g. 20G, +5G or -1G');
  const target = m.sign === '+' ? current + n : m.sign === '-' ? current - n : n;
  if (target < 512) throw badInput('DISK_BAD_SIZE', `the new size would be ${target} bytes (at least 512)`);
  return target;
}

/**
 * Resize; shrinking needs `shrink` (the data past the new end is lost) and returns a warning.
 * Refused for a backing file of another image; live (QMP) for an image a running VM has open
 * when `live` is given (see ./resize.ts).
 */
export async function resizeImage(file: string, sizeSpec: string | number, o: ResizeOptions & OpOptions = {}): Promise<ResizeResult> {
  const abs = path.resolve(file);
  mustExist(abs);
  return resizeImageSafe(abs, sizeSpec, resolveNewSize, o);
}

export type ConvertOptions = {
  src: string;
  dst: string;
  format: string;
  force?: boolean;
  prealloc?: Prealloc;
  clusterSize?: number;
  checkFreeSpace?: boolean;
  /** Bytes per second, to leave I/O for running VMs. */
  rateLimit?: number;
};

/** Convert/copy an image into a new file (temp name, then renamed); the source is only read. */
export async function convertImage(c: ConvertOptions, opts: OpOptions = {}): Promise<{ path: string; info: ImageInfo }> {
  opts = withTask(opts); // inside an API task: its progress and its cancel
  const src = path.resolve(c.src);
  const dst = path.resolve(c.dst);
  mustExist(src);
  const prealloc = c.prealloc ?? 'off';
  validateCreate({ path: dst, size: 512, clusterSize: c.clusterSize }, c.format, prealloc);
  if (sameFile(src, dst)) throw badInput('DISK_CONVERT_IN_PLACE', `${dst} is the source image; kvmctl never converts in place`, 'write to a new path, check it, then replace the old one yourself');
  const dir = path.dirname(dst);
  if (!fs.existsSync(dir)) throw badInput('DISK_NO_DIR', `directory ${dir} does not exist`, `mkdir -p ${dir}`);
  if (fs.existsSync(dst)) {
    if (!c.force) throw existsError(dst);
    await assertNotInUse(dst, { inUseBy: opts.inUseBy, doing: 'overwrite' });
  }
  await assertNotWritten(src, { inUseBy: opts.inUseBy, doing: 'convert' });
  const si = await qi.info(src); // DISK_IN_USE when a QEMU writes to it
  if (c.checkFreeSpace !== false) {
    const m = await qi.measure(src, si.format, c.format);
    assertFreeSpace(dir, prealloc === 'off' ? m.required : m['fully-allocated'], `converting ${src} to ${c.format}`);
  }
  await writeViaTemp(dst, { overwrite: !!c.force, signal: opts.signal, trapSignals: opts.trapSignals }, async (tmp, signal) => {
    await qi.convert({ src, srcFormat: si.format, dst: tmp, dstFormat: c.format, prealloc, clusterSize: c.clusterSize, rateLimit: c.rateLimit }, { signal, onProgress: opts.onProgress });
  });
  return { path: dst, info: await qi.info(dst) };
}

/** Clone: a qcow2 overlay on `base` (default; the base must then stay unchanged), or a full copy. */
export async function cloneImage(c: { base: string; dst: string; full?: boolean; format?: string; force?: boolean }, opts: OpOptions = {}): Promise<{ path: string; info: ImageInfo; overlay: boolean }> {
  if (c.full) {
    const r = await convertImage({ src: c.base, dst: c.dst, format: c.format ?? 'qcow2', force: c.force }, opts);
    return { ...r, overlay: false };
  }
  if (c.format && c.format !== 'qcow2') throw badInput('DISK_BAD_OPTION', `an overlay clone is always qcow2 (got --format ${c.format})`, 'use --full for a full copy in another format');
  const r = await createImage({ path: c.dst, backing: c.base, format: 'qcow2', force: c.force }, opts);
  return { ...r, overlay: true };
}

// ---- internal snapshots (qcow2, image not in use) ----

async function qcow2For(file: string, what: string): Promise<{ abs: string; info: ImageInfo }> {
  const abs = path.resolve(file);
  const { info } = await inspectImage(abs);
  if (info.format !== 'qcow2') {
    throw badInput('SNAPSHOT_UNSUPPORTED', `${abs} is a ${info.format} image: internal snapshots (${what}) need qcow2`, `convert it (kvmctl disk convert ${file} NEW.qcow2 --format qcow2) or put an overlay on it (kvmctl disk clone ${file} NEW.qcow2)`);
  }
  return { abs, info };
}

export function checkSnapshotName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(name)) {
    throw badInput('SNAPSHOT_BAD_NAME', `"${name}" is not a valid snapshot name`, 'letters, digits, _ . : - (up to 128), starting with a letter or digit');
  }
  if (/^\d+$/.test(name)) throw badInput('SNAPSHOT_BAD_NAME', `snapshot name "${name}" is only digits and would be mistaken for a snapshot ID`, 'add a letter, e.g. s1');
}

export async function snapshotList(file: string): Promise<ImageSnapshot[]> {
  const { info } = await qcow2For(file, 'list');
  return info.snapshots ?? [];
}

function findSnapshot(abs: string, info: ImageInfo, name: string): ImageSnapshot {
  const s = (info.snapshots ?? []).find((x) => x.name === name);
  if (!s) {
    const have = (info.snapshots ?? []).map((x) => x.name);
    throw badInput('SNAPSHOT_NOT_FOUND', `${abs} has no snapshot "${name}"`, have.length ? `it has: ${have.join(', ')}` : 'it has no snapshots');
  }
  return s;
}

export async function snapshotCreate(file: string, name: string, opts: OpOptions = {}): Promise<ImageSnapshot> {
  checkSnapshotName(name);
  const { abs, info } = await qcow2For(file, 'create');
  if ((info.snapshots ?? []).some((x) => x.name === name)) {
    throw badInput('SNAPSHOT_EXISTS', `${abs} already has a snapshot "${name}"`, 'pick another name or delete the old one first');
  }
  await assertNotInUse(abs, { inUseBy: opts.inUseBy, doing: 'snapshot' });
  await qi.snapshot('create', abs, 'qcow2', name);
  return findSnapshot(abs, await qi.info(abs), name);
}

/** Revert the disk to a snapshot: everything written since is discarded. */
export async function snapshotRevert(file: string, name: string, opts: OpOptions = {}): Promise<void> {
  const { abs, info } = await qcow2For(file, 'revert');
  findSnapshot(abs, info, name);
  await assertNotInUse(abs, { inUseBy: opts.inUseBy, doing: 'revert' });
  await qi.snapshot('apply', abs, 'qcow2', name);
}

export async function snapshotDelete(file: string, name: string, opts: OpOptions = {}): Promise<void> {
  const { abs, info } = await qcow2For(file, 'delete');
  findSnapshot(abs, info, name);
  await assertNotInUse(abs, { inUseBy: opts.inUseBy, doing: 'delete a snapshot of' });
  await qi.snapshot('delete', abs, 'qcow2', name);
}

// ---- check, remove ----

export async function checkImage(file: string, opts: OpOptions = {}): Promise<qi.CheckOutcome & { path: string }> {
  const abs = path.resolve(file);
  mustExist(abs);
  await assertNotWritten(abs, { inUseBy: opts.inUseBy, doing: 'check' });
  const info = await qi.info(abs);
  return { path: abs, ...(await qi.check(abs, info.format)) };
}

/** The backing file name stored in a qcow2 header, or undefined (pure fs read, no process). */
export function qcow2BackingOf(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const h = Buffer.alloc(20);
    if (fs.readSync(fd, h, 0, 20, 0) < 20 || h.readUInt32BE(0) !== 0x514649fb) return undefined;
    const off = Number(h.readBigUInt64BE(8));
    const len = h.readUInt32BE(16);
    if (!off || !len || len > 4096) return undefined;
    const b = Buffer.alloc(len);
    fs.readSync(fd, b, 0, len, off);
    return b.toString('utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** qcow2 images in `dirs` whose backing file is `file` (deleting it would break them). */
export function overlaysOf(file: string, dirs: string[]): string[] {
  const abs = path.resolve(file);
  const found = new Set<string>();
  for (const dir of new Set(dirs.map((d) => path.resolve(d)))) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      if (p === abs || n.includes('.kvmctl-tmp-')) continue;
      const b = qcow2BackingOf(p);
      if (b && !b.includes(':') && sameFile(path.resolve(dir, b), abs)) found.add(p);
    }
  }
  return [...found];
}

/** Delete an image: needs `force`; refused while in use or while an overlay next to it needs it. */
export async function removeImage(file: string, o: { force?: boolean; searchDirs?: string[] } & OpOptions = {}): Promise<{ path: string }> {
  const abs = path.resolve(file);
  mustExist(abs);
  if (!o.force) throw badInput('DISK_RM_NEEDS_FORCE', `refusing to delete ${abs} without --force`, `kvmctl disk rm ${file} --force`);
  await assertNotInUse(abs, { inUseBy: o.inUseBy, doing: 'delete' });
  const users = overlaysOf(abs, [path.dirname(abs), ...(o.searchDirs ?? [])]);
  if (users.length) {
    throw new KvmError('DISK_IS_BACKING', `cannot delete ${abs}: it is the backing file of ${users.join(', ')}`, {
      hint: 'delete those overlays first, or make them standalone (kvmctl disk convert OVERLAY NEW --format qcow2)',
      details: { overlays: users },
    });
  }
  fs.unlinkSync(abs);
  return { path: abs };
}
