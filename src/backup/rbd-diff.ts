/**
 * Incrementals of RBD disks across QEMU restarts (issue #21, docs/backup.md "RBD volumes"): when
 * the QEMU running now has no in-memory bitmap of the backup generation, kvmctl makes one up from
 * Ceph's own record of what changed, and the backup then runs exactly like a bitmap incremental
 * (the same block job, the same qcow2 with its backing file, the same transaction as the VM's other
 * disks):
 *   1. a new non-persistent bitmap B is added on the volume's node: from now on QEMU counts writes;
 *   2. the new backup's anchor snapshot is taken (storage/anchors.ts): it holds every write acked
 *      before it, so (1) and (2) together miss nothing;
 *   3. `rbd diff` between the previous backup's anchor and the new one lists what changed between
 *      them; those extents are set in B — QMP cannot set bits, so qemu-io writes zeroes at them into
 *      a scratch qcow2 that carries a persistent bitmap (metadata only), the scratch is opened as a
 *      node and merged into B (block-dirty-bitmap-merge), then closed and deleted;
 *   4. blockdev-backup sync=bitmap on B copies every cluster changed since the previous anchor —
 *      a superset of what changed since the previous backup's point in time (the anchor is older).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import type { QmpClient } from '../qmp/client.js';
import type { Extent } from '../storage/anchors.js';

export const DIFF_GRANULARITY = 65536;

/** Extents rounded out to `granularity`, clipped to `size`, sorted and merged when they touch (pure; unit-tested). */
export function coalesceExtents(ext: Extent[], granularity: number, size: number): Extent[] {
  const out: Extent[] = [];
  const sorted = ext
    .filter((e) => e.length > 0 && e.offset < size)
    .map((e) => ({ start: Math.floor(e.offset / granularity) * granularity, end: Math.min(size, Math.ceil((e.offset + e.length) / granularity) * granularity) }))
    .sort((a, b) => a.start - b.start);
  for (const e of sorted) {
    const last = out.at(-1);
    if (last && e.start <= last.offset + last.length) last.length = Math.max(last.length, e.end - last.offset);
    else out.push({ offset: e.start, length: e.end - e.start });
  }
  return out;
}

/** The qemu-io script that marks the extents (zero writes: qcow2 records them as metadata only). Pure. */
export function markScript(ext: Extent[]): string {
  return ext.map((e) => `write -z ${e.offset} ${e.length}\n`).join('');
}

const SCRATCH_BITMAP = 'kvmctl-diff';
const scratchNode = (diskId: string) => `kvbk-d-${diskId}`;

/**
 * Set `extents` in bitmap `bitmap` of `node` (of `virtualSize` bytes) through a scratch qcow2 in
 * `dir` (removed afterwards). Returns the bytes marked (after rounding to the granularity).
 */
export async function markExtents(q: QmpClient, o: { diskId: string; node: string; bitmap: string; extents: Extent[]; virtualSize: number; dir: string }): Promise<number> {
  const ext = coalesceExtents(o.extents, DIFF_GRANULARITY, o.virtualSize);
  if (!ext.length) return 0;
  const file = path.join(o.dir, `.${o.diskId}.diff.qcow2`);
  const { qemuImg, QEMU_IO } = await import('../disk/qemu-img.js');
  try {
    await qemuImg(['create', '-f', 'qcow2', '-o', `cluster_size=${DIFF_GRANULARITY}`, file, String(o.virtualSize)], file);
    await qemuImg(['bitmap', '--add', '-g', String(DIFF_GRANULARITY), file, SCRATCH_BITMAP], file);
    const r = await run([QEMU_IO, '-f', 'qcow2', file], { input: `${markScript(ext)}quit\n`, timeoutMs: 600_000, errorCode: 'BACKUP_FAILED' });
    if (/error|failed/i.test(r.stdout + r.stderr)) throw new KvmError('BACKUP_FAILED', `marking the changed extents of disk ${o.diskId} failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join('; ')}`);
    await q.execute('blockdev-add', { driver: 'qcow2', 'node-name': scratchNode(o.diskId), 'read-only': true, file: { driver: 'file', filename: file } });
    try {
      await q.execute('block-dirty-bitmap-merge', { node: o.node, target: o.bitmap, bitmaps: [{ node: scratchNode(o.diskId), name: SCRATCH_BITMAP }] });
    } finally {
      await q.execute('blockdev-del', { 'node-name': scratchNode(o.diskId) }).catch(() => undefined);
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
  return ext.reduce((s, e) => s + e.length, 0);
}
