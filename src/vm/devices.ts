/**
 * A VM's disks and NICs added or removed: the stored definition (a YAML document edit, comments
 * kept, validated like any definition change) and, while the VM runs, the running QEMU
 * (src/vm/device-hotplug.ts). The service layer under the API's device routes and the CLI's
 * attach-disk / detach-disk / attach-nic / detach-nic.
 *
 * Order, so that a failure changes nothing: the edited definition is validated first (bad input:
 * nothing done), then the device is (un)plugged, then the definition written; a write that fails
 * after a plug unplugs again. `mode`:
 *   auto   (default) live when the VM runs and the device can be (un)plugged, else the definition
 *          only (`live: false` and `why` in the answer; the device changes at the next start);
 *   live   must happen in the running VM now, else an error and nothing changed;
 *   config the definition only.
 * A real failure of the hotplug itself (QEMU refused the image, the guest did not release the
 * device in time) is always an error with nothing changed, never quietly a definition-only change.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isSeq, parseDocument, type Document } from 'yaml';
import { badInput, KvmError } from '../errors.js';
import { defPath, readVm } from '../definition/store.js';
import { parseDefinitions, specError, type Definition } from '../definition/load.js';
import type { VmSpec } from '../definition/vm.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { diskId, nicId } from '../qemu/argv.js';
import { withVmLock } from './lock.js';
import { confinedPath } from './path-check.js';
import { lookupGroup, lookupUser } from './preflight.js';
import { readJson, type RunState } from './state.js';
import { vmStatus } from './status.js';
import { taskLog } from '../tasks/current.js';

export type LiveMode = 'auto' | 'live' | 'config';
export type DeviceChange = {
  name: string;
  action: 'created' | 'configured' | 'unchanged';
  id: string;
  /** Changed in the running VM now. */
  live: boolean;
  /** Why not live (auto mode on a running VM). */
  why?: string;
  /** The running VM still differs from its definition until it restarts. */
  pendingRestart: boolean;
  /** The QEMU device and the hotplug port it went on. */
  device?: string;
  bus?: string;
  /** The image deleted with the disk. */
  deleted?: string;
};

type Edit = { spec: VmSpec; apply(): 'created' | 'configured' | 'unchanged' };

/** Edit a VM's stored YAML as a document (comments kept) and validate the result; apply() writes it. */
export async function prepareEdit(paths: Paths, name: string, edit: (doc: Document) => void): Promise<Edit> {
  readVm(paths, name);
  const doc = parseDocument(fs.readFileSync(defPath(paths, 'vm', name), 'utf8'));
  edit(doc);
  const text = doc.toString();
  const docs = parseDefinitions(text, 'the edited definition');
  const d = docs[0]!;
  if (docs.length !== 1 || d.kind !== 'vm') throw new KvmError('INTERNAL', 'the edited definition is not one VM');
  if (d.issues.length) throw specError('the edited definition', d.issues);
  const { checkLoadedDefinitions, applyLoadedDefinitions } = await import('./definitions.js');
  const defs = checkLoadedDefinitions(paths, [{ kind: 'vm', spec: d.spec, source: 'the edited definition', text } as Definition], 'the edited definition');
  return { spec: d.spec as VmSpec, apply: () => applyLoadedDefinitions(paths, defs)[0]!.action };
}

/** Edit, validate and write (no hotplug): autostart, the device routes in config mode. */
export async function editDefinition(paths: Paths, name: string, edit: (doc: Document) => void): Promise<'created' | 'configured' | 'unchanged'> {
  return (await prepareEdit(paths, name, edit)).apply();
}

function removeAt(doc: Document, key: 'disks' | 'nics', index: number): void {
  const seq = doc.get(key);
  if (!isSeq(seq)) throw new KvmError('INTERNAL', `the stored definition's ${key} is not a list`);
  seq.items.splice(index, 1);
  if (seq.items.length === 0) doc.delete(key);
}

function append(doc: Document, key: 'disks' | 'nics', item: Record<string, unknown>): void {
  const seq = doc.get(key);
  if (isSeq(seq)) seq.add(doc.createNode(item));
  else doc.set(key, doc.createNode([item]));
}

const isRunning = async (paths: Paths, name: string) => {
  const s = (await vmStatus(paths, name)).state;
  return s === 'running' || s === 'paused';
};

/**
 * Run `plug` in the running VM (under its lock) when the mode allows, then write the definition.
 * `unplugAgain` undoes a plug when the write fails.
 */
async function change(
  paths: Paths,
  name: string,
  id: string,
  mode: LiveMode,
  edit: Edit,
  plug: (spec: VmSpec, rt: { qmp: string; netns?: string }) => Promise<{ device: string; bus?: string; undo: () => Promise<void> }>,
): Promise<DeviceChange> {
  const running = await isRunning(paths, name);
  if (mode === 'live' && !running) throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running: nothing to hotplug into`, 'leave out live (or --live): the definition alone is changed');
  if (!running || mode === 'config') {
    return { name, action: edit.apply(), id, live: false, pendingRestart: running };
  }
  return withVmLock(paths, name, async () => {
    const files = vmRuntimeFiles(paths, name);
    const run = readJson<RunState>(files.state);
    let done: Awaited<ReturnType<typeof plug>>;
    try {
      done = await plug(edit.spec, { qmp: files.qmp, netns: run?.netns });
    } catch (e) {
      const { HotplugImpossible } = await import('./device-hotplug.js');
      if (mode === 'auto' && e instanceof HotplugImpossible) {
        taskLog(`not live: ${e.message}`);
        return { name, action: edit.apply(), id, live: false, why: e.message, pendingRestart: true };
      }
      throw e;
    }
    taskLog(`live: ${done.device}${done.bus ? ` on ${done.bus}` : ''}`);
    const before = await planned(paths, name);
    let action: DeviceChange['action'];
    try {
      action = edit.apply();
    } catch (e) {
      await done.undo().catch(() => undefined);
      throw e;
    }
    // So the pending-until-restart view does not list what the running VM already has.
    const after = await planned(paths, name);
    if (before && after && run?.pid) (await import('./argv-diff.js')).recordLiveChange(paths, name, run.pid, before, after);
    return { name, action, id, live: true, pendingRestart: false, device: done.device, ...(done.bus ? { bus: done.bus } : {}) };
  });
}

/** The argv the stored definition gives now (undefined when it cannot be planned: then nothing is recorded). */
async function planned(paths: Paths, name: string): Promise<string[] | undefined> {
  try {
    const [{ planCommandLine }, { probeHost }] = await Promise.all([import('./plan.js'), import('../host/probe.js')]);
    return (await planCommandLine(paths, name, await probeHost(paths))).argv;
  } catch {
    return undefined;
  }
}

/** The namespace the VM's links are in; a caller confined to another one is refused (its links cannot be made there). */
function linkNetns(name: string, vmNetns: string | undefined, callerNetns: string | undefined): string | undefined {
  if (callerNetns !== undefined && callerNetns !== vmNetns) {
    throw badInput('NETNS_MISMATCH', `VM "${name}" runs ${vmNetns ? `in network namespace ${vmNetns}` : "in the host's namespace"}, not in ${callerNetns}: its new tap must go where its QEMU is`, vmNetns ? `run with --netns ${vmNetns}` : 'run without --netns / KVMCTL_NETNS');
  }
  return vmNetns;
}

export type DiskAttach = ({ file: string; volume?: undefined } | { volume: string; file?: undefined }) & { id?: string; interface?: 'virtio' | 'scsi' | 'ide' | 'sata' | 'nvme'; readOnly?: boolean };

export async function attachDisk(paths: Paths, name: string, body: DiskAttach, o: { mode?: LiveMode; base?: string } = {}): Promise<DeviceChange> {
  if (body.volume !== undefined) return attachVolume(paths, name, { ...body, volume: body.volume }, o.mode ?? 'auto');
  const vm = readVm(paths, name);
  const abs = confinedPath(paths, body.file, 'file', { base: o.base ?? paths.images });
  if (!fs.existsSync(abs)) throw badInput('DISK_NOT_FOUND', `${abs} does not exist`, 'create it first (kvmctl disk create, POST /api/disks, the Disks page)', [{ path: 'file', message: 'no such image' }]);
  const taken = vm.disks.findIndex((d) => d.file !== undefined && path.resolve(paths.images, d.file) === abs);
  if (taken >= 0) throw new KvmError('DISK_IN_USE', `VM "${name}" already has ${abs} as disk ${diskId(vm.disks[taken]!, taken)}`);
  const rel = path.relative(path.resolve(paths.images), abs);
  const file = rel.startsWith('..') ? abs : rel;
  const index = vm.disks.length;
  const id = body.id ?? diskId({} as never, index);
  const edit = await prepareEdit(paths, name, (doc) =>
    append(doc, 'disks', { ...(body.id ? { id: body.id } : {}), file, ...(body.interface ? { interface: body.interface } : {}), ...(body.readOnly ? { readOnly: true } : {}) }),
  );
  return change(paths, name, id, o.mode ?? 'auto', edit, async (spec, rt) => {
    const hp = await import('./device-hotplug.js');
    return hp.withQmp(rt.qmp, async (q) => {
      const r = await hp.plugDisk(q, spec, index, paths.images);
      return { ...r, undo: () => hp.withQmp(rt.qmp, (q2) => hp.unplugDisk(q2, id)).then(() => undefined) };
    });
  });
}

/**
 * An RBD volume (STORAGE/VOLUME) as a disk; hotplugged like a file disk, its node built as the
 * start path builds it (src/qemu/argv-rbd.ts): the storage's secret object from a 0600 key file
 * in the VM's run dir (removed once QEMU read it), the rbd protocol node, the raw format node.
 */
async function attachVolume(paths: Paths, name: string, body: { volume: string; id?: string; interface?: DiskAttach['interface']; readOnly?: boolean }, mode: LiveMode): Promise<DeviceChange> {
  const vm = readVm(paths, name);
  const [{ parseRef }, { readRbdStorage }] = await Promise.all([import('../storage/volumes.js'), import('../storage/defs.js')]);
  const ref = parseRef(body.volume);
  await readRbdStorage(paths, ref.storage); // STORAGE_NOT_FOUND / STORAGE_NOT_RBD: bad input, nothing changed
  const taken = vm.disks.findIndex((d) => d.storage === ref.storage && d.volume === ref.volume);
  if (taken >= 0) throw new KvmError('DISK_IN_USE', `VM "${name}" already has volume ${body.volume} as disk ${diskId(vm.disks[taken]!, taken)}`);
  const index = vm.disks.length;
  const id = body.id ?? diskId({} as never, index);
  const edit = await prepareEdit(paths, name, (doc) =>
    append(doc, 'disks', { ...(body.id ? { id: body.id } : {}), storage: ref.storage, volume: ref.volume, ...(body.interface ? { interface: body.interface } : {}), ...(body.readOnly ? { readOnly: true } : {}) }),
  );
  return change(paths, name, id, mode, edit, async (spec, rt) => {
    const hp = await import('./device-hotplug.js');
    const vols = await import('../storage/attach.js');
    const one = { ...spec, disks: spec.disks.map((d, k) => (k === index ? d : { ...d, storage: undefined, volume: undefined })) } as VmSpec;
    const runDir = vmRuntimeFiles(paths, name).dir;
    const resolved = await vols.resolveVolumes(paths, one, runDir);
    const keys = await vols.writeKeys(resolved, runDir, runAsIds(spec)); // QEMU (maybe runAs) reads it at object-add
    try {
      return await hp.withQmp(rt.qmp, async (q) => {
        const r = await hp.plugDisk(q, spec, index, paths.images, resolved.volumes[id]);
        return { ...r, undo: () => hp.withQmp(rt.qmp, (q2) => hp.unplugDisk(q2, id)).then(() => undefined) };
      });
    } finally {
      for (const f of keys) fs.rmSync(f, { force: true });
    }
  });
}

export async function detachDisk(paths: Paths, name: string, id: string, o: { mode?: LiveMode; deleteImage?: boolean } = {}): Promise<DeviceChange> {
  const vm = readVm(paths, name);
  const i = vm.disks.findIndex((d, k) => diskId(d, k) === id);
  if (i < 0) throw new KvmError('DISK_NOT_FOUND', `VM "${name}" has no disk "${id}"`, { hint: `kvmctl show ${name} (disks:) / GET /api/vms/${name}/devices lists them`, exit: 2 });
  const { activeDisks } = await import('./storage.js');
  const a = activeDisks(paths, vm)[i]!;
  if (o.deleteImage) {
    if (await isRunning(paths, name)) throw new KvmError('VM_RUNNING', `VM "${name}" is running: its disk's image cannot be deleted`, { hint: 'stop it first, or detach without deleting the image' });
    if (a.overlays.length) throw new KvmError('DISK_IS_BACKING', `disk ${a.id} has snapshot overlays (${a.overlays.map((x) => x.name).join(', ')})`, { hint: 'revert or keep them; detach without deleting the image' });
  }
  const edit = await prepareEdit(paths, name, (doc) => removeAt(doc, 'disks', i));
  const r = await change(paths, name, id, o.mode ?? 'auto', edit, async (_spec, rt) => {
    const hp = await import('./device-hotplug.js');
    const out = await hp.withQmp(rt.qmp, (q) => hp.unplugDisk(q, id));
    // Undo = plug it back as it was (the old spec still has it at index i).
    return { ...out, undo: () => hp.withQmp(rt.qmp, (q) => hp.plugDisk(q, vm, i, paths.images)).then(() => undefined) };
  });
  if (o.deleteImage && fs.existsSync(a.base)) {
    const img = await import('../disk/images.js');
    r.deleted = (await img.removeImage(a.base, { force: true, searchDirs: [paths.images] })).path;
  }
  return r;
}

export type NicAdd = { network?: string; user?: true; model?: string; id?: string };

/** The user QEMU runs as (it must be able to open the new tap). */
function runAsIds(vm: VmSpec): { uid: number; gid: number } | undefined {
  if (!vm.runAs) return undefined;
  const u = lookupUser(vm.runAs.user);
  if (!u) return undefined;
  return { uid: u.uid, gid: (vm.runAs.group ? lookupGroup(vm.runAs.group) : undefined) ?? u.gid };
}

export async function addNic(paths: Paths, name: string, body: NicAdd, o: { mode?: LiveMode; netns?: string } = {}): Promise<DeviceChange> {
  const vm = readVm(paths, name);
  const index = vm.nics.length;
  const id = body.id ?? nicId({} as never, index);
  const item = { ...(body.id ? { id: body.id } : {}), ...(body.network !== undefined ? { network: body.network } : { user: true }), ...(body.model ? { model: body.model } : {}) };
  const edit = await prepareEdit(paths, name, (doc) => append(doc, 'nics', item));
  return change(paths, name, id, o.mode ?? 'auto', edit, async (spec, rt) => {
    const netns = linkNetns(name, rt.netns, o.netns);
    const hp = await import('./device-hotplug.js');
    const { probeHost } = await import('../host/probe.js');
    const facts = await probeHost(paths);
    const net = await import('../net/attach.js');
    const hot = await net.prepareHotNic(spec, index, { paths, facts, runAs: runAsIds(spec), netns });
    for (const w of hot.warnings) taskLog(`warning: ${w}`);
    try {
      const r = await hp.withQmp(rt.qmp, (q) => hp.plugNic(q, spec, index, { attachment: hot.attachment, mac: hot.mac }, facts));
      return {
        ...r,
        undo: async () => {
          await hp.withQmp(rt.qmp, (q) => hp.unplugNic(q, id));
          await hot.release();
        },
      };
    } catch (e) {
      await hot.release(); // the tap made for it
      throw e;
    }
  });
}

export async function removeNic(paths: Paths, name: string, id: string, o: { mode?: LiveMode; netns?: string } = {}): Promise<DeviceChange> {
  const vm = readVm(paths, name);
  const i = vm.nics.findIndex((n, k) => nicId(n, k) === id);
  if (i < 0) throw new KvmError('NIC_NOT_FOUND', `VM "${name}" has no NIC "${id}"`, { exit: 2 });
  const edit = await prepareEdit(paths, name, (doc) => removeAt(doc, 'nics', i));
  return change(paths, name, id, o.mode ?? 'auto', edit, async (_spec, rt) => {
    const netns = linkNetns(name, rt.netns, o.netns);
    const hp = await import('./device-hotplug.js');
    const net = await import('../net/attach.js');
    const out = await hp.withQmp(rt.qmp, (q) => hp.unplugNic(q, id));
    const link = net.recordedLink(paths, name, id);
    if (link) await net.releaseHotNic(name, link, paths, { netns });
    // No undo after the tap is gone: a failed write leaves the NIC out of the VM until it restarts (rare: the edit was validated).
    return { ...out, undo: async () => undefined };
  });
}
