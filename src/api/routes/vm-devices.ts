/**
 * A VM's disks and NICs: list them (active layer, size, MAC as QEMU gets it), resize a disk (live in
 * a running VM: src/disk/images.ts resizeImage with the QMP resolver, as `kvmctl disk resize`), and
 * add/remove disks and NICs: the stored definition (a YAML document edit, comments kept) and,
 * while the VM runs, hotplug — through src/vm/devices.ts, as the CLI's attach-disk & co. When a
 * device cannot change live the answer says why, and /pending lists the difference.
 */
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { badInput, KvmError } from '../../errors.js';
import { readVm } from '../../definition/store.js';
import { deriveMac } from '../../net/mac.js';
import { nicId } from '../../qemu/argv.js';
import type { LiveMode } from '../../vm/devices.js';
import type { ServerCtx } from '../context.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';

const mode = (live: boolean | 'true' | 'false' | undefined): LiveMode => (live === undefined ? 'auto' : live === true || live === 'true' ? 'live' : 'config');

export function vmDeviceRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;

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

  const dev = () => import('../../vm/devices.js');
  const after = async <T extends { name: string }>(r: T) => {
    await ctx.watcher?.reconcile();
    return r;
  };

  bind(app, R.attachVmDisk, async ({ params, body }) => {
    const { live, ...disk } = body;
    return after(await (await dev()).attachDisk(paths, params.name, disk, { mode: mode(live) }));
  });

  bind(app, R.detachVmDisk, async ({ params, query }) =>
    after(await (await dev()).detachDisk(paths, params.name, params.id, { mode: mode(query.live), deleteImage: query.deleteImage === 'true' })),
  );

  bind(app, R.addVmNic, async ({ params, body }) => {
    const { live, ...nic } = body;
    return after(await (await dev()).addNic(paths, params.name, nic, { mode: mode(live), netns: ctx.netns }));
  });

  bind(app, R.removeVmNic, async ({ params, query }) => after(await (await dev()).removeNic(paths, params.name, params.id, { mode: mode(query.live), netns: ctx.netns })));
}
