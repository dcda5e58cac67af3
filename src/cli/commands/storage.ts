/** kvmctl storage add|list|rm: the storage roots definitions' paths must stay inside (src/host/storage-roots.ts). */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  const storage = program
    .command('storage')
    .description('storage roots: the directories (and block devices) VM definitions may name paths in')
    .addHelpText(
      'after',
      "\nEvery disk, CD-ROM, kernel, initrd, share and socket path of a definition must resolve (after symlinks)\ninside a root. kvmctl's images dir and the test guest cache always are. Only this command (as the host's\nadministrator) changes them, never the API.\n\nExamples:\n  kvmctl storage add /var/lib/vms\n  kvmctl storage add /dev/vg0/web-disk\n  kvmctl storage list",
    );
  storage
    .command('add')
    .description('add a directory as a root, or list a block device as usable by VMs')
    .argument('<path>')
    .action(
      action(async (ctx, p: string) => {
        const { addStorage } = await import('../../host/storage-roots.js');
        const r = addStorage(ctx.paths, p);
        ctx.out(r, () => `${r.added ? 'added' : 'already there'}: ${r.kind === 'dir' ? 'root' : 'block device'} ${r.real}`);
      }),
    );
  storage
    .command('list')
    .alias('ls')
    .description('the storage roots and listed block devices')
    .action(
      action(async (ctx) => {
        const { storageRoots } = await import('../../host/storage-roots.js');
        const r = storageRoots(ctx.paths);
        const rows = [...r.dirs.map((d) => ({ kind: 'dir', path: d.real, source: d.source })), ...r.devices.map((d) => ({ kind: 'device', path: d.real, source: 'added' }))];
        ctx.out(rows, () => ['KIND\tSOURCE\tPATH', ...rows.map((x) => `${x.kind}\t${x.source}\t${x.path}`)].join('\n'));
      }),
    );
  storage
    .command('rm')
    .description('forget an added root or device (no file is touched; definitions using it stop validating)')
    .argument('<path>')
    .action(
      action(async (ctx, p: string) => {
        const { removeStorage } = await import('../../host/storage-roots.js');
        const r = removeStorage(ctx.paths, p);
        ctx.out(r, () => `removed: ${r.removed}`);
      }),
    );
}
