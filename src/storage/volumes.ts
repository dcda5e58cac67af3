/**
 * Volumes of an rbd storage (issue #21, docs/storage-ceph.md) — `kvmctl volume …`. Everything goes
 * through the `rbd` tool and qemu-img's own rbd driver (src/storage/rbd.ts, src/host/exec.ts).
 *   create   RBD format 2 with layering + exclusive-lock (+ object-map, fast-diff): the lock means
 *            one writer at a time — a second QEMU (another host) cannot write the image while the
 *            owner holds it, and the cluster's failover must break the dead owner's lock first
 *   resize   a running VM's volume through QMP block_resize on its format node (the guest sees it);
 *            else `rbd resize`; shrinking needs `shrink: true`
 *   snapshot create (guest agent freeze when the VM runs one) / list / rollback (VM stopped) / rm
 *   clone    a linked clone from a snapshot (protected first, as RBD requires)
 *   rm       refused while a VM definition names the volume or any client has it open (watchers)
 *   import / export  qemu-img convert between a file in a storage root and the volume, with progress
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import { run } from '../host/exec.js';
import type { Paths } from '../host/paths.js';
import { vmRuntimeFiles } from '../host/paths.js';
import type { RbdStorageSpec } from '../definition/storage.js';
import { VOLUME_RE } from '../definition/names.js';
import { secretId, serverOf } from '../qemu/argv-rbd.js';
import { readRbdStorage, vmsUsingStorage } from './defs.js';
import { imageSpec, readKey, rbdRun, type RbdTarget } from './rbd.js';
import { dropAnchors, isAnchor, refuseAnchorName } from './anchors.js';

export const FEATURES = 'layering,exclusive-lock,object-map,fast-diff';

export type VolumeRef = { storage: string; volume: string; snap?: string };

/** `STORAGE/VOLUME[@SNAP]` → parts (bad input when malformed). */
export function parseRef(ref: string, o: { snap?: 'required' | 'allowed' | 'no' } = {}): VolumeRef {
  const m = /^([^/@]+)\/([^/@]+)(?:@([^/@]+))?$/.exec(ref);
  const want = o.snap ?? 'no';
  if (!m || !VOLUME_RE.test(m[2]!) || (m[3] !== undefined && !VOLUME_RE.test(m[3])))
    throw badInput('BAD_VOLUME', `"${ref}" is not a volume: write STORAGE/VOLUME${want === 'no' ? '' : '@SNAPSHOT'} (names of letters, digits, "_", "." and "-")`, 'kvmctl volume list STORAGE shows the volumes');
  if (want === 'required' && m[3] === undefined) throw badInput('BAD_VOLUME', `"${ref}" names no snapshot: write STORAGE/VOLUME@SNAPSHOT`);
  if (want === 'no' && m[3] !== undefined) throw badInput('BAD_VOLUME', `"${ref}" names a snapshot; this command takes STORAGE/VOLUME`);
  return { storage: m[1]!, volume: m[2]!, snap: m[3] };
}

export type Ctx = { paths: Paths; netns?: string };

async function target(c: Ctx, storage: string): Promise<RbdTarget & { s: RbdStorageSpec }> {
  const s = await readRbdStorage(c.paths, storage);
  return { storage: s, netns: c.netns, s };
}

export type VolumeInfo = { storage: string; volume: string; size: number; features: string[]; parent?: string; snapshots: number; watchers: string[]; usedBy: { vm: string; disk: string }[] };
export type VolumeRow = { volume: string; size: number; snapshot?: string; protected?: boolean; parent?: string };

export async function listVolumes(c: Ctx, storage: string): Promise<VolumeRow[]> {
  const t = await target(c, storage);
  const ns = t.s.namespace ? ['--namespace', t.s.namespace] : [];
  const rows = JSON.parse((await rbdRun(t, ['ls', '-l', '--format', 'json', ...ns, t.s.pool])) || '[]') as { image: string; size: number; snapshot?: string; protected?: string; parent?: { image: string; snapshot: string } }[];
  return rows.map((r) => ({ volume: r.image, size: r.size, ...(r.snapshot ? { snapshot: r.snapshot, protected: r.protected === 'true' } : {}), ...(r.parent ? { parent: `${r.parent.image}@${r.parent.snapshot}` } : {}) }));
}

export async function volumeInfo(c: Ctx, ref: string): Promise<VolumeInfo> {
  const r = parseRef(ref);
  const t = await target(c, r.storage);
  const spec = imageSpec(t.s, r.volume);
  const info = JSON.parse(await rbdRun(t, ['info', '--format', 'json', spec], { what: `volume ${ref}` })) as { size: number; features: string[]; snapshot_count: number; parent?: { image: string; snapshot: string } };
  const st = JSON.parse(await rbdRun(t, ['status', '--format', 'json', spec], { what: `volume ${ref}` })) as { watchers: { address: string }[] };
  return {
    storage: r.storage, volume: r.volume, size: info.size, features: info.features, snapshots: info.snapshot_count,
    ...(info.parent ? { parent: `${info.parent.image}@${info.parent.snapshot}` } : {}),
    watchers: st.watchers.map((w) => w.address), usedBy: await vmsUsingStorage(c.paths, r.storage, r.volume),
  };
}

/** `rbd create` wants a whole number of bytes with a B suffix here (its default unit is MiB). */
const bytesArg = (n: number) => `${n}B`;

export async function createVolume(c: Ctx, ref: string, size: number): Promise<{ volume: string; size: number }> {
  const r = parseRef(ref);
  if (!(size >= 512) || size % 512 !== 0) throw badInput('BAD_SIZE', `volume size ${size} must be a multiple of 512 bytes`, 'use a size such as 1G or 512M');
  const t = await target(c, r.storage);
  await rbdRun(t, ['create', '--size', bytesArg(size), '--image-format', '2', '--image-feature', FEATURES, imageSpec(t.s, r.volume)], { what: `volume ${ref}` });
  return { volume: ref, size };
}

/** Running VMs (on this host) that have the volume as a disk, with the disk's node name (its id). */
export async function runningUsers(c: Ctx, r: VolumeRef): Promise<{ vm: string; disk: string }[]> {
  const users = await vmsUsingStorage(c.paths, r.storage, r.volume);
  if (!users.length) return [];
  const { vmStatus } = await import('../vm/status.js');
  const out: { vm: string; disk: string }[] = [];
  for (const u of users) {
    const s = await vmStatus(c.paths, u.vm);
    if (s.state === 'running' || s.state === 'paused') out.push(u);
  }
  return out;
}

export async function resizeVolume(c: Ctx, ref: string, size: number, o: { shrink?: boolean } = {}): Promise<{ volume: string; from: number; to: number; live?: string }> {
  const r = parseRef(ref);
  const t = await target(c, r.storage);
  const spec = imageSpec(t.s, r.volume);
  const from = (JSON.parse(await rbdRun(t, ['info', '--format', 'json', spec], { what: `volume ${ref}` })) as { size: number }).size;
  if (size < from && !o.shrink) throw badInput('DISK_SHRINK', `volume ${ref} is ${from} bytes; ${size} would cut ${from - size} bytes off its end`, 'pass --shrink if that is what you want (the guest loses the data there)');
  if (size % 512 !== 0) throw badInput('BAD_SIZE', `volume size ${size} must be a multiple of 512 bytes`);
  const live = (await runningUsers(c, r))[0];
  if (live) {
    // QEMU holds the exclusive lock: it resizes the image itself and tells the guest.
    const { qmpOnce } = await import('../vm/qmp-once.js');
    await qmpOnce(vmRuntimeFiles(c.paths, live.vm).qmp, 'block_resize', { 'node-name': live.disk, size }, 30_000);
    return { volume: ref, from, to: size, live: live.vm };
  }
  await rbdRun(t, ['resize', '--size', bytesArg(size), ...(size < from ? ['--allow-shrink'] : []), '--no-progress', spec], { what: `volume ${ref}` });
  return { volume: ref, from, to: size };
}

/** `backupAnchor`: kvmctl's own kvmctl-bk-ID snapshot of a backup (anchors.ts), not a user's. */
export type SnapRow = { name: string; size: number; protected: boolean; at: string; backupAnchor?: true };

export async function snapshotCreate(c: Ctx, ref: string): Promise<{ snapshot: string; consistency: string }> {
  const r = parseRef(ref, { snap: 'required' });
  refuseAnchorName(r.snap);
  const t = await target(c, r.storage);
  const live = (await runningUsers(c, r))[0];
  let consistency = 'VM not running: consistent';
  let thaw = async () => undefined as void;
  if (live) {
    const [{ freezeIfAgent }, store] = await Promise.all([import('../vm/guest-agent.js'), import('../definition/store.js')]);
    const f = await freezeIfAgent(store.readVm(c.paths, live.vm), vmRuntimeFiles(c.paths, live.vm).dir);
    consistency = f.frozen ? `guest filesystems frozen by the agent (${f.filesystems})` : f.note!;
    thaw = f.thaw;
  }
  try {
    await snapshotCreateRaw(c, ref);
  } finally {
    await thaw();
  }
  return { snapshot: ref, consistency };
}

/** `rbd snap create` alone (the caller handles freezing: VM snapshots freeze once for all volumes). */
export async function snapshotCreateRaw(c: Ctx, ref: string): Promise<void> {
  const r = parseRef(ref, { snap: 'required' });
  const t = await target(c, r.storage);
  await rbdRun(t, ['snap', 'create', '--no-progress', imageSpec(t.s, r.volume, r.snap)], { what: `snapshot ${ref}` });
}

export async function snapshotList(c: Ctx, ref: string): Promise<SnapRow[]> {
  const r = parseRef(ref);
  const t = await target(c, r.storage);
  const rows = JSON.parse(await rbdRun(t, ['snap', 'ls', '--format', 'json', imageSpec(t.s, r.volume)], { what: `volume ${ref}` })) as { name: string; size: number; protected: string; timestamp: string }[];
  return rows.map((x) => ({ name: x.name, size: x.size, protected: x.protected === 'true', at: x.timestamp, ...(isAnchor(x.name) ? { backupAnchor: true as const } : {}) }));
}

export async function snapshotRollback(c: Ctx, ref: string): Promise<{ volume: string; snapshot: string }> {
  const r = parseRef(ref, { snap: 'required' });
  const users = await runningUsers(c, r);
  if (users.length) throw new KvmError('VOLUME_IN_USE', `volume ${r.storage}/${r.volume} is a disk of running VM "${users[0]!.vm}": rolling back under it would corrupt what the guest sees`, { exit: 1, hint: `stop it first (kvmctl stop ${users[0]!.vm})` });
  const t = await target(c, r.storage);
  await watcherCheck(t, r, 'roll back');
  await rbdRun(t, ['snap', 'rollback', '--no-progress', imageSpec(t.s, r.volume, r.snap)], { what: `snapshot ${ref}`, timeoutMs: 600_000 });
  // The image is rewritten behind any backup anchor: a diff from one would no longer be what changed since that backup.
  await dropAnchors(c, r.storage, r.volume);
  return { volume: `${r.storage}/${r.volume}`, snapshot: r.snap! };
}

export async function snapshotRemove(c: Ctx, ref: string): Promise<{ removed: string }> {
  const r = parseRef(ref, { snap: 'required' });
  const t = await target(c, r.storage);
  const snap = (await snapshotList(c, `${r.storage}/${r.volume}`)).find((s) => s.name === r.snap);
  if (!snap) throw badInput('SNAPSHOT_NOT_FOUND', `volume ${r.storage}/${r.volume} has no snapshot "${r.snap}"`, `kvmctl volume snapshot list ${r.storage}/${r.volume}`);
  const spec = imageSpec(t.s, r.volume, r.snap);
  if (snap.protected) {
    const children = (await rbdRun(t, ['children', spec], { what: `snapshot ${ref}` })).trim();
    if (children) throw badInput('SNAPSHOT_HAS_CLONES', `snapshot ${ref} is the parent of linked clones: ${children.split('\n').join(', ')}`, 'remove the clones first (or flatten them: rbd flatten)');
    await rbdRun(t, ['snap', 'unprotect', spec], { what: `snapshot ${ref}` });
  }
  await rbdRun(t, ['snap', 'rm', '--no-progress', spec], { what: `snapshot ${ref}` });
  return { removed: ref };
}

/** The linked clones of a snapshot (`rbd children`), one per line as pool/image. */
export async function snapshotChildren(c: Ctx, ref: string): Promise<string[]> {
  const r = parseRef(ref, { snap: 'required' });
  const t = await target(c, r.storage);
  return (await rbdRun(t, ['children', imageSpec(t.s, r.volume, r.snap)], { what: `snapshot ${ref}` })).split('\n').filter(Boolean);
}

/** A linked clone: copy-on-write child of a (protected) snapshot, in the same storage. */
export async function cloneVolume(c: Ctx, srcRef: string, dstRef: string): Promise<{ clone: string; parent: string }> {
  const src = parseRef(srcRef, { snap: 'required' });
  const dst = parseRef(dstRef);
  if (dst.storage !== src.storage) throw badInput('CLONE_CROSS_STORAGE', `a linked clone lives in its parent's storage ("${src.storage}"), not "${dst.storage}"`, `kvmctl volume clone ${srcRef} ${src.storage}/${dst.volume}`);
  const t = await target(c, src.storage);
  const snap = (await snapshotList(c, `${src.storage}/${src.volume}`)).find((s) => s.name === src.snap);
  if (!snap) throw badInput('SNAPSHOT_NOT_FOUND', `volume ${src.storage}/${src.volume} has no snapshot "${src.snap}"`, `kvmctl volume snapshot create ${srcRef}`);
  if (!snap.protected) await rbdRun(t, ['snap', 'protect', imageSpec(t.s, src.volume, src.snap)], { what: `snapshot ${srcRef}` });
  await rbdRun(t, ['clone', '--image-feature', FEATURES, imageSpec(t.s, src.volume, src.snap), imageSpec(t.s, dst.volume)], { what: `clone ${dstRef}` });
  return { clone: dstRef, parent: srcRef };
}

async function watcherCheck(t: RbdTarget & { s: RbdStorageSpec }, r: VolumeRef, what: string): Promise<void> {
  const st = JSON.parse(await rbdRun(t, ['status', '--format', 'json', imageSpec(t.s, r.volume)], { what: `volume ${r.storage}/${r.volume}` })) as { watchers: { address: string }[] };
  if (st.watchers.length) throw new KvmError('VOLUME_IN_USE', `volume ${r.storage}/${r.volume} is open by ${st.watchers.map((w) => w.address).join(', ')}: cannot ${what} it`, { exit: 1, hint: 'a VM (maybe on another host) has it open: stop that VM first' });
}

export async function removeVolume(c: Ctx, ref: string): Promise<{ removed: string }> {
  const r = parseRef(ref);
  const users = await vmsUsingStorage(c.paths, r.storage, r.volume);
  if (users.length) throw badInput('VOLUME_IN_USE', `volume ${ref} is a disk of ${users.map((u) => `VM "${u.vm}" (${u.disk})`).join(', ')}`, 'remove the disk from the definition (or the VM) first; nothing was deleted');
  const t = await target(c, r.storage);
  await watcherCheck(t, r, 'remove');
  const snaps = (await snapshotList(c, ref)).filter((s) => !s.backupAnchor);
  if (snaps.length) throw badInput('VOLUME_HAS_SNAPSHOTS', `volume ${ref} has ${snaps.length} snapshot(s): ${snaps.map((s) => s.name).join(', ')}`, `remove them first (kvmctl volume snapshot rm ${ref}@NAME)`);
  // kvmctl's backup anchors never block a removal: the backups in the repository do not need them.
  await dropAnchors(c, r.storage, r.volume);
  await rbdRun(t, ['rm', '--no-progress', imageSpec(t.s, r.volume)], { what: `volume ${ref}` });
  return { removed: ref };
}

/** qemu-img's view of a volume: --image-opts with the key in a secret object read from a 0600 file. */
function rbdImageOpts(s: RbdStorageSpec, image: string, secret: string): string {
  const esc = (v: string) => v.replace(/,/g, ',,');
  const kv: [string, string][] = [['driver', 'rbd'], ['pool', s.pool], ...(s.namespace ? [['namespace', s.namespace] as [string, string]] : []), ['image', image], ['user', s.user], ['key-secret', secret]];
  (s.monitors ?? []).map(serverOf).forEach((m, i) => kv.push([`server.${i}.host`, m.host], [`server.${i}.port`, m.port]));
  if (s.conf) kv.push(['conf', s.conf]);
  return kv.map(([k, v]) => `${k}=${esc(v)}`).join(',');
}

async function withKeyFile<T>(c: Ctx, s: RbdStorageSpec, fn: (objectArg: string, id: string) => Promise<T>): Promise<T> {
  const dir = path.join(c.paths.run, 'volumes');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = path.join(dir, `${s.name}.${process.pid}.key`);
  fs.writeFileSync(f, readKey(s), { mode: 0o600 });
  try {
    return await fn(`secret,id=${secretId(s.name)},file=${f.replace(/,/g, ',,')},format=base64`, secretId(s.name));
  } finally {
    fs.rmSync(f, { force: true });
  }
}

async function confinedFile(c: Ctx, file: string, field: string): Promise<string> {
  const [{ pathProblem }, { storageRoots }] = await Promise.all([import('../vm/path-check.js'), import('../host/storage-roots.js')]);
  const why = pathProblem(file, 'image', storageRoots(c.paths), c.paths, { base: process.cwd() });
  if (why) throw badInput('PATH_OUTSIDE_ROOTS', `${field}: ${why}`, 'kvmctl storage list shows the roots; kvmctl storage add DIR adds one');
  return path.resolve(file);
}

export type Progress = (percent: number) => void;

/**
 * `qemu-img convert -n` of a file (format given) into an existing volume of at least its virtual
 * size, through qemu-img's rbd driver (the key in a secret object file). The caller confines the
 * file (import: a storage root; restore: the backup repository).
 */
export async function convertIntoVolume(c: Ctx, storage: string, volume: string, file: string, format: string, o: { onProgress?: Progress; errorCode?: string } = {}): Promise<void> {
  const t = await target(c, storage);
  await withKeyFile(c, t.s, async (obj, id) => {
    const { qemuImgProgressListener } = await import('../disk/progress.js');
    const argv = [...(c.netns ? ['ip', 'netns', 'exec', c.netns] : []), 'qemu-img', 'convert', '-p', '-n', '--object', obj, '-f', format, '--target-image-opts', file, rbdImageOpts(t.s, volume, id)];
    await run(argv, { timeoutMs: 3_600_000, onStdout: o.onProgress ? qemuImgProgressListener(o.onProgress) : undefined, errorCode: o.errorCode ?? 'VOLUME_IMPORT_FAILED' });
  });
}

/** Whether a volume exists, and what would make replacing it unsafe: its snapshots and the clients that have it open (any host). */
export async function volumeState(c: Ctx, storage: string, volume: string): Promise<{ exists: boolean; size?: number; snapshots: string[]; watchers: string[] }> {
  const t = await target(c, storage);
  const spec = imageSpec(t.s, volume);
  let size: number;
  try {
    size = (JSON.parse(await rbdRun(t, ['info', '--format', 'json', spec], { what: `volume ${storage}/${volume}` })) as { size: number }).size;
  } catch (e) {
    if ((e as KvmError).code === 'VOLUME_NOT_FOUND') return { exists: false, snapshots: [], watchers: [] };
    throw e;
  }
  const st = JSON.parse(await rbdRun(t, ['status', '--format', 'json', spec], { what: `volume ${storage}/${volume}` })) as { watchers: { address: string }[] };
  const snaps = JSON.parse(await rbdRun(t, ['snap', 'ls', '--format', 'json', spec], { what: `volume ${storage}/${volume}` })) as { name: string }[];
  return { exists: true, size, snapshots: snaps.map((x) => x.name), watchers: st.watchers.map((w) => w.address) };
}

/** `rbd rename` inside one storage (restore swaps a fully written scratch volume in). */
export async function renameVolume(c: Ctx, storage: string, from: string, to: string): Promise<void> {
  const t = await target(c, storage);
  await rbdRun(t, ['rename', imageSpec(t.s, from), imageSpec(t.s, to)], { what: `volume ${storage}/${from}` });
}

/** A qcow2/raw/… file (in a storage root) → a new volume of its virtual size. */
export async function importVolume(c: Ctx, file: string, ref: string, o: { onProgress?: Progress } = {}): Promise<{ volume: string; from: string; format: string; size: number }> {
  const r = parseRef(ref);
  const abs = await confinedFile(c, file, 'import source');
  if (!fs.existsSync(abs)) throw badInput('FILE_NOT_FOUND', `${abs}: no such file`);
  const info = JSON.parse((await run(['qemu-img', 'info', '--output=json', abs])).stdout) as { format: string; 'virtual-size': number };
  const t = await target(c, r.storage);
  await createVolume(c, ref, Math.ceil(info['virtual-size'] / 512) * 512);
  try {
    await convertIntoVolume(c, r.storage, r.volume, abs, info.format, { onProgress: o.onProgress });
  } catch (e) {
    await rbdRun(t, ['rm', '--no-progress', imageSpec(t.s, r.volume)]).catch(() => undefined); // no half-imported volume left
    throw e;
  }
  return { volume: ref, from: abs, format: info.format, size: info['virtual-size'] };
}

/** A volume → a new file (in a storage root; never overwritten) as qcow2 or raw. */
export async function exportVolume(c: Ctx, ref: string, file: string, o: { format?: 'qcow2' | 'raw'; onProgress?: Progress } = {}): Promise<{ volume: string; to: string; format: string }> {
  const r = parseRef(ref, { snap: 'allowed' });
  const abs = await confinedFile(c, file, 'export target');
  if (fs.existsSync(abs)) throw badInput('DISK_EXISTS', `${abs} already exists: export never overwrites`, 'remove it first or pick another name');
  const format = o.format ?? (abs.endsWith('.qcow2') ? 'qcow2' : 'raw');
  const t = await target(c, r.storage);
  await withKeyFile(c, t.s, async (obj, id) => {
    const { qemuImgProgressListener } = await import('../disk/progress.js');
    const src = rbdImageOpts(t.s, r.volume, id) + (r.snap ? `,snapshot=${r.snap}` : '');
    const argv = [...(c.netns ? ['ip', 'netns', 'exec', c.netns] : []), 'qemu-img', 'convert', '-p', '--object', obj, '--image-opts', src, '-O', format, abs];
    try {
      await run(argv, { timeoutMs: 3_600_000, onStdout: o.onProgress ? qemuImgProgressListener(o.onProgress) : undefined, errorCode: 'VOLUME_EXPORT_FAILED' });
    } catch (e) {
      fs.rmSync(abs, { force: true });
      throw e;
    }
  });
  return { volume: ref, to: abs, format };
}
