/**
 * Safe resize (#14 item 5): an image that other images use as their backing file is never resized
 * (the overlays would silently keep the old size, or see garbage past it); an image in use by a
 * running VM is resized only live, through that VM's QEMU (QMP block_resize), so the guest sees
 * the new size; shrinking needs `shrink` and says how many bytes are lost.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import { formatSize } from '../definition/units.js';
import * as qi from './qemu-img.js';
import { assertNotInUse, fmtBytes, qemuLocksOn, sameFile, type InUseResolver } from './safety.js';

/** The running VM's handle on an image, from the VM layer (src/disk/live-resize.ts). */
export type LiveHandle = {
  vm: string;
  /** The image is opened read-only by that VM (a base under an overlay): never resized. */
  readOnly: boolean;
  resize(bytes: number): Promise<void>;
};
export type LiveResolver = (absPath: string) => Promise<LiveHandle | undefined>;

export type ResizeOptions = {
  shrink?: boolean;
  inUseBy?: InUseResolver;
  /** Images (or directories of images) to check for overlays that use this one as backing. */
  searchImages?: string[];
  live?: LiveResolver;
};

export type ResizeResult = { path: string; from: number; to: number; warnings: string[]; live?: string };

function isQcow2(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const h = Buffer.alloc(4);
    return fs.readSync(fd, h, 0, 4, 0) === 4 && h.readUInt32BE(0) === 0x514649fb;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Files to consider: each entry is an image, or a directory whose files are. */
export function candidateImages(entries: string[]): string[] {
  const out = new Set<string>();
  for (const e of entries) {
    const abs = path.resolve(e);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      continue;
    }
    if (st.isFile()) out.add(abs);
    else if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs)) if (!n.includes('.kvmctl-tmp-')) out.add(path.join(abs, n));
    }
  }
  return [...out];
}

/**
 * The images among `candidates` whose backing chain (qemu-img info --backing-chain, shared read)
 * contains `file`, at any depth. `chainOf` is injectable for unit tests.
 */
export async function backingDependents(
  file: string,
  candidates: string[],
  chainOf: (f: string) => Promise<string[]> = async (f) => (await qi.infoChain(f, { forceShare: true })).map((i) => i.filename),
): Promise<string[]> {
  const abs = path.resolve(file);
  const found: string[] = [];
  for (const c of candidates) {
    if (sameFile(c, abs) || !isQcow2(c)) continue;
    let chain: string[];
    try {
      chain = await chainOf(c);
    } catch {
      continue; // a broken chain elsewhere is not this image's business
    }
    if (chain.slice(1).some((f) => sameFile(path.resolve(path.dirname(c), f), abs) || sameFile(f, abs))) found.push(c);
  }
  return found;
}

/** The refusals that do not depend on how the resize is done (pure; unit-tested). */
export function checkResize(abs: string, from: number, to: number, o: { shrink?: boolean; dependents: string[]; format: string }): string[] {
  if (o.dependents.length) {
    throw new KvmError('DISK_IS_BACKING', `cannot resize ${abs}: it is the backing file of ${o.dependents.join(', ')}, which would not see the new size (or would read garbage past the old end)`, {
      exit: 2,
      hint: `resize the overlay instead (kvmctl disk resize ${o.dependents[0]} SIZE), or make it standalone first (kvmctl disk convert OVERLAY NEW --format qcow2)`,
      details: { path: abs, overlays: o.dependents },
    });
  }
  const warnings: string[] = [];
  if (to < from) {
    const lost = from - to;
    if (!o.shrink) {
      throw badInput('DISK_SHRINK_REFUSED', `${abs} would shrink from ${formatSize(from)} (${from} bytes) to ${formatSize(to)} (${to} bytes): the last ${fmtBytes(lost)} (${lost} bytes) would be lost`, 'shrink the filesystem and partitions inside the guest first, then pass --shrink');
    }
    warnings.push(`shrinking ${abs} from ${formatSize(from)} to ${formatSize(to)}: the ${fmtBytes(lost)} (${lost} bytes) past ${formatSize(to)} are gone for good`);
  }
  if (o.format === 'qcow2' && to % 512 !== 0) throw badInput('DISK_BAD_SIZE', `qcow2 sizes must be a multiple of 512 bytes (got ${to})`);
  return warnings;
}

/** Resize offline with qemu-img, or live through the running VM that has the image open. */
export async function resizeImageSafe(abs: string, sizeSpec: string | number, resolveNewSize: (s: string | number, cur: number) => number, o: ResizeOptions = {}): Promise<ResizeResult> {
  const dependents = await backingDependents(abs, candidateImages([path.dirname(abs), ...(o.searchImages ?? [])]));
  const open = qemuLocksOn(abs).open;
  const info = await qi.info(abs, { forceShare: open });
  const from = info['virtual-size'];
  const to = resolveNewSize(sizeSpec, from);
  const warnings = checkResize(abs, from, to, { shrink: o.shrink, dependents, format: info.format });
  if (to === from) return { path: abs, from, to, warnings };
  const live = o.live ? await o.live(abs) : undefined;
  if (live) {
    if (live.readOnly) {
      throw new KvmError('DISK_IN_USE', `cannot resize ${abs}: VM "${live.vm}" uses it read-only, as the base under an overlay`, {
        exit: 2,
        hint: `resize the top of that VM's chain instead, or stop it first: kvmctl stop ${live.vm}`,
        details: { path: abs, vm: live.vm },
      });
    }
    await live.resize(to);
    return { path: abs, from, to, warnings, live: live.vm };
  }
  await assertNotInUse(abs, { inUseBy: o.inUseBy, doing: 'resize' });
  await qi.resize(abs, info.format, to, { shrink: to < from });
  return { path: abs, from, to, warnings };
}
