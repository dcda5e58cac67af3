/** VM-level storage: install (boot once from an ISO), cdrom eject/insert, snapshot of a VM's disks. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

const storage = () => import('../../vm/storage.js');

export function register(program: Command, action: Action): void {
  program
    .command('install')
    .description('start a VM with an installer ISO in its first CD-ROM drive, booting once from it (-boot once=d), then from disk on the next reset')
    .argument('<name>')
    .requiredOption('--iso <file>', 'the installer ISO')
    .option('--wait-for-guest [marker]', 'also wait for a line on the serial console')
    .option('--netns <name>', 'create the VM\'s links and networks in this existing network namespace and run QEMU inside it (default: env KVMCTL_NETNS)')
    .addHelpText('after', '\nThe definition is not changed: the next `kvmctl start` boots as defined.\nExample:\n  kvmctl install exam_vm --iso install-amd64-minimal.iso')
    .action(
      action(async (ctx, name: string, o: { iso: string; waitForGuest?: string | boolean }) => {
        const netns = ctx.netns();
        const { startVm } = await import('../../vm/start.js');
        const r = await startVm(ctx.paths, name, { install: { iso: o.iso }, waitForGuest: o.waitForGuest, netns, log: (m) => process.stderr.write(`${m}\n`) });
        for (const w of r.warnings) ctx.warn(w);
        ctx.out(r, () => `installing ${name} from ${o.iso} (pid ${r.pid}, ${r.accel}): boots once from the CD-ROM, then from disk`);
      }),
    );

  program
    .command('cdrom')
    .description("eject or insert a running VM's CD-ROM medium (QMP)")
    .argument('<name>')
    .argument('<op>', 'eject or insert')
    .argument('[file]', 'the ISO to insert')
    .option('--id <drive>', "the CD-ROM drive (default: the definition's first, cd0)")
    .option('--force', 'eject even when the guest has locked the tray')
    .action(
      action(async (ctx, name: string, op: string, file: string | undefined, o: { id?: string; force?: boolean }) => {
        const { badInput } = await import('../../errors.js');
        if (op !== 'eject' && op !== 'insert') throw badInput('BAD_OPERATION', `"${op}" is not eject or insert`);
        const r = await (await storage()).cdromVm(ctx.paths, name, op, { file, id: o.id, force: o.force });
        ctx.out(r, () => (r.inserted ? `${name} ${r.id}: ${r.inserted}` : `${name} ${r.id}: empty${r.trayOpen ? ' (tray open)' : ''}`));
      }),
    );

  program
    .command('snapshot')
    .description("snapshot a VM's disks: external qcow2 overlays while it runs (it keeps running), internal qcow2 snapshots when stopped; RBD volume disks: an RBD snapshot of each volume")
    .argument('<name>')
    .argument('[snapshot]', 'snapshot name (default: snap-YYYYMMDD-HHMMSS)')
    .option('--disk <id...>', 'only these disks (default: every writable disk)')
    .option('--list', 'list the snapshots of each disk')
    .option('--revert', 'go back to the snapshot (VM stopped): everything written since is discarded')
    .option('--rm', 'remove the snapshot (RBD volume disks; image files: kvmctl disk snapshot delete)')
    .option('--netns <name>', 'where Ceph is reachable (RBD volume disks; default: env KVMCTL_NETNS)')
    .option('--no-freeze', "don't freeze the guest's filesystems through its agent (the snapshot is then crash-consistent)")
    .action(
      action(async (ctx, name: string, snap: string | undefined, o: { disk?: string[]; list?: boolean; revert?: boolean; rm?: boolean; freeze: boolean }) => {
        const s = await storage();
        const netns = ctx.netns();
        if (o.list) {
          const r = await s.listVmSnapshots(ctx.paths, name, { netns });
          ctx.out(r, () =>
            r.disks
              .map((d) => `${d.id}: ${d.top}${d.external.length ? `\n  external: ${d.external.map((x) => x.name).join(' → ')}` : ''}${d.internal.length ? `\n  internal: ${d.internal.join(', ')}` : ''}`)
              .join('\n'),
          );
          return;
        }
        if (o.revert) {
          const { badInput } = await import('../../errors.js');
          if (!snap) throw badInput('SNAPSHOT_MISSING', '--revert needs the snapshot name');
          const r = await s.revertVm(ctx.paths, name, snap, { netns });
          ctx.out(r, () => `${name}: ${r.disks.join(', ')} reverted to "${snap}" (${r.mode})`);
          return;
        }
        if (o.rm) {
          const { badInput } = await import('../../errors.js');
          if (!snap) throw badInput('SNAPSHOT_MISSING', '--rm needs the snapshot name');
          const { readVm } = await import('../../definition/store.js');
          const vs = await import('../../vm/volume-snapshots.js');
          const vm = readVm(ctx.paths, name);
          if (!vs.hasVolumeDisks(vm)) throw badInput('SNAPSHOT_RM_FILES', `VM "${name}" has image-file disks: remove their snapshots with kvmctl disk snapshot delete FILE NAME (or the API's DELETE /api/vms/${name}/snapshots/${snap})`);
          const r = await vs.removeVolumeVmSnapshot(ctx.paths, vm, snap, { netns });
          ctx.out(r, () => `${name}: snapshot "${snap}" removed from ${r.disks.join(', ')}`);
          return;
        }
        const at = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
        const r = await s.snapshotVm(ctx.paths, name, snap ?? `snap-${at}`, { disks: o.disk, noFreeze: !o.freeze, netns });
        const consistency = r.mode === 'external' || r.note || r.frozen ? [r.frozen ? `${name}: guest filesystems were frozen through the agent (consistent)` : `${name}: ${r.note ?? 'not frozen'}`] : [];
        ctx.out(r, () => [...r.disks.map((d) => (r.mode === 'external' ? `${name} ${d.id}: snapshot "${r.name}": now writing to ${d.file} (on ${d.backing})` : `${name} ${d.id}: internal snapshot "${r.name}" of ${d.file}`)), ...consistency].join('\n'));
      }),
    );
}
