/** autostart, shutdown-all, service install|uninstall: VMs at host boot and shutdown. */
import { InvalidArgumentError, type Command } from 'commander';
import type { Action } from '../action.js';

const count = (what: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be a whole number ≥ ${min}`);
  return n;
};
const stderr = (m: string) => process.stderr.write(`${m}\n`);
const dur = (ms: number) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

export function register(program: Command, action: Action): void {
  program
    .command('autostart')
    .description('start the VMs marked autostart: networks first, then by autostart.order (same order in parallel), waiting each group\'s delay')
    .option('--dry-run', 'show the plan (groups, networks, what is already running) and change nothing')
    .option('--parallel <n>', 'VMs of one group started at once (boots are CPU-bound)', count('--parallel', 1), 4)
    .option('--netns <name>', 'bring networks up and run the VMs in this existing network namespace (default: env KVMCTL_NETNS)')
    .option('-q, --quiet', 'no progress lines on stderr')
    .addHelpText('after', '\nExit status 1 when any VM failed to start (the others are started all the same).\nExamples:\n  kvmctl autostart --dry-run\n  kvmctl autostart --parallel 2')
    .action(
      action(async (ctx, opts: { dryRun?: boolean; parallel: number; quiet?: boolean }) => {
        const netns = ctx.netns();
        const { autostart } = await import('../../vm/autostart.js');
        const r = await autostart(ctx.paths, { dryRun: opts.dryRun, parallel: opts.parallel, netns, log: opts.quiet || opts.dryRun ? undefined : stderr, warn: ctx.warn });
        ctx.out(r, () => {
          const lines: string[] = [];
          if (!r.groups.length) lines.push('no VM is marked autostart (autostart: true in its definition)');
          for (const n of r.networks) lines.push(`network ${n.name}: ${n.result}${n.error ? ` — ${n.error.message}` : ''}`);
          for (const g of r.groups) {
            const delay = !g.delaySec || g === r.groups[r.groups.length - 1] ? '' : r.dryRun || g.waitedMs !== undefined ? ` (then ${g.delaySec} s delay)` : ` (${g.delaySec} s delay skipped: nothing started)`;
            lines.push(`order ${g.order}${delay}:`);
            for (const o of g.outcomes) {
              const what =
                o.result === 'started' ? `started (pid ${o.pid}) in ${o.tookMs} ms`
                : o.result === 'skipped' ? `skipped: already ${o.state}${o.pid ? ` (pid ${o.pid})` : ''}`
                : o.result === 'would-start' ? `would start${o.state === 'crashed' ? ' (last run crashed)' : ''}`
                : `FAILED: ${o.error?.code}: ${o.error?.message}${o.error?.hint ? `\n      hint: ${o.error.hint}` : ''}`;
              lines.push(`  ${o.name}: ${what}`);
            }
          }
          for (const u of r.unreadable) lines.push(`${u.name}: definition does not read: ${u.error.message}`);
          if (!r.dryRun) lines.push(`${r.started} started, ${r.skipped} already running, ${r.failed} failed in ${dur(r.tookMs)}`);
          return lines.join('\n');
        });
        if (r.failed) process.exitCode = 1;
      }),
    );

  program
    .command('shutdown-all')
    .description('power every running VM down (ACPI, in parallel, higher autostart.order first), forcing those still running at the timeout')
    .option('-t, --timeout <seconds>', 'grace time for all of them together (default: each VM\'s stopTimeout)', count('--timeout', 0))
    .option('-q, --quiet', 'no progress lines on stderr')
    .addHelpText('after', '\nEach VM: ACPI power button (pressed again every 3 s) until the deadline, then QMP quit, then SIGKILL.\nExample:\n  kvmctl shutdown-all --timeout 120')
    .action(
      action(async (ctx, opts: { timeout?: number; quiet?: boolean }) => {
        const { shutdownAll } = await import('../../vm/shutdown-all.js');
        const r = await shutdownAll(ctx.paths, { timeoutSec: opts.timeout, log: opts.quiet ? undefined : stderr });
        const how = { agent: 'powered off (guest agent)', acpi: 'powered off (ACPI)', quit: 'forced: QMP quit', sigkill: 'forced: SIGKILL', 'already-stopped': 'already stopped', failed: 'FAILED' };
        ctx.out(r, () =>
          [
            ...(r.vms.length ? [] : ['no VM is running']),
            ...r.vms.map((v) => `${v.name}: ${how[v.how]} after ${dur(v.tookMs)}${v.error ? ` — ${v.error.message}` : ''}`),
            `${r.graceful} graceful, ${r.forced} forced, ${r.failed} failed in ${dur(r.tookMs)}`,
          ].join('\n'),
        );
        if (r.failed) process.exitCode = 1;
      }),
    );

  const service = program.command('service').description('the boot-time service (OpenRC or systemd) that runs autostart at boot and shutdown-all at shutdown');
  service
    .command('install')
    .description('write /etc/init.d/kvmctl (OpenRC) or /etc/systemd/system/kvmctl.service calling this kvmctl')
    .requiredOption('--init <system>', 'openrc | systemd')
    .option('--prefix <dir>', 'root directory to write under', '/')
    .option('-t, --timeout <seconds>', 'shutdown-all --timeout at host shutdown', count('--timeout', 0), 120)
    .option('--dry-run', 'print the file and change nothing')
    .option('--force', 'overwrite a file that kvmctl did not write')
    .option('--netns <name>', 'the service runs autostart --netns NAME at boot (default: env KVMCTL_NETNS); the namespace must exist by then')
    .addHelpText('after', '\nExamples:\n  kvmctl service install --init openrc && rc-update add kvmctl default\n  kvmctl service install --init systemd && systemctl daemon-reload && systemctl enable kvmctl')
    .action(
      action(async (ctx, opts: { init: string; prefix: string; timeout: number; dryRun?: boolean; force?: boolean }) => {
        const netns = ctx.netns();
        const { installService } = await import('../../host/service.js');
        const r = await installService(ctx.paths, { init: opts.init, prefix: opts.prefix, timeoutSec: opts.timeout, dryRun: opts.dryRun, force: opts.force, netns });
        ctx.out(r, () =>
          r.action === 'would-write'
            ? `# ${r.file}\n${r.text}`
            : [`${r.file}: ${r.action}`, r.action !== 'unchanged' ? `next:\n${r.next.map((n) => `  ${n}`).join('\n')}` : ''].filter(Boolean).join('\n'),
        );
      }),
    );
  service
    .command('uninstall')
    .description('remove the service file kvmctl wrote (and the symlinks enabling it); refuses a file it did not write')
    .option('--init <system>', 'openrc | systemd (default: both)')
    .option('--prefix <dir>', 'root directory', '/')
    .option('--dry-run', 'say what would be removed')
    .action(
      action(async (ctx, opts: { init?: string; prefix: string; dryRun?: boolean }) => {
        const { uninstallService } = await import('../../host/service.js');
        const r = await uninstallService({ init: opts.init, prefix: opts.prefix, dryRun: opts.dryRun });
        const verb = opts.dryRun ? 'would remove' : 'removed';
        ctx.out(r, () =>
          [
            ...r.removed.map((f) => `${verb} ${f}`),
            ...r.links.map((f) => `${verb} ${f}`),
            ...(r.removed.length ? [] : ['no kvmctl service file installed']),
            ...(r.next.length && !opts.dryRun ? [`next: ${r.next.join('; ')}`] : []),
          ].join('\n'),
        );
      }),
    );
}
