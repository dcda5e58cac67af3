/**
 * kvmctl storage add|list|rm: the storage roots definitions' paths must stay inside (src/host/storage-roots.ts);
 * kvmctl storage define|add -f|show|check|rm NAME: named storage definitions, `kind: storage` of type dir
 * or rbd (src/storage/defs.ts, docs/storage-ceph.md). Both are host configuration: local commands
 * only, never the API.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { Action } from '../action.js';
import type { Paths } from '../../host/paths.js';

async function defineFromFile(paths: Paths, file: string) {
  const { defineStorage } = await import('../../storage/defs.js');
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const { badInput } = await import('../../errors.js');
    throw badInput('FILE_NOT_FOUND', `${file}: ${(e as Error).message}`);
  }
  return defineStorage(paths, text, file === '-' ? '<stdin>' : path.resolve(file));
}

export function register(program: Command, action: Action): void {
  const storage = program
    .command('storage')
    .description('storage roots (the directories and block devices VM definitions may name paths in) and named storages (dir, rbd)')
    .addHelpText(
      'after',
      "\nEvery disk, CD-ROM, kernel, initrd, share and socket path of a definition must resolve (after symlinks)\ninside a root. kvmctl's images dir and the test guest cache always are. Named storages (kind: storage)\nare a dir (a root with a name) or a Ceph RBD pool whose volumes disks name (storage: NAME, volume: IMAGE).\nOnly these commands (as the host's administrator) change them, never the API.\n\nExamples:\n  kvmctl storage add /var/lib/vms\n  kvmctl storage add /dev/vg0/web-disk\n  kvmctl storage add -f ceph1.yaml     (or storage define -f)\n  kvmctl storage check ceph1\n  kvmctl storage list",
    );
  storage
    .command('add')
    .description('add a directory as a root, or list a block device as usable by VMs; with -f FILE a named storage (the same as define)')
    .argument('[path]')
    .option('-f, --file <file>', 'a named storage definition (kind: storage; "-" reads standard input)')
    .action(
      action(async (ctx, p: string | undefined, o: { file?: string }) => {
        const { badInput } = await import('../../errors.js');
        if (o.file !== undefined) {
          if (p !== undefined) throw badInput('BAD_ARGUMENTS', 'give a path (a root) or -f FILE (a named storage), not both');
          const r = await defineFromFile(ctx.paths, o.file);
          ctx.out(r, () => `storage/${r.name} (${r.type}) ${r.action}${r.root ? `; root ${r.root}` : ''}`);
          return;
        }
        if (p === undefined) throw badInput('BAD_ARGUMENTS', 'storage add needs a PATH (a root or block device) or -f FILE (a named storage)', 'kvmctl storage add /var/lib/vms, or kvmctl storage add -f ceph1.yaml');
        const { addStorage } = await import('../../host/storage-roots.js');
        const r = addStorage(ctx.paths, p);
        ctx.out(r, () => `${r.added ? 'added' : 'already there'}: ${r.kind === 'dir' ? 'root' : 'block device'} ${r.real}`);
      }),
    );
  storage
    .command('define')
    .description('add or replace a named storage from a YAML file (kind: storage, type: dir or rbd)')
    .requiredOption('-f, --file <file>', 'the definition ("-" reads standard input)')
    .action(
      action(async (ctx, o: { file: string }) => {
        const r = await defineFromFile(ctx.paths, o.file);
        ctx.out(r, () => `storage/${r.name} (${r.type}) ${r.action}${r.root ? `; root ${r.root}` : ''}`);
      }),
    );
  storage
    .command('list')
    .alias('ls')
    .description('the storage roots, listed block devices and named storages')
    .action(
      action(async (ctx) => {
        const [{ storageRoots }, { listStorages }] = await Promise.all([import('../../host/storage-roots.js'), import('../../storage/defs.js')]);
        const r = storageRoots(ctx.paths);
        const rows: { kind: string; name?: string; source?: string; path: string }[] = [
          ...r.dirs.map((d) => ({ kind: 'dir', source: d.source, path: d.real })),
          ...r.devices.map((d) => ({ kind: 'device', source: 'added', path: d.real })),
        ];
        for (const s of await listStorages(ctx.paths)) {
          rows.push({ kind: s.type ?? '?', name: s.name, source: 'named', path: s.error ? `invalid: ${s.error}` : s.type === 'rbd' ? `pool ${s.pool}${s.namespace ? `/${s.namespace}` : ''} as client.${s.user}` : s.path! });
        }
        ctx.out(rows, () => ['KIND\tSOURCE\tNAME\tPATH', ...rows.map((x) => `${x.kind}\t${x.source}\t${x.name ?? '-'}\t${x.path}`)].join('\n'));
      }),
    );
  storage
    .command('show')
    .description('a named storage definition, as stored (the keyring is a path; the key is never shown)')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const { readStorage } = await import('../../storage/defs.js');
        const s = await readStorage(ctx.paths, name);
        ctx.out(s, () => Object.entries(s).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`).join('\n'));
      }),
    );
  storage
    .command('check')
    .description('is a named storage usable from here: reachable, free space, permissions (exit 1 when not)')
    .argument('<name>')
    .option('--netns <name>', 'check from this network namespace (where the VMs run)')
    .action(
      action(async (ctx, name: string) => {
        const { checkStorage } = await import('../../storage/check.js');
        const r = await checkStorage(ctx.paths, name, ctx.netns());
        ctx.out(r, () => [`storage/${r.storage} (${r.type}): ${r.ok ? 'ok' : 'PROBLEMS'}`, ...r.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}`)].join('\n'));
        if (!r.ok) process.exitCode = 1;
      }),
    );
  storage
    .command('rm')
    .description('forget an added root or device (a path), or a named storage (a name); no data is touched')
    .argument('<path-or-name>')
    .action(
      action(async (ctx, p: string) => {
        if (!p.includes('/')) {
          const { removeStorageDef } = await import('../../storage/defs.js');
          const r = await removeStorageDef(ctx.paths, p);
          ctx.out(r, () => `removed: storage/${r.removed}`);
          return;
        }
        const { removeStorage } = await import('../../host/storage-roots.js');
        const r = removeStorage(ctx.paths, p);
        ctx.out(r, () => `removed: ${r.removed}`);
      }),
    );
}
