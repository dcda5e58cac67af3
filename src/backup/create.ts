/**
 * `kvmctl backup create VM`: every writable disk of a VM, at one point in time, into a repository
 * (see repo.ts), through QEMU block jobs — the VM's own QEMU when it runs, qemu-storage-daemon when
 * it is stopped. Incrementals copy what the disk's persistent dirty bitmap marks; a backup is full
 * (and says why) whenever that bitmap could be wrong:
 *   - no earlier backup in this repository, or the last one went to another repository;
 *   - the previous backup did not finish (its bitmaps may be cleared on some disks only);
 *   - the newest backup in the repository is not the one the bitmaps count from;
 *   - a disk has no bitmap of this generation (new disk, external snapshot, image replaced),
 *     or QEMU marks it inconsistent (QEMU did not exit cleanly: kill -9, a crash, a host reboot).
 * The VM's record of this (<data>/vms/VM/backup.json) is written before the jobs start (write-ahead)
 * and completed after the backup is in place.
 * RBD volume disks (volumes.ts) go through the same jobs; their bitmap is non-persistent (RBD
 * images cannot hold QEMU's persistent bitmaps), so it exists only in the QEMU that made it. Each
 * backup also leaves an RBD snapshot (an anchor, storage/anchors.ts) taken just before its point in
 * time; when the bitmap is gone, the next backup rebuilds it from `rbd diff` since that anchor
 * (rbd-diff.ts). Each disk's manifest entry says which way it went (`via`: bitmap, rbd-diff, full).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import { vmRuntimeFiles, vmStateDir, type Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { defPath, readVm } from '../definition/store.js';
import { withVmLock } from '../vm/lock.js';
import { nvramPath } from '../vm/runtime-paths.js';
import { readJson, writeJson } from '../vm/state.js';
import { vmStatus } from '../vm/status.js';
import { activeDisks, type ActiveDisk } from '../vm/storage.js';
import { addTarget, bitmapName, diskNodes, dropStaleBitmaps, removeTarget, runBackupJobs, type DiskJob, type DiskNode } from './jobs.js';
import { backupDir, fileSha256, listBackups, newBackupId, resolveRepo, vmRepoDir, writeManifest, type Manifest, type ManifestDisk } from './repo.js';
import { contentSha256 } from './sums.js';
import { anchorName } from '../storage/anchors.js';
import { daemonVolumes, refuseOpenVolumes, volumeDisks, volumeRef, type VolumeDisk } from './volumes.js';
import { currentTask, taskLog, taskProgress, taskSignal } from '../tasks/current.js';

/** How a disk's changes were found: QEMU's dirty bitmap, RBD's diff since the previous anchor (the bitmap was gone), or none (a full copy). */
export type Via = 'bitmap' | 'rbd-diff' | 'full';
export type BackupState = { format: 1; repo: string; last?: string; generation?: string; inProgress?: string };
const stateFile = (paths: Paths, vm: string) => path.join(vmStateDir(paths, vm), 'backup.json');
export const readBackupState = (paths: Paths, vm: string) => readJson<BackupState>(stateFile(paths, vm));
export function writeBackupState(paths: Paths, vm: string, s: BackupState): void {
  fs.mkdirSync(vmStateDir(paths, vm), { recursive: true });
  writeJson(stateFile(paths, vm), s);
}

/** `netns`: where Ceph is reachable (a stopped VM's RBD volumes are opened there, as its QEMU would). */
export type CreateOptions = { to?: string; mode?: 'auto' | 'full' | 'incremental'; noFreeze?: boolean; netns?: string; onProgress?: (done: number, total: number) => void; /** Bytes per second per disk (QEMU's block job speed); unlimited when absent. */ bwlimit?: number };
export type CreateResult = { repo: string; dir: string; manifest: Manifest; bytes: number; reason?: string };

/**
 * Why this backup cannot be incremental, or undefined (pure given its inputs; unit-tested).
 * A disk's format 'rbd' is an RBD volume: its bitmap is non-persistent (only in the QEMU that made it).
 */
export function fullReason(
  o: { mode: 'auto' | 'full' | 'incremental'; repo: string; state?: BackupState; prev?: Manifest },
  disks: { id: string; format: string; node?: DiskNode; /** RBD: the previous backup's anchor snapshot, when the volume still has it. */ anchor?: string }[],
): string | undefined {
  if (o.mode === 'full') return 'a full backup was asked for';
  const { state, prev } = o;
  if (!prev) return `no earlier backup of this VM in ${o.repo}`;
  if (!state?.generation) return 'kvmctl has no record of the dirty bitmaps of this VM';
  if (state.repo !== o.repo) return `the bitmaps count from the last backup to ${state.repo}, not ${o.repo}`;
  if (state.inProgress) return `the previous backup (${state.inProgress}) did not finish, so the bitmaps may be cleared on some disks only`;
  if (state.last !== prev.id || prev.generation !== state.generation) return `the newest backup in the repository (${prev.id}) is not the one the bitmaps count from (${state.last ?? 'none'})`;
  const bm = bitmapName(state.generation);
  for (const d of disks) {
    if (d.format !== 'qcow2' && d.format !== 'rbd') continue; // raw files are always copied whole (no persistent bitmap on raw)
    if (!prev.disks.some((x) => x.id === d.id)) return `disk ${d.id} is new since ${prev.id}`;
    const b = d.node?.bitmaps.find((x) => x.name === bm);
    if (d.format === 'rbd' && !b && d.anchor) continue; // rebuilt from rbd diff since the anchor
    if (d.format === 'rbd' && !b)
      return `disk ${d.id} is an RBD volume: RBD images cannot hold QEMU's persistent dirty bitmaps, so its bitmap ${bm} lived only in the QEMU that made backup ${prev.id}, and the QEMU running now has none (the VM was started or migrated since, or that backup was of the stopped VM); and the volume no longer has the snapshot ${anchorName(prev.id)} that rbd diff would count from (removed, rolled back, or the volume replaced)`;
    if (!b) return `disk ${d.id} carries no dirty bitmap ${bm} (a new image, an external snapshot, or a restore since ${prev.id})`;
    if (b.inconsistent) return `the dirty bitmap of disk ${d.id} is inconsistent: QEMU did not exit cleanly (kill -9, a crash, a host reboot) since ${prev.id}`;
  }
  return undefined;
}

export async function createBackup(paths: Paths, name: string, o: CreateOptions = {}): Promise<CreateResult> {
  const vm = readVm(paths, name);
  const repo = resolveRepo(paths, o.to);
  return withVmLock(paths, name, async () => {
    const t0 = Date.now();
    const st = await vmStatus(paths, name, { lockHeld: true });
    if (st.state === 'starting' || st.state === 'stopping') throw new KvmError('VM_BUSY', `VM "${name}" is ${st.state}`, { hint: 'try again in a moment' });
    const up = st.state === 'running' || st.state === 'paused';
    const all = activeDisks(paths, vm);
    const chosen = all.filter((a) => !a.disk.readOnly);
    const allVols = volumeDisks(vm);
    const vols = allVols.filter((v) => !v.readOnly);
    if (!chosen.length && !vols.length) throw badInput('BACKUP_NOTHING', `VM "${name}" has no writable disk to back up`);
    for (const a of chosen) if (!fs.existsSync(a.top)) throw badInput('DISK_NOT_FOUND', `disk ${a.id} of VM "${name}": ${a.top} does not exist`, 'start the VM once (it creates its disks), or fix the definition');
    if (!up) await refuseOpenVolumes(paths, name, vols, o.netns);
    const skipped = [...all.filter((a) => a.disk.readOnly).map((a) => ({ id: a.id, why: 'read-only' })), ...allVols.filter((v) => v.readOnly).map((v) => ({ id: v.id, why: 'read-only' }))];
    const state = readBackupState(paths, name);
    const prev = listBackups(repo, name).at(-1);
    const vmDir = vmRepoDir(repo, name);
    fs.mkdirSync(vmDir, { recursive: true });
    const id = newBackupId(vmDir);
    const partial = path.join(vmDir, `.${id}.partial`);

    let daemon: Awaited<ReturnType<typeof import('./storage-daemon.js').openStorageDaemon>> | undefined;
    if (!up) {
      const dv = await daemonVolumes(paths, vm, vols);
      const files = chosen.map((a) => ({ id: a.id, file: a.top, format: a.topFormat }));
      daemon = await (await import('./storage-daemon.js')).openStorageDaemon(paths, name, [...files, ...dv.disks], { netns: o.netns, keyFiles: dv.keyFiles });
    }
    let q: QmpClient | undefined = daemon?.q;
    const targets: string[] = [];
    const madeAnchors: VolumeDisk[] = [];
    try {
      q ??= await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 5_000 });
      // File disks of a running VM are -drives (found by device); volume disks are -blockdev nodes named by the disk id.
      const volIds = new Set(vols.map((v) => v.id));
      const nodes = await diskNodes(q, [...chosen.map((a) => a.id), ...vols.map((v) => v.id)], { byDevice: (id) => up && !volIds.has(id) });
      const anchors = await import('../storage/anchors.js');
      const c = { paths, netns: o.netns };
      // The previous backup's anchor on each volume, when it is still there.
      const prevAnchor = async (v: (typeof vols)[number]) => (prev && (await anchors.listAnchors(c, v.storage, v.volume)).includes(anchorName(prev.id)) ? anchorName(prev.id) : undefined);
      const facts: { id: string; format: string; node: DiskNode; anchor?: string; vol?: (typeof vols)[number] }[] = [...chosen.map((a) => ({ id: a.id, format: a.topFormat, node: nodes.get(a.id)! }))];
      for (const v of vols) {
        const node = nodes.get(v.id)!;
        const hasBitmap = !!state?.generation && node.bitmaps.some((b) => b.name === bitmapName(state.generation!));
        facts.push({ id: v.id, format: 'rbd', node, anchor: hasBitmap ? undefined : await prevAnchor(v), vol: v });
      }
      const reason = fullReason({ mode: o.mode ?? 'auto', repo, state, prev }, facts);
      const full = reason !== undefined;
      const generation = full ? crypto.randomBytes(6).toString('hex') : state!.generation!;
      const via = (f: (typeof facts)[number]): Via => (full || (f.format !== 'qcow2' && f.format !== 'rbd') ? 'full' : f.node.bitmaps.some((b) => b.name === bitmapName(generation)) ? 'bitmap' : 'rbd-diff');
      fs.mkdirSync(partial);
      // Write-ahead: until this backup is in place, the next one must not trust the bitmaps.
      writeBackupState(paths, name, { format: 1, repo, ...(state?.repo === repo ? { last: state.last, generation: state.generation } : {}), inProgress: id });
      // RBD disks: a bitmap rebuilt from rbd diff (rbd-diff.ts; the bitmap first, then the anchor),
      // and every volume's new anchor, taken before the point in time below.
      const marked = new Map<string, number>();
      for (const f of facts.filter((x) => x.vol && via(x) === 'rbd-diff')) await q.execute('block-dirty-bitmap-add', { node: f.node.node, name: bitmapName(generation), persistent: false });
      for (const f of facts.filter((x) => x.vol)) {
        await anchors.makeAnchor(c, f.vol!.storage, f.vol!.volume, anchorName(id));
        madeAnchors.push(f.vol!);
      }
      for (const f of facts.filter((x) => x.vol && via(x) === 'rbd-diff')) {
        const extents = await anchors.changedExtents(c, f.vol!.storage, f.vol!.volume, f.anchor!, anchorName(id));
        marked.set(f.id, await (await import('./rbd-diff.js')).markExtents(q, { diskId: f.id, node: f.node.node, bitmap: bitmapName(generation), extents, virtualSize: f.node.virtualSize, dir: partial }));
      }
      const jobs: DiskJob[] = [];
      const { qemuImg } = await import('../disk/qemu-img.js');
      for (const f of facts) {
        const file = `${f.id}.qcow2`;
        const target = path.join(partial, file);
        const incremental = !full && (f.format === 'qcow2' || f.format === 'rbd');
        const backing = incremental ? `../${prev!.id}/${file}` : undefined;
        await qemuImg(['create', '-f', 'qcow2', ...(backing ? ['-b', backing, '-F', 'qcow2'] : []), target, String(f.node.virtualSize)], target);
        if ((f.format === 'qcow2' || f.format === 'rbd') && full) await dropStaleBitmaps(q, f.node.node, f.node.bitmaps);
        const mode = incremental ? 'incremental' : f.format === 'qcow2' ? 'full' : f.format === 'rbd' ? 'full-volatile' : 'full-no-bitmap';
        jobs.push({ id: f.id, node: f.node.node, target: await addTarget(q, f.id, target), mode, bitmap: bitmapName(generation), ...(o.bwlimit ? { speed: o.bwlimit } : {}) });
        targets.push(f.id);
      }
      // With a guest agent the filesystems are frozen for the instant the jobs start (application-consistent).
      const freeze = !up || o.noFreeze ? undefined : await (await import('../vm/guest-agent.js')).freezeIfAgent(vm, vmRuntimeFiles(paths, name).dir);
      const thaw = async () => void (await freeze?.thaw().catch(() => undefined));
      const tJobs = Date.now();
      taskLog(`backup ${id}: ${full ? `full (${reason})` : `incremental on ${prev!.id}`}, disks ${facts.map((f) => `${f.id} (${via(f)}${marked.has(f.id) ? `: ${marked.get(f.id)} bytes changed since ${f.anchor}` : ''})`).join(', ')}${freeze ? ', guest filesystems frozen' : ''}`);
      // Inside an API task: the block jobs' progress is the task's (the first 90 %; checksums follow).
      const onProgress = o.onProgress ?? (currentTask() ? (done: number, total: number) => taskProgress((90 * done) / total) : undefined);
      // Cancellable from here on (the task's Cancel → block-job-cancel; the partial copy is removed below).
      await runBackupJobs(q, jobs, { onProgress, started: thaw, signal: taskSignal() });
      const jobMs = Date.now() - tJobs;
      taskLog(`block jobs done in ${jobMs} ms; checking the copies' content sums`);
      for (const t of targets.splice(0)) await removeTarget(q, t);
      if (daemon) await daemon.close(); // stores the bitmaps in the images
      else await q.close().catch(() => undefined);
      q = undefined;

      const disks: ManifestDisk[] = [];
      const tSums = Date.now();
      for (const f of facts) {
        const file = `${f.id}.qcow2`;
        const target = path.join(partial, file);
        const job = jobs.find((j) => j.id === f.id)!;
        const a = chosen.find((x) => x.id === f.id) as ActiveDisk | undefined;
        const v = vols.find((x) => x.id === f.id);
        disks.push({
          id: f.id,
          file,
          source: a ? a.base : volumeRef(v!),
          format: a ? a.baseFormat : 'raw',
          ...(v ? { volume: volumeRef(v) } : {}),
          kind: job.mode === 'incremental' ? 'incremental' : 'full',
          via: via(f),
          ...(v ? { anchor: anchorName(id) } : {}),
          ...(marked.has(f.id) ? { diffBytes: marked.get(f.id) } : {}),
          ...(job.mode === 'incremental' ? { backing: `../${prev!.id}/${file}` } : {}),
          virtualSize: f.node.virtualSize,
          fileSize: fs.statSync(target).blocks * 512,
          sha256: await contentSha256(target, partial),
          ...(job.mode === 'full-no-bitmap' && !full ? { fullBecause: `${f.format} image: no persistent dirty bitmap, copied whole` } : {}),
        });
      }
      const manifest: Manifest = {
        format: 1,
        id,
        vm: name,
        createdAt: new Date(t0).toISOString(),
        kind: disks.some((d) => d.kind === 'incremental') ? 'incremental' : 'full',
        ...(disks.some((d) => d.kind === 'incremental') ? { parent: prev!.id } : {}),
        generation,
        vmState: st.state,
        frozen: !!freeze?.frozen,
        ...(up ? (freeze?.note ? { note: freeze.note } : o.noFreeze ? { note: 'not frozen (--no-freeze)' } : {}) : { note: 'the VM was stopped: its disks were at rest' }),
        disks,
        skipped,
        durationMs: 0,
        jobMs,
        sumMs: Date.now() - tSums,
      };
      fs.copyFileSync(defPath(paths, 'vm', name), path.join(partial, 'vm.yaml'));
      const nv = nvramPath(paths, vm);
      // Whatever state the VM has (its profile may imply UEFI and a TPM): kvmctl makes these files only for VMs that use them.
      if (fs.existsSync(nv)) {
        fs.copyFileSync(nv, path.join(partial, 'nvram.fd'));
        manifest.nvram = { file: 'nvram.fd', sha256: await fileSha256(path.join(partial, 'nvram.fd')) };
      }
      const tpm = path.join(vmStateDir(paths, name), 'tpm');
      const tpmFile = vm.tpm ? vm.tpm.state : undefined;
      if (tpmFile && fs.existsSync(tpmFile)) {
        // File-backed TPM state (a Proxmox tpmstate volume): the blob itself.
        fs.mkdirSync(path.join(partial, 'tpm'), { recursive: true });
        fs.copyFileSync(tpmFile, path.join(partial, 'tpm', 'state.bin'));
        manifest.tpm = { dir: 'tpm', files: { 'state.bin': await fileSha256(path.join(partial, 'tpm', 'state.bin')) }, stateFile: tpmFile };
      } else if (fs.existsSync(tpm) && fs.readdirSync(tpm).length) {
        fs.cpSync(tpm, path.join(partial, 'tpm'), { recursive: true });
        const files: Record<string, string> = {};
        for (const f of fs.readdirSync(path.join(partial, 'tpm'))) if (fs.statSync(path.join(partial, 'tpm', f)).isFile()) files[f] = await fileSha256(path.join(partial, 'tpm', f));
        manifest.tpm = { dir: 'tpm', files };
      }
      manifest.durationMs = Date.now() - t0;
      writeManifest(partial, manifest);
      fs.renameSync(partial, backupDir(repo, name, id));
      writeBackupState(paths, name, { format: 1, repo, last: id, generation });
      // Only the newest anchor is needed; an older one left behind (a failure here) goes at the next backup, prune or volume rm.
      for (const v of madeAnchors) await anchors.dropAnchors(c, v.storage, v.volume, { keep: anchorName(id) }).catch((e) => taskLog(`could not remove older backup anchors of ${volumeRef(v)}: ${(e as Error).message}`));
      return { repo, dir: backupDir(repo, name, id), manifest, bytes: disks.reduce((s, d) => s + d.fileSize, 0), ...(reason ? { reason } : {}) };
    } catch (e) {
      if (q) for (const t of targets) await removeTarget(q, t);
      if (daemon && q) await daemon.close().catch(() => undefined); // a running VM's connection closes in finally
      fs.rmSync(partial, { recursive: true, force: true });
      const { dropAnchors } = await import('../storage/anchors.js');
      for (const v of madeAnchors) await dropAnchors({ paths, netns: o.netns }, v.storage, v.volume, { only: anchorName(id) }).catch(() => undefined);
      throw e;
    } finally {
      if (q && !daemon) await q.close().catch(() => undefined);
    }
  });
}
