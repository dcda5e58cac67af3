/**
 * A VM's disks and NICs: list them (active layer, size, MAC as QEMU gets it), resize a disk (live in
 * a running VM: src/disk/images.ts resizeImage with the QMP resolver, as `kvmctl disk resize`), and
 * add/remove disks and NICs in the stored definition — a YAML document edit (comments kept),
 * validated and applied like any definition change. A running VM keeps its devices until its next
 * start (hotplug is not built): the answer says so, and /pending lists the difference.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { isSeq, parseDocument, type Document } from 'yaml';
import { badInput, KvmError } from '../../errors.js';
import { defPath, readVm } from '../../definition/store.js';
import type { Paths } from '../../host/paths.js';
import { deriveMac } from '../../net/mac.js';
import { diskId, nicId } from '../../qemu/argv.js';
import type { ServerCtx } from '../context.js';
import { routes as R } from '../contract.js';
import { parseBody } from '../definition-body.js';
import { bind } from '../route.js';
import { imagePath } from './disks.js';

/** Edit a VM's stored YAML as a document (comments kept), then validate and apply it. */
export async function editDefinition(paths: Paths, name: string, edit: (doc: Document) => void): Promise<'created' | 'configured' | 'unchanged'> {
  readVm(paths, name);
  const doc = parseDocument(fs.readFileSync(defPath(paths, 'vm', name), 'utf8'));
  edit(doc);
  const defs = parseBody({ yaml: doc.toString() }, 'vm');
  const { checkLoadedDefinitions, applyLoadedDefinitions } = await import('../../vm/definitions.js');
  return applyLoadedDefinitions(paths, checkLoadedDefinitions(paths, defs, 'request body'))[0]!.action;
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

export function vmDeviceRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const running = async (name: string) => {
    const { vmStatus } = await import('../../vm/status.js');
    const s = (await vmStatus(paths, name)).state;
    return s === 'running' || s === 'paused';
  };
  const done = async (name: string, action: 'created' | 'configured' | 'unchanged', id: string, deleted?: string) => {
    await ctx.watcher?.reconcile();
    return { name, action, id, ...(deleted ? { deleted } : {}), pendingRestart: await running(name) };
  };

  bind(app, R.vmDevices, async ({ params }) => {
    const vm = readVm(paths, params.name);
    const { activeDisks } = await import('../../vm/storage.js');
    const { inspectImage } = await import('../../disk/images.js');
    const disks = [];
    for (const a of activeDisks(paths, vm)) {
      const exists = fs.existsSync(a.top);
      const info = exists ? (await inspectImage(a.top).catch(() => undefined))?.info : undefined;
      disks.push({ id: a.id, file: a.base, top: a.top, layers: a.overlays.length + 1, interface: a.disk.interface, readOnly: a.disk.readOnly, format: info?.format, virtualSize: info?.['virtual-size'], exists });
    }
    const nics = vm.nics.map((n, i) => ({
      id: nicId(n, i),
      attach: n.network ? `network ${n.network}` : n.tap ? `tap ${n.tap}` : n.user ? 'user-mode' : 'none',
      model: n.model,
      mac: (n.mac ?? deriveMac(vm.name, nicId(n, i))).toLowerCase(),
    }));
    return { disks, nics };
  });

  bind(app, R.resizeVmDisk, async ({ params, body }) => {
    const vm = readVm(paths, params.name);
    const storage = await import('../../vm/storage.js');
    const a = storage.activeDisks(paths, vm).find((d) => d.id === params.id);
    if (!a) throw new KvmError('DISK_NOT_FOUND', `VM "${params.name}" has no disk "${params.id}"`, { hint: `GET /api/vms/${params.name}/devices lists them` });
    if (a.disk.readOnly) throw badInput('DISK_READ_ONLY', `disk ${a.id} of VM "${params.name}" is read-only`);
    const img = await import('../../disk/images.js');
    const live = await import('../../disk/live-resize.js');
    img.setImageInUseResolver(storage.runningImageUser(paths));
    return img.resizeImage(a.top, body.size, { shrink: body.shrink, searchImages: await live.knownImages(paths), live: live.liveResolver(paths) });
  });

  bind(app, R.attachVmDisk, async ({ params, body }) => {
    const vm = readVm(paths, params.name);
    const abs = imagePath(paths, body.file);
    if (!fs.existsSync(abs)) throw badInput('DISK_NOT_FOUND', `${abs} does not exist`, 'create it first (POST /api/disks, the Disks page)', [{ path: 'file', message: 'no such image' }]);
    const taken = vm.disks.findIndex((d) => d.file !== undefined && path.resolve(paths.images, d.file) === abs);
    if (taken >= 0) throw new KvmError('DISK_IN_USE', `VM "${params.name}" already has ${abs} as disk ${diskId(vm.disks[taken]!, taken)}`);
    const rel = path.relative(path.resolve(paths.images), abs);
    const file = rel.startsWith('..') ? abs : rel;
    const id = body.id ?? diskId({} as never, vm.disks.length);
    const action = await editDefinition(paths, params.name, (doc) =>
      append(doc, 'disks', { ...(body.id ? { id: body.id } : {}), file, ...(body.interface ? { interface: body.interface } : {}), ...(body.readOnly ? { readOnly: true } : {}) }),
    );
    return done(params.name, action, id);
  });

  bind(app, R.detachVmDisk, async ({ params, query }) => {
    const vm = readVm(paths, params.name);
    const i = vm.disks.findIndex((d, k) => diskId(d, k) === params.id);
    if (i < 0) throw new KvmError('DISK_NOT_FOUND', `VM "${params.name}" has no disk "${params.id}"`);
    const del = query.deleteImage === 'true';
    const { activeDisks } = await import('../../vm/storage.js');
    const a = activeDisks(paths, vm)[i]!;
    if (del) {
      if (await running(params.name)) throw new KvmError('VM_RUNNING', `VM "${params.name}" is running: its disk's image cannot be deleted`, { hint: 'stop it first, or detach without deleting the image' });
      if (a.overlays.length) throw new KvmError('DISK_IS_BACKING', `disk ${a.id} has snapshot overlays (${a.overlays.map((o) => o.name).join(', ')})`, { hint: 'revert or keep them; detach without deleting the image' });
    }
    const action = await editDefinition(paths, params.name, (doc) => removeAt(doc, 'disks', i));
    let deleted: string | undefined;
    if (del && fs.existsSync(a.base)) {
      const img = await import('../../disk/images.js');
      deleted = (await img.removeImage(a.base, { force: true, searchDirs: [paths.images] })).path;
    }
    return done(params.name, action, params.id, deleted);
  });

  bind(app, R.addVmNic, async ({ params, body }) => {
    const vm = readVm(paths, params.name);
    const id = body.id ?? nicId({} as never, vm.nics.length);
    const item = { ...(body.id ? { id: body.id } : {}), ...('network' in body ? { network: body.network } : { user: true }), ...(body.model ? { model: body.model } : {}) };
    return done(params.name, await editDefinition(paths, params.name, (doc) => append(doc, 'nics', item)), id);
  });

  bind(app, R.removeVmNic, async ({ params }) => {
    const vm = readVm(paths, params.name);
    const i = vm.nics.findIndex((n, k) => nicId(n, k) === params.id);
    if (i < 0) throw new KvmError('NIC_NOT_FOUND', `VM "${params.name}" has no NIC "${params.id}"`);
    return done(params.name, await editDefinition(paths, params.name, (doc) => removeAt(doc, 'nics', i)), params.id);
  });
}
