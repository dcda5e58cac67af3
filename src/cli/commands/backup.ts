/**
 * `kvmctl backup create|list|show|restore|verify|prune` — thin over src/backup/. Every subcommand
 * names its repository with --to DIR (default: host.json backup.repository, else <data>/backups).
 */
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Action } from '../action.js';

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const count = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw badInput('BACKUP_BAD_OPTION', `--keep-${what} "${v}" is not a whole number`);
  return n;
};

export function register(program: Command, action: Action): void {
  const b = program.command('backup').description('backups of VM disks, NVRAM and TPM state: full and incremental (persistent dirty bitmaps), verify, restore, prune');
  const repoOpt = (c: Command) => c.option('--to <dir>', 'the backup repository (default: host.json backup.repository, else <data>/backups)');

  repoOpt(
    b
      .command('create')
      .description('back up every writable disk of a VM at one point in time (running: through its QEMU, filesystems frozen when an agent answers; stopped: qemu-storage-daemon)')
      .argument('<vm>')
      .option('--full', 'a full backup even when an incremental is possible')
      .option('--incremental', 'an incremental (the default whenever it is safe); falls back to full and says why')
      .option('--no-freeze', 'do not freeze the guest filesystems through the agent')
      .option('--bwlimit <size>', 'copy at most this much per second and disk (e.g. 50M)')
      .option('-q, --quiet', 'no progress output'),
  ).action(
    action(async (ctx, vm: string, o: { to?: string; full?: boolean; incremental?: boolean; freeze: boolean; quiet?: boolean; bwlimit?: string }) => {
      if (o.full && o.incremental) throw badInput('BACKUP_BAD_OPTION', '--full and --incremental exclude each other');
      const bwlimit = o.bwlimit === undefined ? undefined : (await import('../../definition/units.js')).parseSize(o.bwlimit);
      if (o.bwlimit !== undefined && !(bwlimit && bwlimit > 0)) throw badInput('BACKUP_BAD_OPTION', `--bwlimit: "${o.bwlimit}" is not a size per second`, 'e.g. --bwlimit 50M');
      const { progressRenderer } = await import('../../disk/progress.js');
      const bar = progressRenderer(`backup of ${vm}`, { quiet: !!o.quiet || ctx.json });
      const t0 = Date.now();
      let r;
      try {
        r = await (await import('../../backup/create.js')).createBackup(ctx.paths, vm, {
          to: o.to,
          mode: o.full ? 'full' : o.incremental ? 'incremental' : 'auto',
          noFreeze: !o.freeze,
          netns: ctx.netns(),
          bwlimit,
          onProgress: (done, total) => bar.update((done * 100) / total),
        });
        bar.update(100);
      } finally {
        bar.done();
      }
      const secs = Math.max(0.001, (Date.now() - t0) / 1000);
      if (r.reason && o.incremental) ctx.warn(`full backup, not incremental: ${r.reason}`);
      const m = r.manifest;
      ctx.out(r, () =>
        [
          `${vm}@${m.id}: ${m.kind} backup in ${r.dir} (${mib(r.bytes)} written, ${secs.toFixed(1)} s, ${mib(r.bytes / secs)}/s)`,
          ...(m.kind === 'full' && r.reason ? [`full because ${r.reason}`] : []),
          ...m.disks.map((d) => `  ${d.id.padEnd(8)} ${`${d.kind}${d.via && d.via !== 'full' ? ` (${d.via})` : ''}`.padEnd(22)} ${mib(d.virtualSize).padStart(11)} disk, ${mib(d.fileSize).padStart(10)} in backup  sha256 ${d.sha256.slice(0, 16)}…${d.fullBecause ? `  (${d.fullBecause})` : ''}`),
          ...m.skipped.map((s) => `  ${s.id.padEnd(8)} skipped (${s.why})`),
          `  ${m.frozen ? 'filesystems frozen (application-consistent)' : m.note ?? 'not frozen'}`,
          ...(m.nvram ? ['  NVRAM kept'] : []),
          ...(m.tpm ? ['  TPM state kept'] : []),
        ].join('\n'),
      );
    }),
  );

  repoOpt(b.command('list').description("a VM's backups (or every VM's), oldest first").argument('[vm]')).action(
    action(async (ctx, vm: string | undefined, o: { to?: string }) => {
      const r = await import('../../backup/repo.js');
      const repo = r.resolveRepo(ctx.paths, o.to);
      const vms = vm ? [vm] : r.listBackedUpVms(repo);
      const rows = vms.flatMap((v) => r.listBackups(repo, v));
      ctx.out(rows, () =>
        rows.length
          ? [
              'BACKUP                                   KIND         DISKS  SIZE        PARENT',
              ...rows.map((m) => `${`${m.vm}@${m.id}`.padEnd(40)} ${m.kind.padEnd(12)} ${String(m.disks.length).padEnd(6)} ${mib(m.disks.reduce((s, d) => s + d.fileSize, 0)).padEnd(11)} ${m.parent ?? '-'}`),
            ].join('\n')
          : `no backups in ${repo}${vm ? ` of VM "${vm}"` : ''}`,
      );
    }),
  );

  b.command('schedule')
    .description('the scheduled backups (backup.schedule in definitions, run by kvmctl serve): next run and last result')
    .action(
      action(async (ctx) => {
        const [{ BackupScheduler }, { readVm }] = await Promise.all([import('../../backup/scheduler.js'), import('../../definition/store.js')]);
        const tasks = new BackupScheduler(ctx.paths, (n) => {
          try {
            return readVm(ctx.paths, n);
          } catch {
            return undefined;
          }
        }).tasks();
        ctx.out(tasks, () =>
          tasks.length
            ? tasks.map((t) => `${t.vm.padEnd(16)} ${t.schedule.padEnd(18)} next ${t.next}  last ${t.last ? `${t.last.at} ${t.last.ok ? `ok ${t.last.id} (${t.last.kind})` : `FAILED: ${t.last.error}`}` : '-'}`).join('\n')
            : 'no VM has a backup.schedule',
        );
      }),
    );

  repoOpt(b.command('show').description("one backup's manifest").argument('<vm@id>', 'VM@ID, or VM@latest')).action(
    action(async (ctx, ref: string, o: { to?: string }) => {
      const r = await import('../../backup/repo.js');
      const m = r.findBackup(r.resolveRepo(ctx.paths, o.to), ref);
      ctx.out(m);
    }),
  );

  repoOpt(
    b
      .command('restore')
      .description('restore a backup: over the VM it came from (stopped; --force to replace its disks) or as a new VM with --as')
      .argument('<vm@id>', 'VM@ID, or VM@latest')
      .option('--as <name>', 'restore as a new VM with its own disks (RBD disks: new volumes NAME-DISK in the same storage) and new MACs')
      .option('--as-files', 'with --as: RBD volume disks become image files (NAME-DISK.img in the images dir)')
      .option('--force', 'replace existing disks, NVRAM and TPM state'),
  ).action(
    action(async (ctx, ref: string, o: { to?: string; as?: string; asFiles?: boolean; force?: boolean }) => {
      const r = await (await import('../../backup/restore.js')).restoreBackup(ctx.paths, ref, { ...o, netns: ctx.netns() });
      ctx.out(r, () =>
        [
          `restored ${r.from} as VM "${r.vm}" (definition ${r.definition})`,
          ...r.disks.map((d) => `  ${d.id.padEnd(8)} → ${d.file}${d.replaced ? ' (replaced)' : ''}`),
          ...(r.nvram ? [`  NVRAM → ${r.nvram}`] : []),
          ...(r.tpm ? [`  TPM state → ${r.tpm}`] : []),
        ].join('\n'),
      );
    }),
  );

  repoOpt(
    b
      .command('verify')
      .description('re-read a backup (or every backup of a VM): qemu-img check of each chain file, content SHA-256 against the manifest, NVRAM/TPM sums; exit 1 on any problem')
      .argument('<ref>', 'VM@ID, VM@latest, or VM for all of its backups'),
  ).action(
    action(async (ctx, ref: string, o: { to?: string }) => {
      const [v, r] = await Promise.all([import('../../backup/verify-prune.js'), import('../../backup/repo.js')]);
      const refs = ref.includes('@') ? [ref] : r.listBackups(r.resolveRepo(ctx.paths, o.to), ref).map((m) => `${m.vm}@${m.id}`);
      if (!refs.length) throw badInput('BACKUP_NOT_FOUND', `no backups of VM "${ref}"`);
      const results: Awaited<ReturnType<typeof v.verifyBackup>>[] = [];
      for (const x of refs) results.push(await v.verifyBackup(ctx.paths, x, o));
      ctx.out(results, () => results.map((x) => `${x.backup}: ${x.ok ? 'ok' : 'FAILED'}${x.disks.map((d) => `\n  ${d.id.padEnd(8)} ${d.ok ? 'ok' : 'bad'}  ${d.files} file(s)`).join('')}${x.problems.map((p) => `\n  ${p}`).join('')}`).join('\n'));
      const bad = v.verifyFailed(results);
      if (bad) throw bad;
    }),
  );

  repoOpt(
    b
      .command('prune')
      .description('remove backups the keep rules do not keep (Proxmox Backup Server semantics), merging each into the incremental built on it')
      .argument('<vm>')
      .option('--keep-last <n>', 'the newest N', count('last'))
      .option('--keep-hourly <n>', 'the newest of each of the last N hours', count('hourly'))
      .option('--keep-daily <n>', 'the newest of each of the last N days', count('daily'))
      .option('--keep-weekly <n>', 'the newest of each of the last N ISO weeks', count('weekly'))
      .option('--keep-monthly <n>', 'the newest of each of the last N months', count('monthly'))
      .option('--keep-yearly <n>', 'the newest of each of the last N years', count('yearly'))
      .option('--dry-run', 'say what would go, change nothing'),
  ).action(
    action(async (ctx, vm: string, o: { to?: string; dryRun?: boolean; keepLast?: number; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number }) => {
      const rules = { last: o.keepLast, hourly: o.keepHourly, daily: o.keepDaily, weekly: o.keepWeekly, monthly: o.keepMonthly, yearly: o.keepYearly };
      if (!Object.values(rules).some((n) => n)) throw badInput('BACKUP_BAD_OPTION', 'prune needs at least one --keep-* rule', 'e.g. --keep-last 3 --keep-daily 7');
      const r = await (await import('../../backup/verify-prune.js')).pruneBackups(ctx.paths, vm, rules, { ...o, netns: ctx.netns() });
      ctx.out(r, () =>
        [
          ...r.kept.map((k) => `keep    ${vm}@${k.id} (${k.by})`),
          ...r.removed.map((id) => `${r.dryRun ? 'would remove' : 'removed'} ${vm}@${id}`),
          ...r.merged.map((m) => `merged  ${m.from} into ${m.into} (${m.disks.join(', ') || 'no disk'})`),
          ...(r.anchors?.removed ?? []).map((a) => `removed backup anchor ${a}`),
          ...(r.anchors?.failed ?? []).map((a) => `could not remove backup anchor ${a}`),
        ].join('\n'),
      );
    }),
  );
}
