/**
 * The QMP side of a backup: which dirty bitmaps a disk carries, the one `transaction` that starts
 * every disk's backup job at the same point in time, and waiting for the jobs with progress.
 *
 * Bitmaps are named kvmctl-GEN: a full backup starts generation GEN (it adds a persistent bitmap of
 * that name to each disk's active layer in the same transaction as the job), and each incremental
 * copies what that bitmap marks (sync=bitmap, bitmap-mode=on-success: QEMU clears the bitmap only
 * when the job succeeded, keeping writes made during it). The builders are pure (unit-tested).
 *
 * RBD volume disks cannot store a persistent bitmap (it lives in qcow2 metadata; the volume's
 * format node is raw): their bitmap is a non-persistent one (mode full-volatile), valid only in the
 * QEMU that made it. A later QEMU (restart, migration, a stopped-VM backup's storage daemon) has
 * no bitmap of that name, so the next backup is full and says why (create.ts fullReason).
 */
import { KvmError } from '../errors.js';
import type { QmpClient } from '../qmp/client.js';

export type BitmapInfo = { name: string; persistent: boolean; recording: boolean; busy: boolean; inconsistent?: boolean; count: number; granularity: number };
export const BITMAP_PREFIX = 'kvmctl-';
export const bitmapName = (generation: string) => `${BITMAP_PREFIX}${generation}`;

type NamedNode = { 'node-name': string; 'dirty-bitmaps'?: BitmapInfo[]; image?: { 'virtual-size'?: number } };
type BlockInfo = { device: string; inserted?: { 'node-name': string } };

export type DiskNode = { node: string; bitmaps: BitmapInfo[]; virtualSize: number };

/**
 * Disk id → the node QEMU's block jobs and bitmaps act on, with the bitmaps it carries. `byDevice`:
 * the disk is a -drive whose device is its id (a running VM's file disks); otherwise the node is
 * named by the disk id (the storage daemon's disks, and -blockdev volume disks everywhere).
 */
export async function diskNodes(q: QmpClient, ids: string[], o: { byDevice: boolean | ((id: string) => boolean) }): Promise<Map<string, DiskNode>> {
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as NamedNode[];
  const byDevice = (id: string) => (typeof o.byDevice === 'function' ? o.byDevice(id) : o.byDevice);
  const devices = ids.some(byDevice) ? ((await q.execute('query-block')) as BlockInfo[]) : [];
  const out = new Map<string, DiskNode>();
  for (const id of ids) {
    const node = byDevice(id) ? devices.find((d) => d.device === id)?.inserted?.['node-name'] : id;
    const n = node ? nodes.find((x) => x['node-name'] === node) : undefined;
    if (!node || !n) throw new KvmError('BACKUP_FAILED', `QEMU has no block node for disk ${id}`, { hint: 'is the VM running with this definition? kvmctl restart applies a changed one' });
    out.set(id, { node, bitmaps: n['dirty-bitmaps'] ?? [], virtualSize: n.image?.['virtual-size'] ?? 0 });
  }
  return out;
}

/** full: + a persistent bitmap (qcow2); full-volatile: + a non-persistent one (RBD); full-no-bitmap: raw files. */
export type DiskJob = { id: string; node: string; target: string; mode: 'full' | 'full-volatile' | 'incremental' | 'full-no-bitmap'; bitmap: string; /** Bytes per second (block job speed). */ speed?: number };

export const jobId = (diskId: string) => `kvbk-${diskId}`;
export const targetNode = (diskId: string) => `kvbk-t-${diskId}`;

/** The transaction actions: a new persistent bitmap + a full job, or an incremental job on the bitmap. */
export function backupActions(jobs: DiskJob[]): { type: string; data: Record<string, unknown> }[] {
  const actions: { type: string; data: Record<string, unknown> }[] = [];
  for (const j of jobs) {
    const base = { 'job-id': jobId(j.id), device: j.node, target: j.target, 'auto-finalize': true, 'auto-dismiss': true, ...(j.speed ? { speed: j.speed } : {}) };
    if (j.mode === 'full' || j.mode === 'full-volatile') {
      actions.push({ type: 'block-dirty-bitmap-add', data: { node: j.node, name: j.bitmap, persistent: j.mode === 'full' } });
      actions.push({ type: 'blockdev-backup', data: { ...base, sync: 'full' } });
    } else if (j.mode === 'full-no-bitmap') actions.push({ type: 'blockdev-backup', data: { ...base, sync: 'full' } });
    else actions.push({ type: 'blockdev-backup', data: { ...base, sync: 'bitmap', bitmap: j.bitmap, 'bitmap-mode': 'on-success' } });
  }
  return actions;
}

type JobInfo = { id: string; status: string; 'current-progress': number; 'total-progress': number };

/**
 * Start the jobs in one transaction (one point in time) and wait until all of them ended. Progress
 * is reported as (bytes done, bytes total) from query-jobs. A failed job fails the whole backup.
 */
export async function runBackupJobs(
  q: QmpClient,
  jobs: DiskJob[],
  o: { onProgress?: (done: number, total: number) => void; started?: () => Promise<void>; timeoutMs?: number; /** Abort: block-job-cancel every job (the task's Cancel). */ signal?: AbortSignal } = {},
): Promise<void> {
  const { onProgress } = o;
  const timeoutMs = o.timeoutMs ?? 6 * 3600_000;
  const ours = new Set(jobs.map((j) => jobId(j.id)));
  const pending = new Set(ours);
  const errors: string[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    const onEvent = (ev: { event: string; data: Record<string, unknown> }) => {
      if (ev.event !== 'BLOCK_JOB_COMPLETED' && ev.event !== 'BLOCK_JOB_CANCELLED') return;
      const dev = String(ev.data.device);
      if (!pending.delete(dev)) return;
      if (ev.event === 'BLOCK_JOB_CANCELLED') errors.push(`${dev}: canceled`);
      else if (ev.data.error) errors.push(`${dev}: ${String(ev.data.error)}`);
      if (!pending.size) {
        q.off('event', onEvent);
        q.off('close', onClose);
        resolve();
      }
    };
    const onClose = () => reject(new KvmError('BACKUP_FAILED', 'QEMU went away during the backup', { hint: 'the VM stopped or crashed; nothing was recorded, the next backup is full' }));
    q.on('event', onEvent);
    q.on('close', onClose);
  });
  ended.catch(() => undefined);
  try {
    await q.execute('transaction', { actions: backupActions(jobs) }, { timeoutMs: 30_000 });
  } finally {
    // The point in time is taken: the guest's filesystems may thaw now (or after a refusal).
    await o.started?.();
  }
  // Cancelled (from the task list): QEMU stops the jobs; each ends with BLOCK_JOB_CANCELLED.
  let cancelled = false;
  const onAbort = () => {
    cancelled = true;
    void cancelJobs(q, [...pending]);
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      const list = ((await q.execute('query-jobs')) as JobInfo[]).filter((j) => ours.has(j.id));
      const total = list.reduce((s, j) => s + j['total-progress'], 0);
      const done = list.reduce((s, j) => s + j['current-progress'], 0);
      if (total > 0) onProgress?.(done, total);
    } catch {
      /* the next poll, or the end, tells */
    }
  };
  // A progress display needs samples; completion itself is awaited through the events above.
  if (onProgress) timer = setInterval(() => void poll(), 500);
  try {
    await Promise.race([
      ended,
      new Promise((_, rej) => setTimeout(() => rej(new KvmError('BACKUP_TIMEOUT', `the backup jobs did not end within ${timeoutMs / 1000} s`)), timeoutMs).unref()),
    ]);
  } catch (e) {
    await cancelJobs(q, [...pending]);
    throw e;
  } finally {
    if (timer) clearInterval(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (cancelled) throw new KvmError('BACKUP_CANCELLED', `backup cancelled: QEMU stopped the block jobs (${jobs.map((j) => j.id).join(', ')})`, { hint: 'nothing was recorded; the partial copy is removed' });
  if (errors.length) throw new KvmError('BACKUP_FAILED', `backup job failed: ${errors.join('; ')}`, { hint: 'nothing was recorded; check the repository has space. The next backup is full.' });
}

export async function cancelJobs(q: QmpClient, ids: string[]): Promise<void> {
  for (const id of ids) await q.execute('block-job-cancel', { device: id, force: true }).catch(() => undefined);
}

/** Open a target image (made by qemu-img) as a node, without opening its backing chain. */
export async function addTarget(q: QmpClient, diskId: string, file: string): Promise<string> {
  const node = targetNode(diskId);
  await q.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, backing: null, file: { driver: 'file', filename: file } });
  return node;
}

export async function removeTarget(q: QmpClient, diskId: string): Promise<void> {
  await q.execute('blockdev-del', { 'node-name': targetNode(diskId) }).catch(() => undefined);
}

/** Remove kvmctl's bitmaps of other generations, and an inconsistent one of this generation. */
export async function dropStaleBitmaps(q: QmpClient, node: string, bitmaps: BitmapInfo[], keep?: string): Promise<string[]> {
  const dropped: string[] = [];
  for (const b of bitmaps) {
    if (!b.name.startsWith(BITMAP_PREFIX) || (b.name === keep && !b.inconsistent)) continue;
    await q.execute('block-dirty-bitmap-remove', { node, name: b.name });
    dropped.push(b.name);
  }
  return dropped;
}
