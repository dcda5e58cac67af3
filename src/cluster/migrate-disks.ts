/**
 * Live migration with local disks (issue #16), the QEMU block side, as libvirt does it with NBD:
 *
 *   destination: fresh images of the same size and format at the same paths (never over an
 *                existing file) → QEMU with -incoming → `nbd-server-start` + one writable
 *                `block-export-add` per disk (exporting a node of an incoming VM activates it);
 *   source:      `blockdev-add` an NBD client node per disk → `blockdev-mirror sync=full` into it
 *                (guest writes during the copy are mirrored too) → all jobs `ready` → memory
 *                migration with `pause-before-switchover` → at `pre-switchover` (guest paused) each
 *                mirror is `block-job-cancel`led, which for a ready mirror ends it with the target
 *                in sync → `migrate-continue`;
 *   destination: once the guest runs there, `nbd-server-stop`.
 *
 * On the destination QEMU logs "Permission conflict … 'write' … unshared by block device" at the
 * switch-over: the export still holds the image when the device takes it back; the device keeps
 * its write permission (block-backend defers the unshare) and the message is harmless.
 * The agents drive the steps (src/cluster/agent-migrate.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { vmRuntimeFiles } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { diskId } from '../qemu/argv.js';
import type { VmSpec } from '../definition/vm.js';
import type { MigDisk } from './etcd.js';
import { localDisks } from './placement.js';

type QueryBlock = {
  device: string;
  inserted?: {
    file: string;
    'node-name'?: string;
    drv: string;
    image?: { 'virtual-size': number; 'actual-size'?: number; format: string; 'backing-filename'?: string; snapshots?: unknown[]; 'format-specific'?: { data?: { 'cluster-size'?: number } }; 'cluster-size'?: number };
  };
}[];
type BlockJob = { device: string; type: string; len: number; offset: number; ready: boolean; status: string; 'io-status'?: string };

export const NBD_NODE = (id: string) => `kvmctl-mig-nbd-${id}`;
export const MIRROR_JOB = (id: string) => `kvmctl-mig-${id}`;
const EXPORT_ID = (id: string) => `kvmctl-mig-${id}`;
export const MIRROR_GRANULARITY = 1 << 20;
export const MIRROR_BUF = 64 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withQmp<T>(paths: Paths, name: string, fn: (c: QmpClient) => Promise<T>): Promise<T> {
  const c = await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 5000 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/**
 * Source: the VM's disks that must be copied (not on shared storage), as the running QEMU has them
 * open, after checking that no vCPU was plugged since the start (the destination could not take it);
 * refused too: a disk with snapshots (the copy would be one flat image, the chain would stay
 * behind), and formats kvmctl cannot create on the destination.
 */
export async function describeLocalDisks(paths: Paths, vm: VmSpec, shared: string[]): Promise<MigDisk[]> {
  // vCPUs plugged since the start (kvmctl cpu set) would be missing on the destination, which
  // starts with cpu.count: QEMU would refuse the stream half-way.
  const cpus = await withQmp(paths, vm.name, (c) => c.execute<unknown[]>('query-cpus-fast'));
  if (cpus.length !== vm.cpu.count)
    throw new KvmError('MIGRATION_REFUSED', `VM "${vm.name}" runs ${cpus.length} vCPUs but its definition starts ${vm.cpu.count}: the destination could not take the plugged ones`, { exit: 2, hint: `kvmctl cpu set ${vm.name} ${vm.cpu.count} first, or set cpu.count to ${cpus.length} and restart it` });
  const local = new Set(localDisks(vm, shared));
  const wanted = vm.disks.map((d, i) => ({ d, id: diskId(d, i) })).filter(({ d }) => d.file !== undefined && local.has(d.file));
  if (!wanted.length) return [];
  const blocks = await withQmp(paths, vm.name, (c) => c.execute<QueryBlock>('query-block'));
  return wanted.map(({ d, id }) => {
    const b = blocks.find((x) => x.device === id)?.inserted;
    if (!b?.image) throw new KvmError('MIGRATION_REFUSED', `disk ${id}: the running QEMU has no image open for it`, { exit: 2 });
    const img = b.image;
    if (img['backing-filename'] || (img.snapshots?.length ?? 0) > 0)
      throw new KvmError('MIGRATION_REFUSED', `disk ${id} (${b.file}) has ${img['backing-filename'] ? `a backing file or snapshot overlay (${img['backing-filename']})` : 'internal snapshots'}: a live copy would be one flat image and leave the snapshots behind`, {
        exit: 2,
        hint: `merge or delete its snapshots first (kvmctl snapshot list ${vm.name}), or stop the VM and move it with its files`,
      });
    if (img.format !== 'qcow2' && img.format !== 'raw') throw new KvmError('MIGRATION_REFUSED', `disk ${id} is a ${img.format} image; a live copy makes raw or qcow2 images only`, { exit: 2, hint: 'convert it (kvmctl disk convert) with the VM stopped' });
    const cluster = img['format-specific']?.data?.['cluster-size'] ?? img['cluster-size'];
    return { id, file: d.file!, format: img.format, size: img['virtual-size'], ...(img['actual-size'] !== undefined ? { allocated: img['actual-size'] } : {}), ...(img.format === 'qcow2' && cluster ? { clusterSize: cluster } : {}) };
  });
}

/**
 * Destination: a fresh, empty image per disk at the path the definition names. An existing file is
 * never replaced (it may be an older copy someone still needs). Returns the files it made; on
 * failure half-way, those are removed again.
 */
export async function createTargetImages(disks: MigDisk[], paths: Paths): Promise<string[]> {
  const { createImage } = await import('../disk/images.js');
  const { freeBytes, fmtBytes } = await import('../disk/safety.js');
  // The copy writes what the source has allocated: refuse up front rather than fill the disk half-way.
  const byDir = new Map<string, number>();
  for (const d of disks) {
    const dir = path.dirname(path.resolve(paths.images, d.file));
    byDir.set(dir, (byDir.get(dir) ?? 0) + (d.allocated ?? d.size));
  }
  for (const [dir, need] of byDir) {
    let probe = dir;
    while (!fs.existsSync(probe)) probe = path.dirname(probe);
    const free = freeBytes(probe);
    if (need > free) throw new KvmError('DISK_FULL', `the disk copies need ${fmtBytes(need)} in ${dir} but this host has ${fmtBytes(free)} free there`, { exit: 2, hint: 'free space on the destination, or pick another host' });
  }
  const made: string[] = [];
  try {
    for (const d of disks) {
      const abs = path.resolve(paths.images, d.file);
      if (fs.existsSync(abs))
        throw new KvmError('MIGRATION_REFUSED', `disk ${d.id}: ${abs} already exists on this host`, { exit: 2, hint: 'kvmctl never overwrites a disk: move that file away (an older copy of this VM?) and migrate again' });
      await createImage({ path: abs, size: d.size, format: d.format, mkdirs: true, clusterSize: d.clusterSize });
      made.push(abs);
    }
    return made;
  } catch (e) {
    for (const f of made) fs.rmSync(f, { force: true });
    throw e;
  }
}

/** Destination: serve each disk of the incoming QEMU over NBD on `host:port`, writable. */
export async function exportDisks(paths: Paths, name: string, disks: MigDisk[], host: string, port: number): Promise<void> {
  await withQmp(paths, name, async (c) => {
    const blocks = await c.execute<QueryBlock>('query-block');
    await c.execute('nbd-server-start', { addr: { type: 'inet', data: { host, port: String(port) } } });
    for (const d of disks) {
      const node = blocks.find((b) => b.device === d.id)?.inserted?.['node-name'];
      if (!node) throw new KvmError('MIGRATION_FAILED', `disk ${d.id}: the incoming QEMU has no block node for it`);
      await c.execute('block-export-add', { type: 'nbd', id: EXPORT_ID(d.id), 'node-name': node, name: d.id, writable: true });
    }
  });
}

/** Destination: the guest runs here now; end the NBD server (and its exports). */
export async function stopExports(paths: Paths, name: string): Promise<void> {
  const { qmpOnce } = await import('../vm/qmp-once.js');
  await qmpOnce(vmRuntimeFiles(paths, name).qmp, 'nbd-server-stop').catch(() => undefined);
}

export type MirrorProgress = { disks: { id: string; offset: number; len: number; ready: boolean }[] };

/**
 * Source: start one mirror per disk into the destination's NBD exports and wait until every one is
 * ready (source and target in sync, guest writes mirrored as they happen). `speed`: bytes/s per job.
 */
export async function mirrorDisks(c: QmpClient, disks: MigDisk[], nbd: { host: string; port: number }, o: { speed?: number; timeoutMs: number; onProgress: (p: MirrorProgress) => void; cancelled?: () => string | undefined }): Promise<void> {
  for (const d of disks) {
    await c.execute('blockdev-add', { driver: 'nbd', 'node-name': NBD_NODE(d.id), server: { type: 'inet', host: nbd.host, port: String(nbd.port) }, export: d.id });
    // 1 MiB dirty granularity and 64 MiB in flight: twice the throughput of QEMU's defaults (the
    // image's cluster size, 16 MiB) over NBD here (measured in BENCHMARKS.md); a guest write after
    // the first pass then re-sends its 1 MiB, which the switch-over's short pause absorbs.
    await c.execute('blockdev-mirror', { 'job-id': MIRROR_JOB(d.id), device: d.id, target: NBD_NODE(d.id), sync: 'full', granularity: MIRROR_GRANULARITY, 'buf-size': MIRROR_BUF, ...(o.speed ? { speed: o.speed } : {}), 'auto-dismiss': false });
  }
  const end = Date.now() + o.timeoutMs;
  for (;;) {
    const jobs = await mirrorJobs(c, disks);
    o.onProgress({ disks: disks.map((d) => ({ id: d.id, offset: jobs.get(d.id)?.offset ?? 0, len: jobs.get(d.id)?.len ?? d.size, ready: !!jobs.get(d.id)?.ready })) });
    const gone = disks.filter((d) => !jobs.has(d.id) || jobs.get(d.id)!.status === 'concluded' || jobs.get(d.id)!.status === 'aborting');
    if (gone.length) throw new KvmError('MIGRATION_FAILED', `copying disk ${gone.map((d) => d.id).join(', ')} to the destination failed${await jobError(c, gone[0]!.id)}`, { hint: 'the VM keeps running here; is the destination host (its QEMU, its network) still up?' });
    if (disks.every((d) => jobs.get(d.id)!.ready)) return;
    const by = o.cancelled?.();
    if (by) throw new KvmError('MIGRATION_FAILED', `the disk copy was cancelled (asked by ${by})`, { hint: 'the VM keeps running here on its own disks' });
    if (Date.now() > end) throw new KvmError('MIGRATION_TIMEOUT', `the disk copy was not in sync within ${Math.round(o.timeoutMs / 1000)} s`, { hint: 'the guest writes faster than the link copies, or the link is slow; --bwlimit caps the copy, --timeout gives it longer' });
    await sleep(200);
  }
}

async function mirrorJobs(c: QmpClient, disks: MigDisk[]): Promise<Map<string, BlockJob>> {
  const all = await c.execute<BlockJob[]>('query-block-jobs');
  return new Map(disks.flatMap((d) => all.filter((j) => j.device === MIRROR_JOB(d.id)).map((j) => [d.id, j] as const)));
}

async function jobError(c: QmpClient, id: string): Promise<string> {
  const jobs = await c.execute<{ id: string; status: string; error?: string }[]>('query-jobs').catch(() => []);
  const e = jobs.find((j) => j.id === MIRROR_JOB(id))?.error;
  return e ? `: ${e}` : '';
}

/**
 * Source, guest paused at pre-switchover: end every ready mirror with its target in sync
 * (block-job-cancel on a ready mirror does not pivot: the source stays the VM's disk), wait until
 * each concluded without an error, dismiss them.
 */
export async function completeMirrors(c: QmpClient, disks: MigDisk[], timeoutMs = 30_000): Promise<void> {
  for (const d of disks) await c.execute('block-job-cancel', { device: MIRROR_JOB(d.id) });
  const end = Date.now() + timeoutMs;
  for (;;) {
    const jobs = await c.execute<{ id: string; status: string; error?: string }[]>('query-jobs');
    const mine = disks.map((d) => jobs.find((j) => j.id === MIRROR_JOB(d.id)));
    const failed = mine.find((j) => j?.status === 'concluded' && j.error);
    if (failed) throw new KvmError('MIGRATION_FAILED', `the last writes to disk ${failed.id.replace('kvmctl-mig-', '')} did not reach the destination: ${failed.error}`, { hint: 'the VM keeps running here' });
    if (mine.every((j) => !j || j.status === 'concluded' || j.status === 'null')) break;
    if (Date.now() > end) throw new KvmError('MIGRATION_TIMEOUT', `the disk mirrors did not finish within ${timeoutMs / 1000} s of the switch-over`, { hint: 'the VM keeps running here' });
    await sleep(20);
  }
  for (const d of disks) await c.execute('job-dismiss', { id: MIRROR_JOB(d.id) }).catch(() => undefined);
}

/** Source, after a failure: stop the copies and drop the NBD client nodes; the VM's own disks are untouched. */
export async function abortMirrors(c: QmpClient, disks: MigDisk[]): Promise<void> {
  for (const d of disks) await c.execute('block-job-cancel', { device: MIRROR_JOB(d.id), force: true }).catch(() => undefined);
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    const jobs = await c.execute<{ id: string; status: string }[]>('query-jobs').catch(() => []);
    const mine = jobs.filter((j) => disks.some((d) => j.id === MIRROR_JOB(d.id)));
    for (const j of mine.filter((x) => x.status === 'concluded')) await c.execute('job-dismiss', { id: j.id }).catch(() => undefined);
    if (!mine.some((j) => j.status !== 'concluded')) break;
    await sleep(50);
  }
  for (const d of disks) await c.execute('blockdev-del', { 'node-name': NBD_NODE(d.id) }).catch(() => undefined);
}
