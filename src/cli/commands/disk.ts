/** kvmctl disk: create, info, resize, convert, snapshot, clone, check, rm — thin over src/disk/images.ts. */
import path from 'node:path';
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Prealloc } from '../../disk/qemu-img.js';
import type { Action } from '../action.js';

const FORMATS = ['raw', 'qcow2'];
const PREALLOC = ['off', 'metadata', 'falloc', 'full'];

function oneOf(what: string, v: string, allowed: string[]): string {
  if (!allowed.includes(v)) throw badInput('DISK_BAD_OPTION', `--${what} "${v}" is not one of ${allowed.join(', ')}`);
  return v;
}

async function sizeArg(v: string, what: string): Promise<number> {
  const { parseSize } = await import('../../definition/units.js');
  const n = parseSize(v);
  if (n === undefined) throw badInput('DISK_BAD_SIZE', `${what} "${v}" is not a size`, 'use a number with K, M, G or T, e.g. 20G');
  return n;
}

/** Progress on stderr: a bar on a terminal, a line per 10% otherwise, nothing with --quiet or --json.
 * The bar's line is ended also when the operation fails, so the error starts on its own line. */
async function withProgress<T>(label: string, quiet: boolean, fn: (update: (p: number) => void) => Promise<T>): Promise<T> {
  const { progressRenderer } = await import('../../disk/progress.js');
  const bar = progressRenderer(label, { quiet });
  try {
    return await fn(bar.update);
  } finally {
    bar.done();
  }
}

export function register(program: Command, action: Action): void {
  const disk = program.command('disk').description('disk images: create, info, resize, convert, snapshots, clones, check, rm (qemu-img)');
  // The disk service, with refusals naming the running VM that uses an image (src/vm/storage.ts).
  const svc = async () => {
    const [img, storage, { resolvePaths }] = await Promise.all([import('../../disk/images.js'), import('../../vm/storage.js'), import('../../host/paths.js')]);
    img.setImageInUseResolver(storage.runningImageUser(resolvePaths()));
    return img;
  };
  const abs = (p: string) => path.resolve(p); // CLI paths are relative to the current directory

  disk
    .command('create')
    .description('create an image; never overwrites an existing file without --force')
    .argument('<path>')
    .argument('[size]', 'e.g. 20G (optional with --backing)')
    .option('--format <fmt>', 'raw or qcow2', 'raw')
    .option('--prealloc <mode>', 'off, metadata (qcow2), falloc or full', 'off')
    .option('--cluster-size <size>', 'qcow2 cluster size, e.g. 64K')
    .option('--backing <file>', 'make a qcow2 overlay on this base image')
    .option('--force', 'replace an existing image (refused while in use)')
    .option('--no-space-check', 'do not refuse up front when a preallocated image does not fit')
    .option('-q, --quiet', 'no progress output')
    .action(
      action(async (ctx, file: string, size: string | undefined, o: { format: string; prealloc: string; clusterSize?: string; backing?: string; force?: boolean; spaceCheck: boolean; quiet?: boolean }) => {
        const format = oneOf('format', o.format, FORMATS);
        const prealloc = oneOf('prealloc', o.prealloc, PREALLOC) as Prealloc;
        const sizeBytes = size === undefined ? undefined : await sizeArg(size, 'size');
        const clusterSize = o.clusterSize ? await sizeArg(o.clusterSize, '--cluster-size') : undefined;
        const r = await withProgress(`creating ${path.basename(file)}`, !!o.quiet || ctx.json, async (update) =>
          (await svc()).createImage(
          {
            path: abs(file),
            size: sizeBytes,
            format,
            prealloc,
            clusterSize,
            backing: o.backing ? abs(o.backing) : undefined,
            force: o.force,
            checkFreeSpace: o.spaceCheck,
          },
          { onProgress: prealloc === 'full' ? update : undefined },
        ));
        ctx.out(r.info, () => `created ${r.path} (${r.info.format}, ${fmt(r.info['virtual-size'])})`);
      }),
    );

  disk
    .command('info')
    .description("an image's format, sizes, backing chain and snapshots (qemu-img info)")
    .argument('<path>')
    .option('--chain', 'with --json: the whole backing chain as an array')
    .action(
      action(async (ctx, file: string, o: { chain?: boolean }) => {
        const r = await (await svc()).inspectImage(abs(file), { chain: true });
        ctx.out(o.chain ? r.chain : r.info, () => renderInfo(r.info, r.chain ?? [r.info], r.inUse));
      }),
    );

  disk
    .command('resize')
    .description('resize to SIZE, or grow by +SIZE (shrinking needs --shrink)')
    .argument('<path>')
    .argument('<size>', '20G, +5G or -1G')
    .option('--shrink', 'allow making the image smaller (data past the new end is lost)')
    .allowUnknownOption(false)
    .action(
      action(async (ctx, file: string, size: string, o: { shrink?: boolean }) => {
        const live = await import('../../disk/live-resize.js');
        const r = await (await svc()).resizeImage(abs(file), size, { shrink: o.shrink, searchImages: await live.knownImages(ctx.paths), live: live.liveResolver(ctx.paths) });
        for (const w of r.warnings) ctx.warn(w);
        const how = r.live ? ` (live, in running VM "${r.live}")` : '';
        ctx.out(r, () => (r.from === r.to ? `${r.path} is already ${fmt(r.to)}` : `resized ${r.path}${how}: ${fmt(r.from)} → ${fmt(r.to)}`));
      }),
    );

  disk
    .command('convert')
    .description('copy SRC into a new image DST in another format (progress on stderr; Ctrl-C leaves no DST)')
    .argument('<src>')
    .argument('<dst>')
    .option('--format <fmt>', 'raw or qcow2', 'qcow2')
    .option('--prealloc <mode>', 'off, metadata (qcow2), falloc or full', 'off')
    .option('--force', 'replace an existing DST (refused while in use)')
    .option('--no-space-check', 'do not refuse up front when DST does not fit')
    .option('--rate-limit <size>', 'at most this many bytes per second, e.g. 50M (leaves I/O for running VMs)')
    .option('-q, --quiet', 'no progress output')
    .action(
      action(async (ctx, src: string, dst: string, o: { format: string; prealloc: string; force?: boolean; spaceCheck: boolean; rateLimit?: string; quiet?: boolean }) => {
        const format = oneOf('format', o.format, FORMATS);
        const prealloc = oneOf('prealloc', o.prealloc, PREALLOC) as Prealloc;
        const rateLimit = o.rateLimit ? await sizeArg(o.rateLimit, '--rate-limit') : undefined;
        const r = await withProgress(`converting ${path.basename(src)}`, !!o.quiet || ctx.json, async (update) =>
          (await svc()).convertImage({ src: abs(src), dst: abs(dst), format, prealloc, force: o.force, checkFreeSpace: o.spaceCheck, rateLimit }, { onProgress: update }),
        );
        ctx.out(r.info, () => `converted ${abs(src)} → ${r.path} (${r.info.format}, ${fmt(r.info['actual-size'] ?? 0)} on disk)`);
      }),
    );

  const snap = disk.command('snapshot').description('snapshots: internal (qcow2, VM stopped), or an external overlay when a running VM uses the image');
  snap
    .command('create')
    .description("internal qcow2 snapshot; for the disk of a running VM an external overlay <image>.NAME.qcow2 taken over QMP (the VM keeps running)")
    .argument('<path>')
    .argument('<name>')
    .action(
      action(async (ctx, file: string, name: string) => {
        const storage = await import('../../vm/storage.js');
        const owner = await storage.findImageOwner(ctx.paths, abs(file));
        if (owner && (await storage.runningImageUser(ctx.paths)(abs(file)))) {
          if (!owner.isTop) throw (await import('../../errors.js')).badInput('SNAPSHOT_NOT_TOP', `${abs(file)} is a frozen layer of VM "${owner.vm}"'s disk ${owner.id}`, `snapshot the VM instead: kvmctl snapshot ${owner.vm} ${name} --disk ${owner.id}`);
          const r = await storage.snapshotVm(ctx.paths, owner.vm, name, { disks: [owner.id] });
          ctx.out(r, () => `VM "${owner.vm}" is running: external snapshot "${name}" of ${owner.id}; it now writes to ${r.disks[0]!.file}`);
          return;
        }
        const s = await (await svc()).snapshotCreate(abs(file), name);
        ctx.out(s, () => `snapshot "${s.name}" (id ${s.id}) of ${abs(file)} created`);
      }),
    );
  snap
    .command('list')
    .alias('ls')
    .argument('<path>')
    .action(
      action(async (ctx, file: string) => {
        const list = await (await svc()).snapshotList(abs(file));
        ctx.out(list, () => (list.length ? renderSnapshots(list) : `${abs(file)} has no snapshots`));
      }),
    );
  snap
    .command('revert')
    .description('go back to a snapshot: everything written since is discarded')
    .argument('<path>')
    .argument('<name>')
    .action(
      action(async (ctx, file: string, name: string) => {
        await (await svc()).snapshotRevert(abs(file), name);
        ctx.out({ path: abs(file), reverted: name }, () => `${abs(file)} reverted to snapshot "${name}"`);
      }),
    );
  snap
    .command('delete')
    .alias('rm')
    .argument('<path>')
    .argument('<name>')
    .action(
      action(async (ctx, file: string, name: string) => {
        await (await svc()).snapshotDelete(abs(file), name);
        ctx.out({ path: abs(file), deleted: name }, () => `snapshot "${name}" of ${abs(file)} deleted`);
      }),
    );

  disk
    .command('clone')
    .description('a qcow2 overlay on BASE (default; BASE must not change afterwards) or a full copy (--full)')
    .argument('<base>')
    .argument('<new>')
    .option('--full', 'a standalone full copy instead of an overlay')
    .option('--format <fmt>', 'format of a full copy: raw or qcow2', 'qcow2')
    .option('--force', 'replace an existing NEW (refused while in use)')
    .option('-q, --quiet', 'no progress output')
    .action(
      action(async (ctx, base: string, dst: string, o: { full?: boolean; format: string; force?: boolean; quiet?: boolean }) => {
        const format = oneOf('format', o.format, FORMATS);
        const r = await withProgress(`copying ${path.basename(base)}`, !!o.quiet || ctx.json || !o.full, async (update) =>
          (await svc()).cloneImage({ base: abs(base), dst: abs(dst), full: o.full, format: o.full ? format : undefined, force: o.force }, { onProgress: update }),
        );
        ctx.out(r.info, () => (r.overlay ? `created overlay ${r.path} on ${r.info['backing-filename']}` : `copied ${abs(base)} → ${r.path}`));
      }),
    );

  disk
    .command('check')
    .description('check a qcow2 image for corruption and leaks (qemu-img check)')
    .argument('<path>')
    .action(
      action(async (ctx, file: string) => {
        const r = await (await svc()).checkImage(abs(file));
        ctx.out(r, () => {
          if (!r.supported) return `${r.path}: ${r.format} images have no metadata to check`;
          const x = r.report;
          return `${r.path}: ${r.status}${x.corruptions ? `, ${x.corruptions} corruptions` : ''}${x.leaks ? `, ${x.leaks} leaked clusters` : ''}${x['check-errors'] ? `, ${x['check-errors']} check errors` : ''}`;
        });
        if (r.supported && r.status !== 'clean') process.exitCode = 1;
      }),
    );

  disk
    .command('rm')
    .description('delete an image (needs --force; refused while in use or while an overlay needs it)')
    .argument('<path>')
    .option('--force', 'really delete')
    .action(
      action(async (ctx, file: string, o: { force?: boolean }) => {
        const r = await (await svc()).removeImage(abs(file), { force: o.force, searchDirs: [ctx.paths.images] });
        ctx.out(r, () => `deleted ${r.path}`);
      }),
    );
}

function fmt(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${u[i]}`;
}

type Info = { filename: string; format: string; 'virtual-size': number; 'actual-size'?: number; 'cluster-size'?: number; 'dirty-flag'?: boolean; 'backing-filename'?: string; 'backing-filename-format'?: string; snapshots?: Snap[] };
type Snap = { id: string; name: string; 'vm-state-size': number; 'date-sec': number; 'vm-clock-sec': number };

function renderSnapshots(list: Snap[]): string {
  const rows = [['ID', 'NAME', 'DATE', 'VM STATE'], ...list.map((s) => [s.id, s.name, new Date(s['date-sec'] * 1000).toISOString().replace('T', ' ').slice(0, 19), fmt(s['vm-state-size'])])];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

function renderInfo(info: Info, chain: Info[], inUse: boolean): string {
  const lines = [
    `image:        ${info.filename}`,
    `format:       ${info.format}${info['cluster-size'] ? ` (cluster ${fmt(info['cluster-size'])})` : ''}`,
    `virtual size: ${fmt(info['virtual-size'])} (${info['virtual-size']} bytes)`,
    `disk size:    ${fmt(info['actual-size'] ?? 0)}`,
  ];
  if (chain.length > 1) {
    lines.push(`backing:      ${chain.slice(1).map((c) => `${c.filename} (${c.format})`).join(' → ')}`);
  } else if (info['backing-filename']) {
    lines.push(`backing:      ${info['backing-filename']} (missing?)`);
  }
  if (info['dirty-flag']) lines.push('dirty:        yes (not closed cleanly; run kvmctl disk check)');
  if (inUse) lines.push('in use:       yes (a running QEMU has it open)');
  const snaps = info.snapshots ?? [];
  lines.push(`snapshots:    ${snaps.length ? '' : 'none'}`);
  if (snaps.length) lines.push(...renderSnapshots(snaps).split('\n').map((l) => `  ${l}`));
  return lines.join('\n');
}
