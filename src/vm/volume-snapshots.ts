/**
 * VM snapshots of a VM whose disks are RBD volumes (issue #21; `kvmctl snapshot VM NAME`,
 * `--revert`, `--rm`, `--list` and the API's snapshot routes, through src/vm/storage.ts): one RBD
 * snapshot NAME on every chosen volume (`rbd snap create`; while the VM runs, librbd hands the
 * request to the lock owner — this QEMU — which flushes its cache first, so the snapshot holds every
 * write the guest was told is done).
 *   - Consistency: with a guest agent that answers, the guest's filesystems are frozen around the
 *     snapshots (as for file disks); otherwise, when there are several volumes, the VM is paused
 *     (QMP stop drains and flushes every disk) so that all volumes are of one instant, and resumed
 *     right after; one volume needs no pause. The result says which.
 *   - All or nothing: a snapshot that fails on one volume is removed from the ones already made.
 *   - Revert: VM stopped here and no client has a volume open anywhere (checked on every volume
 *     before the first rollback); then `rbd snap rollback` of each.
 *   - A VM that mixes image files and volumes is refused (one snapshot would be two mechanisms at
 *     two instants); its volumes can be snapshotted one by one with kvmctl volume snapshot.
 * The snapshots are plain RBD snapshots: `kvmctl volume snapshot list` shows them too.
 */
import { KvmError, badInput } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import type { VmSpec } from '../definition/vm.js';
import { diskId } from '../qemu/argv.js';
import { volumeDisks, type VolumeDisk } from '../storage/attach.js';
import { withVmLock } from './lock.js';
import { vmStatus } from './status.js';

const ref = (v: VolumeDisk, snap?: string) => `${v.storage}/${v.volume}${snap ? `@${snap}` : ''}`;
const isUp = (state: string) => state === 'running' || state === 'paused';

/** True when the VM has volume disks (then every VM-level snapshot operation comes here). */
export function hasVolumeDisks(vm: Pick<VmSpec, 'disks'>): boolean {
  return volumeDisks(vm).length > 0;
}

function chosenVolumes(vm: VmSpec, ids?: string[]): VolumeDisk[] {
  const files = vm.disks.map((d, i) => ({ d, id: diskId(d, i) })).filter((x) => x.d.file !== undefined && !x.d.readOnly);
  const vols = volumeDisks(vm);
  if (ids?.length) {
    return ids.map((id) => {
      const v = vols.find((x) => x.id === id);
      if (!v) throw badInput('DISK_NOT_FOUND', `VM "${vm.name}" has no volume disk "${id}"`, `its volume disks: ${vols.map((x) => x.id).join(', ')}`);
      return v;
    });
  }
  if (files.length)
    throw badInput('VOLUME_DISK_MIXED', `VM "${vm.name}" has image-file disks (${files.map((x) => x.id).join(', ')}) and RBD volume disks (${vols.map((v) => v.id).join(', ')}): one VM snapshot cannot cover both at one instant`, 'snapshot the volumes with --disk ID (or kvmctl volume snapshot create STORAGE/VOLUME@NAME) and the files with kvmctl disk snapshot');
  const w = vols.filter((v) => !v.readOnly);
  if (!w.length) throw badInput('SNAPSHOT_NOTHING', `VM "${vm.name}" has no writable disk to snapshot`);
  return w;
}

export type VolumeSnapshotResult = { vm: string; name: string; mode: 'internal'; disks: { id: string; file: string }[]; frozen: boolean; paused?: boolean; note?: string };

export async function snapshotVolumeVm(paths: Paths, vm: VmSpec, snap: string, o: { disks?: string[]; noFreeze?: boolean; netns?: string } = {}): Promise<VolumeSnapshotResult> {
  const v = await import('../storage/volumes.js');
  const c = { paths, netns: o.netns };
  const chosen = chosenVolumes(vm, o.disks);
  (await import('../storage/anchors.js')).refuseAnchorName(snap);
  return withVmLock(paths, vm.name, async () => {
    const st = await vmStatus(paths, vm.name, { lockHeld: true });
    for (const d of chosen) {
      const snaps = await v.snapshotList(c, ref(d));
      if (snaps.some((s) => s.name === snap)) throw badInput('SNAPSHOT_EXISTS', `disk ${d.id} of VM "${vm.name}" (${ref(d)}) already has a snapshot "${snap}"`, 'pick another name');
    }
    const up = isUp(st.state);
    let frozen = false;
    let paused = false;
    let note: string | undefined = up ? undefined : 'the VM was stopped here: its volumes were at rest';
    let thaw = async () => undefined as void;
    const qmp = vmRuntimeFiles(paths, vm.name).qmp;
    const { qmpOnce } = await import('./qmp-once.js');
    if (up) {
      if (!o.noFreeze) {
        const f = await (await import('./guest-agent.js')).freezeIfAgent(vm, vmRuntimeFiles(paths, vm.name).dir);
        frozen = f.frozen;
        note = f.note;
        thaw = f.thaw;
      } else note = 'not frozen (--no-freeze)';
      if (!frozen && chosen.length > 1 && st.state === 'running') {
        // Several volumes without a freeze: one instant for all of them by pausing the guest (stop drains and flushes the disks).
        await qmpOnce(qmp, 'stop', undefined, 10_000);
        paused = true;
        note = `${note ?? 'not frozen'}; the VM was paused while its ${chosen.length} volumes were snapshotted (crash-consistent, one instant)`;
      }
    }
    const made: VolumeDisk[] = [];
    try {
      for (const d of chosen) {
        await v.snapshotCreateRaw(c, ref(d, snap));
        made.push(d);
      }
    } catch (e) {
      for (const d of made) await v.snapshotRemove(c, ref(d, snap)).catch(() => undefined);
      throw new KvmError('SNAPSHOT_FAILED', `VM "${vm.name}": snapshot "${snap}" failed: ${(e as Error).message}`, { hint: made.length ? `the ${made.length} snapshot(s) already made were removed again` : 'nothing was made; kvmctl storage check STORAGE', cause: e });
    } finally {
      if (paused) await qmpOnce(qmp, 'cont', undefined, 10_000).catch(() => undefined);
      await thaw().catch(() => undefined);
    }
    return { vm: vm.name, name: snap, mode: 'internal', disks: chosen.map((d) => ({ id: d.id, file: ref(d) })), frozen, ...(paused ? { paused } : {}), ...(note ? { note } : {}) };
  });
}

/** Every volume disk with its RBD snapshots (for `snapshot --list` and the API's list). */
export async function listVolumeVmSnapshots(paths: Paths, vm: VmSpec, netns?: string): Promise<{ id: string; base: string; top: string; external: never[]; internal: string[] }[]> {
  const v = await import('../storage/volumes.js');
  const out = [];
  // kvmctl's backup anchors (kvmctl-bk-ID) are no VM snapshots.
  for (const d of volumeDisks(vm)) out.push({ id: d.id, base: ref(d), top: ref(d), external: [] as never[], internal: (await v.snapshotList({ paths, netns }, ref(d))).filter((s) => !s.backupAnchor).map((s) => s.name) });
  return out;
}

/** Volumes of the VM that hold snapshot `snap` (refused when none does). */
async function holders(paths: Paths, vm: VmSpec, snap: string, netns?: string): Promise<VolumeDisk[]> {
  const v = await import('../storage/volumes.js');
  const hits: VolumeDisk[] = [];
  (await import('../storage/anchors.js')).refuseAnchorName(snap);
  for (const d of volumeDisks(vm)) if ((await v.snapshotList({ paths, netns }, ref(d))).some((s) => s.name === snap)) hits.push(d);
  if (!hits.length) throw badInput('SNAPSHOT_NOT_FOUND', `VM "${vm.name}" has no snapshot "${snap}" on any of its volumes`, `kvmctl snapshot ${vm.name} --list`);
  return hits;
}

export async function revertVolumeVm(paths: Paths, vm: VmSpec, snap: string, o: { netns?: string } = {}): Promise<{ vm: string; name: string; mode: 'internal'; disks: string[]; removed: string[] }> {
  const v = await import('../storage/volumes.js');
  const c = { paths, netns: o.netns };
  return withVmLock(paths, vm.name, async () => {
    const st = await vmStatus(paths, vm.name, { lockHeld: true });
    if (isUp(st.state)) throw badInput('VM_RUNNING', `cannot revert VM "${vm.name}" while it is ${st.state}`, `kvmctl stop ${vm.name} first`);
    const hits = await holders(paths, vm, snap, o.netns);
    const missing = volumeDisks(vm).filter((d) => !d.readOnly && !hits.some((x) => x.id === d.id));
    if (missing.length) throw badInput('SNAPSHOT_PARTIAL', `snapshot "${snap}" of VM "${vm.name}" is missing on ${missing.map((d) => `${d.id} (${ref(d)})`).join(', ')}: reverting only some disks would mix two times`, 'roll the volumes back one by one with kvmctl volume snapshot rollback if that is what you want');
    // Nothing is rolled back unless every volume is closed everywhere (a VM on another host).
    for (const d of hits) {
      const s = await v.volumeState(c, d.storage, d.volume);
      if (s.watchers.length) throw new KvmError('VOLUME_IN_USE', `disk ${d.id} of VM "${vm.name}": volume ${ref(d)} is open by ${s.watchers.join(', ')}`, { exit: 1, hint: 'the VM (or another client) has it open, maybe on another host: stop it first; nothing was rolled back' });
    }
    for (const d of hits) await v.snapshotRollback(c, ref(d, snap));
    return { vm: vm.name, name: snap, mode: 'internal', disks: hits.map((d) => d.id), removed: [] };
  });
}

export async function removeVolumeVmSnapshot(paths: Paths, vm: VmSpec, snap: string, o: { netns?: string } = {}): Promise<{ vm: string; name: string; disks: string[] }> {
  const v = await import('../storage/volumes.js');
  const c = { paths, netns: o.netns };
  return withVmLock(paths, vm.name, async () => {
    const hits = await holders(paths, vm, snap, o.netns);
    // Refused before anything is removed when a snapshot is the parent of linked clones.
    for (const d of hits) {
      const kids = await v.snapshotChildren(c, ref(d, snap));
      if (kids.length) throw badInput('SNAPSHOT_HAS_CLONES', `snapshot ${ref(d, snap)} (disk ${d.id}) is the parent of linked clones: ${kids.join(', ')}`, 'remove the clones first (or flatten them: rbd flatten); nothing was removed');
    }
    for (const d of hits) await v.snapshotRemove(c, ref(d, snap));
    return { vm: vm.name, name: snap, disks: hits.map((d) => d.id) };
  });
}
