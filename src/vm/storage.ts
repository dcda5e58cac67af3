/**
 * VM-level storage: external snapshots of a running VM's disks (QMP blockdev-snapshot-sync), the
 * chain of overlays each disk has grown, install media, CD-ROM eject/insert, the cloud-init seed.
 *
 * The snapshot chain: the definition's `file` stays the BASE (the YAML a person wrote is never
 * rewritten). Each external snapshot NAME freezes the current top layer (it becomes read-only
 * backing) and adds an overlay `<base>.NAME.qcow2` that receives the writes from then on. The
 * chain is recorded in `<data>/vms/VM/disks.json`, and `start` opens the top of the chain; `kvmctl
 * disk info --chain` on the top shows the same chain from the images themselves. The record is
 * written BEFORE QEMU makes the overlay (and rolled back if QEMU refuses), so a kvmctl killed in
 * between leaves at worst a recorded overlay that does not exist, which start skips with a warning.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { diskFormat, diskId } from '../qemu/argv.js';
import { QmpClient } from '../qmp/client.js';
import { listNames, readVm } from '../definition/store.js';
import type { DiskSpec, VmSpec } from '../definition/vm.js';
import { withVmLock } from './lock.js';
import { confinedPath } from './path-check.js';
import { readJson, writeJson } from './state.js';
import { vmStatus } from './status.js';
import { virtiofsSockets } from './virtiofs.js';

export type Overlay = { name: string; file: string; createdAt: string };
export type DiskChain = { base: string; overlays: Overlay[] };
type LayersFile = { format: 1; disks: Record<string, DiskChain> };

export function vmDataDir(paths: Paths, name: string): string {
  return path.join(paths.data, 'vms', name);
}
function layersPath(paths: Paths, name: string): string {
  return path.join(vmDataDir(paths, name), 'disks.json');
}
export function readLayers(paths: Paths, name: string): LayersFile {
  const f = readJson<LayersFile>(layersPath(paths, name));
  return f && f.format === 1 && f.disks ? f : { format: 1, disks: {} };
}
function writeLayers(paths: Paths, name: string, l: LayersFile): void {
  fs.mkdirSync(vmDataDir(paths, name), { recursive: true });
  writeJson(layersPath(paths, name), l);
}

export type ActiveDisk = { id: string; disk: DiskSpec; base: string; baseFormat: string; top: string; topFormat: string; overlays: Overlay[] };

/** Each disk of a VM with the layer QEMU must open (the top of its recorded chain, or its file). */
export function activeDisks(paths: Paths, vm: VmSpec, warnings: string[] = []): ActiveDisk[] {
  const rec = readLayers(paths, vm.name);
  // Volume disks (RBD) have no file layers: their snapshots are RBD snapshots (kvmctl volume snapshot).
  return vm.disks.flatMap((d, i) => (d.file === undefined ? [] : [{ d, i, file: d.file }])).map(({ d, i, file }) => {
    const id = diskId(d, i);
    const base = path.resolve(paths.images, file);
    const baseFormat = diskFormat(d);
    let overlays = rec.disks[id]?.overlays ?? [];
    if (overlays.length && rec.disks[id]!.base !== base) {
      warnings.push(`disk ${id}: the definition now points at ${base}, so the snapshot chain recorded on ${rec.disks[id]!.base} is not used`);
      overlays = [];
    }
    let n = overlays.length;
    while (n > 0 && !fs.existsSync(overlays[n - 1]!.file)) {
      warnings.push(`disk ${id}: recorded snapshot overlay ${overlays[n - 1]!.file} does not exist; using the layer below it`);
      n--;
    }
    overlays = overlays.slice(0, n);
    const top = overlays.length ? overlays[overlays.length - 1]!.file : base;
    return { id, disk: d, base, baseFormat, top, topFormat: overlays.length ? 'qcow2' : baseFormat, overlays };
  });
}

/** The argv override for start: disk id → the image to open, for disks that have overlays. */
export function activeDiskFiles(paths: Paths, vm: VmSpec): { files: Record<string, { file: string; format: string }>; warnings: string[] } {
  const warnings: string[] = [];
  const files: Record<string, { file: string; format: string }> = {};
  for (const a of activeDisks(paths, vm, warnings)) if (a.overlays.length) files[a.id] = { file: a.top, format: 'qcow2' };
  return { files, warnings };
}

/** The VM (by definition) whose disk is this image, as its base or one of its overlays. */
export async function findImageOwner(paths: Paths, file: string): Promise<{ vm: string; id: string; isTop: boolean } | undefined> {
  const { sameFile } = await import('../disk/images.js');
  const abs = path.resolve(file);
  for (const n of listNames(paths, 'vm')) {
    let vm: VmSpec;
    try {
      vm = readVm(paths, n);
    } catch {
      continue;
    }
    for (const a of activeDisks(paths, vm)) {
      const layers = [a.base, ...a.overlays.map((o) => o.file)];
      const hit = layers.findIndex((l) => sameFile(l, abs));
      if (hit >= 0) return { vm: n, id: a.id, isTop: hit === layers.length - 1 };
    }
  }
  return undefined;
}

/** For the disk layer's data-safety checks: the name of the RUNNING VM that uses an image. */
export function runningImageUser(paths: Paths): (abs: string) => Promise<string | undefined> {
  return async (abs) => {
    const o = await findImageOwner(paths, abs);
    if (!o) return undefined;
    const s = await vmStatus(paths, o.vm);
    return s.state === 'stopped' || s.state === 'crashed' ? undefined : o.vm;
  };
}

async function withQmp<T>(paths: Paths, name: string, fn: (q: QmpClient) => Promise<T>): Promise<T> {
  const q = await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 5000 });
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

const isUp = (state: string) => state === 'running' || state === 'paused';

export type SnapshotResult = { vm: string; name: string; mode: 'external' | 'internal'; disks: { id: string; file: string; backing?: string }[]; frozen?: boolean; paused?: boolean; note?: string };

function pickDisks(vm: VmSpec, all: ActiveDisk[], ids?: string[]): ActiveDisk[] {
  if (ids?.length) {
    return ids.map((id) => {
      const a = all.find((x) => x.id === id);
      if (!a) throw badInput('DISK_NOT_FOUND', `VM "${vm.name}" has no disk "${id}"`, `its disks: ${all.map((x) => x.id).join(', ') || 'none'}`);
      return a;
    });
  }
  const w = all.filter((a) => !a.disk.readOnly);
  if (!w.length) throw badInput('SNAPSHOT_NOTHING', `VM "${vm.name}" has no writable disk to snapshot`);
  return w;
}

/**
 * Snapshot a VM's disks. Running (or paused): external overlays through QMP, all disks in one
 * `transaction` so they are consistent with each other; the VM keeps running. Stopped: internal
 * qcow2 snapshots of each disk's active layer (qemu-img snapshot -c).
 */
export async function snapshotVm(paths: Paths, name: string, snap: string, opts: { disks?: string[]; noFreeze?: boolean; netns?: string } = {}): Promise<SnapshotResult> {
  const { checkSnapshotName, snapshotCreate } = await import('../disk/images.js');
  checkSnapshotName(snap);
  const vm = readVm(paths, name);
  // RBD volume disks: RBD snapshots of every volume (src/vm/volume-snapshots.ts).
  if (vm.disks.some((d) => d.storage !== undefined)) return (await import('./volume-snapshots.js')).snapshotVolumeVm(paths, vm, snap, opts);
  return withVmLock(paths, name, async () => {
    const st = await vmStatus(paths, name, { lockHeld: true });
    const chosen = pickDisks(vm, activeDisks(paths, vm), opts.disks);
    if (!isUp(st.state)) {
      const out: SnapshotResult['disks'] = [];
      for (const a of chosen) {
        await snapshotCreate(a.top, snap);
        out.push({ id: a.id, file: a.top });
      }
      return { vm: name, name: snap, mode: 'internal', disks: out };
    }
    const planned = chosen.map((a) => {
      if (a.overlays.some((o) => o.name === snap)) throw badInput('SNAPSHOT_EXISTS', `disk ${a.id} of VM "${name}" already has a snapshot "${snap}"`, 'pick another name');
      const file = `${a.base}.${snap}.qcow2`;
      if (fs.existsSync(file)) throw badInput('DISK_EXISTS', `${file} already exists; kvmctl never overwrites an image`, 'pick another snapshot name, or remove the file');
      return { a, file };
    });
    // Write-ahead: record the new layers first, so a crash between the two never loses writes.
    const before = readLayers(paths, name);
    const after: LayersFile = JSON.parse(JSON.stringify(before));
    const at = new Date().toISOString();
    for (const { a, file } of planned) {
      const d = (after.disks[a.id] = { base: a.base, overlays: a.overlays.slice() });
      d.overlays.push({ name: snap, file, createdAt: at });
    }
    writeLayers(paths, name, after);
    const actions = planned.map(({ a, file }) => ({ device: a.id, 'snapshot-file': file, format: 'qcow2', mode: 'absolute-paths' }));
    // With a guest agent the guest's filesystems are frozen around the switch (application-consistent).
    const freeze = opts.noFreeze ? undefined : await (await import('./guest-agent.js')).freezeIfAgent(vm, vmRuntimeFiles(paths, name).dir);
    const fz = freeze ? { frozen: freeze.frozen, ...(freeze.note ? { note: freeze.note } : {}) } : { frozen: false, note: 'not frozen (--no-freeze)' };
    try {
      await withQmp(paths, name, (q) =>
        actions.length === 1
          ? q.execute('blockdev-snapshot-sync', actions[0]!, { timeoutMs: 30_000 })
          : q.execute('transaction', { actions: actions.map((data) => ({ type: 'blockdev-snapshot-sync', data })) }, { timeoutMs: 30_000 }),
      );
    } catch (e) {
      // The reply may be lost (timeout, QMP closed) after QEMU switched: an overlay QEMU has open is
      // the disk's live layer now and stays recorded; only the ones it never opened are undone.
      const { qemuLocksOn } = await import('../disk/safety.js');
      const live = planned.filter(({ file }) => fs.existsSync(file) && qemuLocksOn(file).open);
      if (live.length === planned.length) return { vm: name, name: snap, mode: 'external', disks: planned.map(({ a, file }) => ({ id: a.id, file, backing: a.top })), ...fz };
      const kept: LayersFile = JSON.parse(JSON.stringify(before));
      for (const { a } of live) kept.disks[a.id] = after.disks[a.id]!;
      writeLayers(paths, name, kept);
      for (const { file } of planned) if (!live.some((l) => l.file === file)) fs.rmSync(file, { force: true });
      throw new KvmError('SNAPSHOT_FAILED', `VM "${name}": external snapshot "${snap}" failed: ${e instanceof Error ? e.message : String(e)}`, {
        hint: 'the VM runs on unchanged; check the images directory is writable and has space',
        cause: e,
      });
    } finally {
      await freeze?.thaw().catch(() => undefined);
    }
    return { vm: name, name: snap, mode: 'external', disks: planned.map(({ a, file }) => ({ id: a.id, file, backing: a.top })), ...fz };
  });
}

export type SnapshotListing = { vm: string; disks: { id: string; base: string; top: string; external: Overlay[]; internal: string[] }[] };

export async function listVmSnapshots(paths: Paths, name: string, o: { netns?: string } = {}): Promise<SnapshotListing> {
  const { inspectImage } = await import('../disk/images.js');
  const vm = readVm(paths, name);
  const disks: SnapshotListing['disks'] = vm.disks.some((d) => d.storage !== undefined) ? await (await import('./volume-snapshots.js')).listVolumeVmSnapshots(paths, vm, o.netns) : [];
  for (const a of activeDisks(paths, vm)) {
    let internal: string[] = [];
    if (fs.existsSync(a.top)) {
      const { info } = await inspectImage(a.top);
      internal = (info.snapshots ?? []).map((s) => s.name);
    }
    disks.push({ id: a.id, base: a.base, top: a.top, external: a.overlays, internal });
  }
  return { vm: name, disks };
}

/**
 * Go back to snapshot `snap` (VM stopped). External: the overlays from `snap` upward are deleted
 * and `snap`'s overlay is made again, empty, on the layer it froze — so the disk reads as it was
 * when the snapshot was taken, and can be reverted to it again later. Internal: qemu-img
 * snapshot -a on the active layer.
 */
export async function revertVm(paths: Paths, name: string, snap: string, o: { netns?: string } = {}): Promise<{ vm: string; name: string; mode: 'external' | 'internal'; disks: string[]; removed: string[] }> {
  const img = await import('../disk/images.js');
  const vm = readVm(paths, name);
  if (vm.disks.some((d) => d.storage !== undefined)) return (await import('./volume-snapshots.js')).revertVolumeVm(paths, vm, snap, o);
  return withVmLock(paths, name, async () => {
    const st = await vmStatus(paths, name, { lockHeld: true });
    if (isUp(st.state)) throw badInput('VM_RUNNING', `cannot revert VM "${name}" while it is ${st.state}`, `kvmctl stop ${name} first`);
    const all = activeDisks(paths, vm);
    const hits = all.filter((a) => a.overlays.some((o) => o.name === snap));
    if (!hits.length) {
      const internal = [];
      for (const a of all) {
        if (a.topFormat !== 'qcow2' && !/\.qcow2$/.test(a.top)) continue;
        const list = await img.snapshotList(a.top).catch(() => []);
        if (list.some((s) => s.name === snap)) internal.push(a);
      }
      if (!internal.length) throw badInput('SNAPSHOT_NOT_FOUND', `VM "${name}" has no snapshot "${snap}"`, `kvmctl snapshot ${name} --list`);
      for (const a of internal) await img.snapshotRevert(a.top, snap);
      return { vm: name, name: snap, mode: 'internal', disks: internal.map((a) => a.id), removed: [] };
    }
    const layers = readLayers(paths, name);
    const removed: string[] = [];
    for (const a of hits) {
      const k = a.overlays.findIndex((o) => o.name === snap);
      const doomed = a.overlays.slice(k);
      for (const o of doomed) await img.assertNotInUse(o.file, { doing: 'revert' });
      for (const o of doomed.reverse()) {
        if (fs.existsSync(o.file)) {
          fs.unlinkSync(o.file);
          removed.push(o.file);
        }
      }
      const below = k === 0 ? a.base : a.overlays[k - 1]!.file;
      const again = a.overlays[k]!;
      await img.createImage({ path: again.file, backing: below, format: 'qcow2' });
      layers.disks[a.id] = { base: a.base, overlays: [...a.overlays.slice(0, k), { ...again, createdAt: again.createdAt }] };
      writeLayers(paths, name, layers);
    }
    return { vm: name, name: snap, mode: 'external', disks: hits.map((a) => a.id), removed };
  });
}

/** What start will hand buildArgv for storage, without building or spawning anything (`kvmctl cmdline`). */
export function plannedStorage(paths: Paths, vm: VmSpec, runtimeDir: string): { diskFiles: Record<string, { file: string; format: string }>; seed?: string; virtiofs: Record<string, string>; warnings: string[] } {
  const { files, warnings } = activeDiskFiles(paths, vm);
  const seed = vm.cloudInit ? path.join(vmDataDir(paths, vm.name), 'cidata.iso') : undefined;
  return { diskFiles: files, seed, virtiofs: virtiofsSockets(vm, runtimeDir), warnings };
}

// ---- install media and CD-ROMs ----

/** The definition as `install` starts it: the ISO in the first CD-ROM drive (cd0 when none), boot once from it. */
export function withInstallMedium(vm: VmSpec, iso: string, paths?: Paths): VmSpec {
  const abs = path.resolve(iso);
  if (!fs.existsSync(abs)) throw badInput('ISO_NOT_FOUND', `${abs} does not exist`);
  if (paths) confinedPath(paths, iso, '--iso');
  const cdroms = vm.cdroms.length ? [{ ...vm.cdroms[0]!, file: abs }, ...vm.cdroms.slice(1)] : [{ id: 'cd0', file: abs }];
  return { ...vm, cdroms, boot: { order: vm.boot?.order ?? ['disk'], once: 'cdrom', menu: vm.boot?.menu } };
}

export type CdromState = { id: string; inserted?: string; trayOpen?: boolean };

async function cdromState(q: QmpClient, id: string): Promise<CdromState> {
  const blocks = await q.execute<{ device: string; removable: boolean; tray_open?: boolean; inserted?: { file: string } }[]>('query-block');
  const b = blocks.find((x) => x.device === id);
  if (!b) throw badInput('CDROM_NOT_FOUND', `no drive "${id}"`, `drives: ${blocks.map((x) => x.device).join(', ')}`);
  return { id, inserted: b.inserted?.file, trayOpen: b.tray_open };
}

/**
 * Eject or insert a CD-ROM medium of a running VM. The drive must exist since the start (a VM with
 * `cdroms:` in its definition, or one started by `kvmctl install`). QEMU names a legacy -drive's
 * device by the drive id (`cd0`), so the QMP `device` argument is used, not the qdev `id`.
 */
export async function cdromVm(paths: Paths, name: string, op: 'eject' | 'insert', o: { file?: string; id?: string; force?: boolean } = {}): Promise<CdromState> {
  const vm = readVm(paths, name);
  const st = await vmStatus(paths, name);
  if (!isUp(st.state)) throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running (${st.state})`, `kvmctl start ${name}; a stopped VM's CD-ROMs are set in its definition (cdroms:)`);
  const id = o.id ?? vm.cdroms[0]?.id ?? 'cd0';
  let file: string | undefined;
  if (op === 'insert') {
    if (!o.file) throw badInput('ISO_MISSING', 'insert needs an ISO file');
    file = path.resolve(o.file);
    confinedPath(paths, o.file, 'ISO'); // first: whether a file outside the roots exists is not told
    if (!fs.existsSync(file)) throw badInput('ISO_NOT_FOUND', `${file} does not exist`);
  }
  return withQmp(paths, name, async (q) => {
    const blocks = await q.execute<{ device: string; removable: boolean }[]>('query-block');
    const b = blocks.find((x) => x.device === id);
    if (!b || !b.removable) {
      const cds = blocks.filter((x) => x.removable).map((x) => x.device);
      throw badInput('CDROM_NOT_FOUND', `VM "${name}" has no CD-ROM drive "${id}"`, cds.length ? `its CD-ROM drives: ${cds.join(', ')} (--id)` : `add cdroms: to its definition (a drive must exist when the VM starts), or start it with kvmctl install ${name} --iso FILE`);
    }
    if (op === 'eject') await q.execute('eject', { device: id, force: o.force ?? false });
    else await q.execute('blockdev-change-medium', { device: id, filename: file, format: 'raw', 'read-only-mode': 'read-only' });
    return cdromState(q, id);
  });
}

/** A VM's CD-ROM drives: the definition's (file), and while it runs the medium in each removable drive QEMU has. */
export async function cdromStates(paths: Paths, vm: VmSpec): Promise<{ running: boolean; drives: (CdromState & { defined?: string })[] }> {
  const defined = vm.cdroms.map((c, i) => ({ id: c.id ?? `cd${i}`, defined: path.resolve(paths.images, c.file) }));
  if (!isUp((await vmStatus(paths, vm.name)).state)) return { running: false, drives: defined };
  return withQmp(paths, vm.name, async (q) => {
    const blocks = await q.execute<{ device: string; removable: boolean; tray_open?: boolean; inserted?: { file: string } }[]>('query-block');
    const drives = blocks.filter((b) => b.removable && b.device).map((b) => ({ id: b.device, inserted: b.inserted?.file, trayOpen: b.tray_open, defined: defined.find((d) => d.id === b.device)?.defined }));
    return { running: true, drives };
  });
}

// ---- cloud-init ----

/** Build the VM's NoCloud seed (label cidata) into its data dir, fresh at every start. */
export async function buildVmSeed(paths: Paths, vm: VmSpec): Promise<string | undefined> {
  const ci = vm.cloudInit;
  if (!ci) return undefined;
  const { buildNoCloudSeed } = await import('../disk/cloud-init.js');
  const out = path.join(vmDataDir(paths, vm.name), 'cidata.iso');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const host = typeof ci.userData === 'string' ? undefined : ci.userData.hostname;
  const metaData = { 'instance-id': `iid-${vm.name}`, 'local-hostname': host ?? vm.name, ...ci.metaData };
  await buildNoCloudSeed({ userData: ci.userData, metaData, networkConfig: ci.networkConfig }, out, { force: true });
  return out;
}
