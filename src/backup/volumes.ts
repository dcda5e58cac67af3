/**
 * RBD volume disks in backups (issue #21, docs/backup.md "RBD volumes"). The copy goes through the
 * same QEMU block jobs as file disks (jobs.ts): the running VM's QEMU reads the volume's raw format
 * node (named by the disk id), or qemu-storage-daemon opens the volume for a stopped VM. What is
 * special about volumes lives here:
 *   - which disks are volumes, and the daemon's view of them (key files written for it, removed
 *     as soon as it runs);
 *   - a stopped VM's volume that any client has open (its VM runs on another host of the
 *     cluster) is refused: a copy read under another writer would be no point in time;
 *   - restore into volumes: each disk is written into a scratch volume first and swapped in by
 *     `rbd rename` only when every disk converted; a volume with snapshots or open by a client is
 *     never replaced.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import type { VmSpec } from '../definition/vm.js';
import { volumeDisks, type VolumeDisk } from '../storage/attach.js';
import type { DaemonDisk } from './storage-daemon.js';
import { isAnchor } from '../storage/anchors.js';

export { volumeDisks, type VolumeDisk };

export const volumeRef = (v: Pick<VolumeDisk, 'storage' | 'volume'>) => `${v.storage}/${v.volume}`;

/** A stopped VM's volumes must be closed everywhere (no watcher): else its VM runs elsewhere. */
export async function refuseOpenVolumes(paths: Paths, vm: string, vols: VolumeDisk[], netns?: string): Promise<void> {
  const { volumeState } = await import('../storage/volumes.js');
  for (const v of vols) {
    const st = await volumeState({ paths, netns }, v.storage, v.volume);
    if (!st.exists) throw badInput('VOLUME_NOT_FOUND', `disk ${v.id} of VM "${vm}": volume ${volumeRef(v)} does not exist`, `kvmctl volume list ${v.storage}`);
    if (st.watchers.length)
      throw badInput('VOLUME_IN_USE', `disk ${v.id} of VM "${vm}": volume ${volumeRef(v)} is open by ${st.watchers.join(', ')} although the VM is stopped here`, 'the VM runs on another host (or another client has the image open): back it up where it runs');
  }
}

/** The daemon's disks for the volumes, with the key files it reads (0600, removed once it runs). */
export async function daemonVolumes(paths: Paths, vm: VmSpec, vols: VolumeDisk[]): Promise<{ disks: DaemonDisk[]; keyFiles: string[] }> {
  if (!vols.length) return { disks: [], keyFiles: [] };
  const { resolveVolumes, writeKeys } = await import('../storage/attach.js');
  const dir = path.join(paths.run, 'backup', `${vm.name}.keys`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const r = await resolveVolumes(paths, vm, dir);
  const keyFiles = await writeKeys(r, dir);
  return { disks: vols.map((v) => ({ id: v.id, volume: r.volumes[v.id]! })), keyFiles };
}

export type VolumePlan = { id: string; chainTop: string; storage: string; volume: string; size: number; replaced: boolean };

/** Why a restore may not write this volume (empty: it may). */
export async function volumeRestoreProblems(paths: Paths, netns: string | undefined, vm: string, p: Omit<VolumePlan, 'replaced'>, force: boolean): Promise<{ problems: string[]; replaced: boolean }> {
  const [{ volumeState }, { vmsUsingStorage }] = await Promise.all([import('../storage/volumes.js'), import('../storage/defs.js')]);
  const st = await volumeState({ paths, netns }, p.storage, p.volume);
  const problems: string[] = [];
  const ref = volumeRef(p);
  const others = (await vmsUsingStorage(paths, p.storage, p.volume)).filter((u) => u.vm !== vm);
  if (others.length) problems.push(`disk ${p.id}: volume ${ref} is a disk of ${others.map((u) => `VM "${u.vm}"`).join(', ')} (even --force never writes another VM's disk)`);
  if (st.exists && !force) problems.push(`disk ${p.id}: volume ${ref} exists (kvmctl never overwrites a disk without --force)`);
  if (st.exists && st.watchers.length) problems.push(`disk ${p.id}: volume ${ref} is open by ${st.watchers.join(', ')} (a VM runs it, maybe on another host)`);
  // kvmctl's own backup anchors go with the replaced volume (the next backup is full).
  const snaps = st.snapshots.filter((s) => !isAnchor(s));
  if (st.exists && snaps.length) problems.push(`disk ${p.id}: volume ${ref} has snapshots (${snaps.join(', ')}); replacing it would drop them (remove them, or restore beside it with --as NEW)`);
  return { problems, replaced: st.exists };
}

/**
 * Write each chain into a new scratch volume of the disk's size; only when all converted, swap
 * them in (the old volume is renamed aside, the scratch renamed to its name, the old removed). A
 * failed conversion removes every scratch volume and leaves the old ones as they were.
 */
export async function restoreVolumes(paths: Paths, netns: string | undefined, plans: VolumePlan[]): Promise<void> {
  if (!plans.length) return;
  const v = await import('../storage/volumes.js');
  const c = { paths, netns };
  const scratch = (p: VolumePlan) => `${p.volume}.restore-${process.pid}`;
  const made: VolumePlan[] = [];
  try {
    for (const p of plans) {
      await v.createVolume(c, `${p.storage}/${scratch(p)}`, p.size);
      made.push(p);
      await v.convertIntoVolume(c, p.storage, scratch(p), p.chainTop, 'qcow2', { errorCode: 'RESTORE_FAILED' });
    }
  } catch (e) {
    for (const p of made) await v.removeVolume(c, `${p.storage}/${scratch(p)}`).catch(() => undefined);
    throw e;
  }
  for (const p of plans) {
    const old = `${p.volume}.old-${process.pid}`;
    if (p.replaced) await v.renameVolume(c, p.storage, p.volume, old);
    await v.renameVolume(c, p.storage, scratch(p), p.volume);
    if (p.replaced) await v.removeVolume(c, `${p.storage}/${old}`);
  }
}
