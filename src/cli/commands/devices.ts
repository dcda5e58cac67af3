/**
 * attach-disk, detach-disk, attach-nic, detach-nic: a VM's disks and NICs in its definition and,
 * while it runs, hotplugged (src/vm/devices.ts, the same service as the API's device routes).
 */
import type { Command } from 'commander';
import type { Action } from '../action.js';
import type { DeviceChange, LiveMode } from '../../vm/devices.js';
import { badInput } from '../../errors.js';

const devices = () => import('../../vm/devices.js');

type LiveOpts = { live?: boolean; config?: boolean };

async function modeOf(o: LiveOpts): Promise<LiveMode> {
  if (o.live && o.config) {
    const { badInput } = await import('../../errors.js');
    throw badInput('BAD_OPTIONS', '--live and --config exclude each other', 'leave both out: live when it can be, else the definition only');
  }
  return o.live ? 'live' : o.config ? 'config' : 'auto';
}

const liveOptions = (c: Command) =>
  c
    .option('--live', 'change the running VM now or fail (nothing changed)')
    .option('--config', 'change the definition only (the VM gets it at its next start)')
    .option('--netns <name>', "the network namespace the VM's links are in (default: env KVMCTL_NETNS; must be the VM's)");

function describe(r: DeviceChange, what: string): string {
  if (r.live) return `${r.name}: ${what} ${r.id} live${r.device ? ` (${r.device}${r.bus ? ` on ${r.bus}` : ''})` : ''}; definition ${r.action}`;
  const tail = r.pendingRestart ? `; the running VM changes at its next start${r.why ? ` (${r.why})` : ''}` : '';
  return `${r.name}: ${what} ${r.id} in the definition (${r.action})${tail}${r.deleted ? `; deleted ${r.deleted}` : ''}`;
}

export function register(program: Command, action: Action): void {
  liveOptions(
    program
      .command('attach-disk')
      .description('add an image as a disk of a VM: in its definition and, while it runs, hotplugged (virtio on a spare PCIe root port, scsi on its controller)')
      .argument('<name>')
      .argument('[file]', 'the image (relative: the images dir; inside a storage root)')
      .option('--volume <storage/volume>', 'an RBD volume instead of an image file (kvmctl volume list)')
      .option('--id <id>', 'disk id (default: diskN)')
      .option('--interface <if>', 'virtio (default), scsi, ide, sata, nvme (only virtio and scsi hotplug)')
      .option('--read-only', 'read-only'),
  )
    .addHelpText('after', '\nExamples:\n  kvmctl disk create data.qcow2 --size 10G && kvmctl attach-disk web1 data.qcow2 --live\n  kvmctl volume create ceph1/data 10G && kvmctl attach-disk web1 --volume ceph1/data --live\nIDE and SATA disks cannot be hotplugged (QEMU): they are added for the next start.')
    .action(
      action(async (ctx, name: string, file: string | undefined, o: LiveOpts & { volume?: string; id?: string; interface?: 'virtio' | 'scsi' | 'ide' | 'sata' | 'nvme'; readOnly?: boolean }) => {
        if ((file === undefined) === (o.volume === undefined)) throw badInput('BAD_ARGS', 'give an image file or --volume STORAGE/VOLUME (one of them)', 'kvmctl attach-disk web1 data.qcow2 --live, or kvmctl attach-disk web1 --volume ceph1/data --live');
        const what = o.volume !== undefined ? { volume: o.volume } : { file: file! };
        const r = await (await devices()).attachDisk(ctx.paths, name, { ...what, id: o.id, interface: o.interface, readOnly: o.readOnly }, { mode: await modeOf(o) });
        ctx.out(r, () => describe(r, 'attached disk'));
      }),
    );

  liveOptions(
    program
      .command('detach-disk')
      .description('remove a disk from a VM: from its definition and, while it runs, unplugged (the guest must let go of it)')
      .argument('<name>')
      .argument('<id>', 'disk id (disk0, …)')
      .option('--delete-image', 'also delete its image (VM stopped, no snapshot overlays)'),
  ).action(
    action(async (ctx, name: string, id: string, o: LiveOpts & { deleteImage?: boolean }) => {
      const r = await (await devices()).detachDisk(ctx.paths, name, id, { mode: await modeOf(o), deleteImage: o.deleteImage });
      ctx.out(r, () => describe(r, 'detached disk'));
    }),
  );

  liveOptions(
    program
      .command('attach-nic')
      .description("add a NIC to a VM: in its definition and, while it runs, hotplugged (its tap made in the VM's namespace)")
      .argument('<name>')
      .option('--network <net>', 'a kvmctl network (bridge, host-only, nat; macvtap only at the next start)')
      .option('--user', 'user-mode networking')
      .option('--model <model>', 'virtio (default), e1000, e1000e, rtl8139, vmxnet3')
      .option('--id <id>', 'NIC id (default: netN)'),
  ).action(
    action(async (ctx, name: string, o: LiveOpts & { network?: string; user?: boolean; model?: string; id?: string; netns?: string }) => {
      const { badInput } = await import('../../errors.js');
      if (!!o.network === !!o.user) throw badInput('BAD_OPTIONS', 'give one of --network NET or --user', 'e.g. kvmctl attach-nic web1 --network lan');
      const r = await (await devices()).addNic(ctx.paths, name, { ...(o.network ? { network: o.network } : { user: true as const }), model: o.model, id: o.id }, { mode: await modeOf(o), netns: ctx.netns() });
      ctx.out(r, () => describe(r, 'attached NIC'));
    }),
  );

  liveOptions(program.command('detach-nic').description('remove a NIC from a VM: from its definition and, while it runs, unplugged (its tap removed)').argument('<name>').argument('<id>', 'NIC id (net0, …)')).action(
    action(async (ctx, name: string, id: string, o: LiveOpts & { netns?: string }) => {
      const r = await (await devices()).removeNic(ctx.paths, name, id, { mode: await modeOf(o), netns: ctx.netns() });
      ctx.out(r, () => describe(r, 'detached NIC'));
    }),
  );
}
