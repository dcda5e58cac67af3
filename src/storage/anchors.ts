/**
 * Backup anchors on RBD volumes (issue #21, docs/backup.md "RBD volumes"): every backup of an RBD
 * disk takes an RBD snapshot `kvmctl-bk-<BACKUP-ID>` of the volume just before the backup's point in
 * time, and keeps only the newest one. When the QEMU that holds the in-memory dirty bitmap is gone
 * (a restart, a migration, a stopped-VM backup), `rbd diff --from-snap ANCHOR` lists what changed
 * since — a superset of what changed since that backup's point in time, because the anchor is older.
 *
 * The anchors are kvmctl's own bookkeeping, never a restore source (the backups in the repository
 * are complete without them), so kvmctl removes them by itself: a newer backup replaces them,
 * pruning the backup removes its anchor, and `volume rm`, a rollback and a restore over the volume
 * drop them (they would otherwise block the removal, or describe an image that is no longer there).
 * A user cannot make a snapshot with the reserved prefix.
 */
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { readRbdStorage } from './defs.js';
import { imageSpec, rbdRun, type RbdTarget } from './rbd.js';

export const ANCHOR_PREFIX = 'kvmctl-bk-';
export const anchorName = (backupId: string) => `${ANCHOR_PREFIX}${backupId}`;
export const isAnchor = (snap: string) => snap.startsWith(ANCHOR_PREFIX);

/** Refuse a user snapshot name with the reserved prefix. */
export function refuseAnchorName(snap: string | undefined): void {
  if (snap && isAnchor(snap)) throw badInput('SNAPSHOT_NAME_RESERVED', `snapshot names starting with "${ANCHOR_PREFIX}" are kvmctl's backup anchors`, 'pick another name');
}

type Ctx = { paths: Paths; netns?: string };
export type Extent = { offset: number; length: number };

async function target(c: Ctx, storage: string): Promise<RbdTarget & { spec: (v: string, s?: string) => string }> {
  const s = await readRbdStorage(c.paths, storage);
  return { storage: s, netns: c.netns, spec: (v, snap) => imageSpec(s, v, snap) };
}

async function snapNames(t: Awaited<ReturnType<typeof target>>, volume: string): Promise<string[]> {
  return (JSON.parse(await rbdRun(t, ['snap', 'ls', '--format', 'json', t.spec(volume)], { what: `volume ${t.storage.name}/${volume}` })) as { name: string }[]).map((x) => x.name);
}

/** The volume's anchors, oldest first (their names sort by backup id). */
export async function listAnchors(c: Ctx, storage: string, volume: string): Promise<string[]> {
  return (await snapNames(await target(c, storage), volume)).filter(isAnchor).sort();
}

/**
 * `rbd snap create VOLUME@kvmctl-bk-ID`. While a VM runs, librbd hands the request to the lock
 * owner (the VM's QEMU), which flushes its cache first: the anchor holds every write the guest was
 * told is done.
 */
export async function makeAnchor(c: Ctx, storage: string, volume: string, snap: string): Promise<void> {
  const t = await target(c, storage);
  const create = () => rbdRun(t, ['snap', 'create', '--no-progress', t.spec(volume, snap)], { what: `backup anchor ${storage}/${volume}@${snap}` });
  try {
    await create();
  } catch (e) {
    // A stale anchor of that name (a backup of the same id in another repository): replace it.
    if ((e as { code?: string }).code !== 'VOLUME_EXISTS') throw e;
    await rbdRun(t, ['snap', 'rm', '--no-progress', t.spec(volume, snap)], { what: `backup anchor ${storage}/${volume}@${snap}` });
    await create();
  }
}

/** Remove the volume's anchors except `keep` (returns the removed names). */
export async function dropAnchors(c: Ctx, storage: string, volume: string, o: { keep?: string; only?: string } = {}): Promise<string[]> {
  const t = await target(c, storage);
  const drop = (await snapNames(t, volume)).filter((n) => isAnchor(n) && n !== o.keep && (!o.only || n === o.only));
  for (const n of drop) await rbdRun(t, ['snap', 'rm', '--no-progress', t.spec(volume, n)], { what: `backup anchor ${storage}/${volume}@${n}` });
  return drop;
}

/**
 * What changed between two snapshots of a volume: `rbd diff --from-snap FROM VOLUME@TO`. Without
 * --whole-object librbd lists byte extents (an object that existed at FROM: the ranges written
 * since; a newer object: from its start to its end), zeroed/discarded ranges included ("exists":
 * false — they changed too). --whole-object would use the fast-diff object map (quicker on huge
 * images) but round every change up to the 4 MiB object.
 */
export async function changedExtents(c: Ctx, storage: string, volume: string, from: string, to: string): Promise<Extent[]> {
  const t = await target(c, storage);
  const rows = JSON.parse((await rbdRun(t, ['diff', '--from-snap', from, '--format', 'json', t.spec(volume, to)], { what: `rbd diff of ${storage}/${volume}`, timeoutMs: 3_600_000 })) || '[]') as { offset: number; length: number }[];
  return rows.map((r) => ({ offset: r.offset, length: r.length }));
}
