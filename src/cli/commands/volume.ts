/**
 * kvmctl volume …: volumes (RBD images) of an rbd storage (src/storage/volumes.ts,
 * docs/storage-ceph.md). A volume is written STORAGE/VOLUME, a snapshot STORAGE/VOLUME@SNAP.
 * With --netns (or KVMCTL_NETNS) the rbd and qemu-img calls run in that namespace, as QEMU does.
 */
import type { Command } from 'commander';
import type { Action } from '../action.js';
import { badInput } from '../../errors.js';

const NETNS = ['--netns <name>', 'reach the cluster from this network namespace (where the VMs run); default: env KVMCTL_NETNS'] as const;

async function sizeArg(v: string): Promise<number> {
  const { parseSize } = await import('../../definition/units.js');
  const n = parseSize(v);
  if (n === undefined) throw badInput('BAD_SIZE', `"${v}" is not a size`, 'use a number with K, M, G or T, e.g. 20G');
  return n;
}
const mib = (n: number) => `${(n / 2 ** 20).toFixed(n % 2 ** 20 ? 1 : 0)} MiB`;

export function register(program: Command, action: Action): void {
  const volume = program
    .command('volume')
    .description('volumes (RBD images) of an rbd storage: create, list, info, resize, snapshot, clone, rm, import, export')
    .addHelpText('after', '\nExamples:\n  kvmctl volume create ceph1/vm-web-disk0 20G\n  kvmctl volume import debian.qcow2 ceph1/golden\n  kvmctl volume snapshot create ceph1/golden@v1\n  kvmctl volume clone ceph1/golden@v1 ceph1/vm-web-disk0\n  kvmctl volume resize ceph1/vm-web-disk0 40G   (live when a VM runs it)');
  const svc = () => import('../../storage/volumes.js');
  const vc = (ctx: { paths: import('../../host/paths.js').Paths; netns(): string | undefined }) => ({ paths: ctx.paths, netns: ctx.netns() });
  volume.command('create').description('a new volume (RBD format 2, layering + exclusive-lock)').argument('<storage/volume>').argument('<size>').option(...NETNS)
    .action(action(async (ctx, ref: string, size: string) => {
      const r = await (await svc()).createVolume(vc(ctx), ref, await sizeArg(size));
      ctx.out(r, () => `created ${r.volume} (${mib(r.size)})`);
    }));
  volume.command('list').alias('ls').description("a storage's volumes and their snapshots").argument('<storage>').option(...NETNS)
    .action(action(async (ctx, storage: string) => {
      const rows = await (await svc()).listVolumes(vc(ctx), storage);
      ctx.out(rows, () => ['VOLUME\tSIZE\tSNAPSHOT\tPARENT', ...rows.map((x) => `${x.volume}\t${mib(x.size)}\t${x.snapshot ? `${x.snapshot}${x.protected ? ' (protected)' : ''}` : '-'}\t${x.parent ?? '-'}`)].join('\n'));
    }));
  volume.command('info').description('size, features, parent, snapshots, open by (watchers), named by (VMs)').argument('<storage/volume>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const r = await (await svc()).volumeInfo(vc(ctx), ref);
      ctx.out(r, () => [`${r.storage}/${r.volume}: ${mib(r.size)}`, `features: ${r.features.join(', ')}`, `parent: ${r.parent ?? '-'}`, `snapshots: ${r.snapshots}`, `open by: ${r.watchers.join(', ') || '-'}`, `disk of: ${r.usedBy.map((u) => `${u.vm} (${u.disk})`).join(', ') || '-'}`].join('\n'));
    }));
  volume.command('resize').description('grow (or with --shrink, shrink) a volume; live through QEMU when a VM runs it').argument('<storage/volume>').argument('<size>').option('--shrink', 'allow making it smaller (data past the new end is lost)').option(...NETNS)
    .action(action(async (ctx, ref: string, size: string, o: { shrink?: boolean }) => {
      const r = await (await svc()).resizeVolume(vc(ctx), ref, await sizeArg(size), { shrink: o.shrink });
      ctx.out(r, () => `${r.volume}${r.live ? ` (live, in running VM "${r.live}")` : ''}: ${mib(r.from)} → ${mib(r.to)}`);
    }));
  const snap = volume.command('snapshot').description('RBD snapshots of a volume');
  snap.command('create').description('take a snapshot (the guest agent freezes the filesystems when the VM runs one)').argument('<storage/volume@snap>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const r = await (await svc()).snapshotCreate(vc(ctx), ref);
      ctx.out(r, () => `snapshot ${r.snapshot}: ${r.consistency}`);
    }));
  snap.command('list').alias('ls').argument('<storage/volume>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const rows = await (await svc()).snapshotList(vc(ctx), ref);
      ctx.out(rows, () => ['NAME\tSIZE\tPROTECTED\tTAKEN', ...rows.map((x) => `${x.name}\t${mib(x.size)}\t${x.protected ? 'yes' : 'no'}\t${x.at}`)].join('\n'));
    }));
  snap.command('rollback').description('put the volume back to the snapshot (refused while a VM has it open)').argument('<storage/volume@snap>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const r = await (await svc()).snapshotRollback(vc(ctx), ref);
      ctx.out(r, () => `${r.volume} rolled back to ${r.snapshot}`);
    }));
  snap.command('rm').description('remove a snapshot (refused while linked clones depend on it)').argument('<storage/volume@snap>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const r = await (await svc()).snapshotRemove(vc(ctx), ref);
      ctx.out(r, () => `removed snapshot ${r.removed}`);
    }));
  volume.command('clone').description('a linked (copy-on-write) clone of a snapshot; the snapshot is protected first').argument('<storage/volume@snap>').argument('<storage/new-volume>').option(...NETNS)
    .action(action(async (ctx, src: string, dst: string) => {
      const r = await (await svc()).cloneVolume(vc(ctx), src, dst);
      ctx.out(r, () => `cloned ${r.parent} → ${r.clone}`);
    }));
  volume.command('rm').description('remove a volume (refused while a VM names it, a client has it open, or it has snapshots)').argument('<storage/volume>').option(...NETNS)
    .action(action(async (ctx, ref: string) => {
      const r = await (await svc()).removeVolume(vc(ctx), ref);
      ctx.out(r, () => `removed ${r.removed}`);
    }));
  const progress = async <T>(label: string, quiet: boolean, fn: (u: (p: number) => void) => Promise<T>) => {
    const { progressRenderer } = await import('../../disk/progress.js');
    const bar = progressRenderer(label, { quiet });
    try {
      return await fn(bar.update);
    } finally {
      bar.done();
    }
  };
  volume.command('import').description('a disk image file (qcow2, raw, …; in a storage root) → a new volume of its size').argument('<file>').argument('<storage/volume>').option('-q, --quiet', 'no progress').option(...NETNS)
    .action(action(async (ctx, file: string, ref: string, o: { quiet?: boolean; json?: boolean }) => {
      const r = await progress(`import ${ref}`, !!o.quiet || !!o.json, async (u) => (await svc()).importVolume(vc(ctx), file, ref, { onProgress: u }));
      ctx.out(r, () => `imported ${r.from} (${r.format}, ${mib(r.size)}) → ${r.volume}`);
    }));
  volume.command('export').description('a volume (or STORAGE/VOLUME@SNAP) → a new qcow2 or raw file in a storage root').argument('<storage/volume>').argument('<file>').option('--format <fmt>', 'qcow2 or raw (default: by the file name)').option('-q, --quiet', 'no progress').option(...NETNS)
    .action(action(async (ctx, ref: string, file: string, o: { format?: string; quiet?: boolean; json?: boolean }) => {
      if (o.format !== undefined && o.format !== 'qcow2' && o.format !== 'raw') throw badInput('BAD_FORMAT', `--format ${o.format}: use qcow2 or raw`);
      const r = await progress(`export ${ref}`, !!o.quiet || !!o.json, async (u) => (await svc()).exportVolume(vc(ctx), ref, file, { format: o.format as 'qcow2' | 'raw' | undefined, onProgress: u }));
      ctx.out(r, () => `exported ${r.volume} → ${r.to} (${r.format})`);
    }));
}
