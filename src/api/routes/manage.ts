/**
 * VM management routes: snapshots (src/vm/storage.ts, src/disk/images.ts — what `kvmctl snapshot`
 * uses), the QEMU and serial logs (the VM's runtime files), and the autostart switch (a YAML edit
 * of the stored definition that keeps its comments, applied like any definition change).
 */
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { isMap } from 'yaml';
import { badInput, KvmError } from '../../errors.js';
import { readVm } from '../../definition/store.js';
import { vmRuntimeFiles } from '../../host/paths.js';
import type { ServerCtx } from '../context.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import { editDefinition } from '../../vm/devices.js';

const LOG_BYTES = 64 * 1024;

export { argvDiff, argvOptions } from '../../vm/argv-diff.js';

function tailFile(file: string, bytes: number): { sizeBytes: number; text: string; truncated: boolean } {
  const size = fs.statSync(file).size;
  const n = Math.min(size, bytes);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    fs.readSync(fd, buf, 0, n, size - n);
    return { sizeBytes: size, text: buf.toString('utf8'), truncated: n < size };
  } finally {
    fs.closeSync(fd);
  }
}

export function manageRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const storage = () => import('../../vm/storage.js');
  const settled = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } finally {
      await ctx.watcher?.reconcile();
    }
  };

  bind(app, R.listSnapshots, async ({ params }) => (await storage()).listVmSnapshots(paths, params.name, { netns: ctx.netns }));
  bind(app, R.createSnapshot, async ({ params, body }) => {
    const at = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    return settled((await storage()).snapshotVm(paths, params.name, body.name?.trim() || `snap-${at}`, { disks: body.disks, noFreeze: body.noFreeze, netns: ctx.netns }));
  });
  bind(app, R.revertSnapshot, async ({ params }) => settled((await storage()).revertVm(paths, params.name, params.snap, { netns: ctx.netns })));
  bind(app, R.deleteSnapshot, async ({ params }) => {
    const s = await storage();
    const { vmStatus } = await import('../../vm/status.js');
    const img = await import('../../disk/images.js');
    img.setImageInUseResolver(s.runningImageUser(paths));
    const vm = readVm(paths, params.name);
    const vs = await import('../../vm/volume-snapshots.js');
    if (vs.hasVolumeDisks(vm)) return vs.removeVolumeVmSnapshot(paths, vm, params.snap, { netns: ctx.netns }); // RBD snapshots of the volumes
    const st = await vmStatus(paths, params.name);
    if (st.state === 'running' || st.state === 'paused') throw new KvmError('VM_RUNNING', `cannot delete a snapshot of VM "${params.name}" while it is ${st.state}`, { hint: 'stop it first' });
    const disks = s.activeDisks(paths, vm);
    if (disks.some((a) => a.overlays.some((o) => o.name === params.snap))) {
      throw badInput('SNAPSHOT_EXTERNAL', `"${params.snap}" is an external snapshot: its overlay is the disk's live layer`, `revert to it (POST /api/vms/${params.name}/snapshots/${params.snap}/revert), or keep it`);
    }
    const hit: string[] = [];
    for (const a of disks) {
      if (!fs.existsSync(a.top)) continue;
      const list = await img.snapshotList(a.top).catch(() => []);
      if (!list.some((x) => x.name === params.snap)) continue;
      await img.snapshotDelete(a.top, params.snap);
      hit.push(a.id);
    }
    if (!hit.length) throw badInput('SNAPSHOT_NOT_FOUND', `VM "${params.name}" has no snapshot "${params.snap}"`, `GET /api/vms/${params.name}/snapshots`);
    return { vm: params.name, name: params.snap, disks: hit };
  });

  bind(app, R.vmLog, async ({ params, query }) => {
    readVm(paths, params.name);
    const f = vmRuntimeFiles(paths, params.name);
    const file = params.which === 'qemu' ? f.qemuLog : f.serialLog;
    if (!fs.existsSync(file)) throw new KvmError('LOG_NOT_FOUND', `VM "${params.name}" has no ${params.which} log yet`, { hint: 'it is written from the first start on' });
    return { file, ...tailFile(file, query.bytes ?? LOG_BYTES) };
  });

  bind(app, R.pendingChanges, async ({ params }) => {
    readVm(paths, params.name);
    const { vmStatus } = await import('../../vm/status.js');
    const st = await vmStatus(paths, params.name);
    const running = st.state === 'running' || st.state === 'paused';
    const file = vmRuntimeFiles(paths, params.name).argv;
    if (!running || !fs.existsSync(file)) return { running, pending: false, added: [], removed: [] };
    const [{ planCommandLine }, { probeHost }] = await Promise.all([import('../../vm/plan.js'), import('../../host/probe.js')]);
    const planned = await planCommandLine(paths, params.name, await probeHost(paths));
    // What the VM started with, with what hotplug changed since (src/vm/argv-diff.ts).
    const { argvDiff, readLiveChanges, runningOptions } = await import('../../vm/argv-diff.js');
    const d = argvDiff(runningOptions(JSON.parse(fs.readFileSync(file, 'utf8')) as string[], readLiveChanges(paths, params.name, st.pid)), planned.argv);
    return { running, pending: d.added.length + d.removed.length > 0, ...d };
  });

  bind(app, R.setAutostart, async ({ params, body }) => {
    const action = await editDefinition(paths, params.name, (doc) => {
      const cur = doc.get('autostart');
      if (isMap(cur)) cur.set('enabled', body.enabled);
      else doc.set('autostart', body.enabled);
    });
    await ctx.watcher?.reconcile();
    return { name: params.name, enabled: body.enabled, action };
  });
}
