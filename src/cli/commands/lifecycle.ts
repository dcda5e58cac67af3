/** start, stop, kill, restart, status, pause, resume, reset. */
import { mark } from '../../trace.js';
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import { startedLine, startOne, startOptions } from '../start-one.js';
import type { StopResult } from '../../vm/stop.js';
import type { StartOutcome, StopOutcome } from '../../vm/many.js';
import type { Action } from '../action.js';

const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`"${v}" is not a number of seconds`);
  return n;
};

const HOW = { agent: 'the guest agent (guest-shutdown)', acpi: 'the guest powered off (ACPI)', quit: 'QMP quit', sigkill: 'SIGKILL' } as const;
const stoppedLine = (r: StopResult) => `stopped ${r.name} by ${HOW[r.how]} in ${r.tookMs} ms${r.note ? ` (${r.note})` : ''}`;

export function register(program: Command, action: Action): void {
  program
    .command('start')
    .description('start VMs detached (own sessions; kvmctl can exit or crash without touching them); several names start at once from this one process')
    .argument('<names...>')
    .option('--wait', 'return once QMP reports the VM running (the default)')
    .option('--wait-for-guest [marker]', 'also wait for a line on the serial console (default: the test guest ready marker)')
    .option('--timeout <seconds>', 'give up waiting after this long (per VM)', seconds)
    .option('--netns <name>', 'create the VM\'s links and networks in this existing network namespace and run QEMU inside it (default: env KVMCTL_NETNS)')
    .option('--on <host>', 'cluster mode: run it on this host instead of placing it (docs/cluster.md)')
    .addHelpText(
      'after',
      '\nSeveral names: every definition is checked first (a bad one: exit 2, nothing started), then all start\nconcurrently, each under its own lock; one line per VM. If some fail, the others stay running and\nthe exit status is 1. --json prints an array.\n\nExamples:\n  kvmctl start tiny --wait-for-guest\n  kvmctl start exam_vm\n  kvmctl start web db cache --wait-for-guest',
    )
    .action(
      action(async (ctx, names: string[], opts: { waitForGuest?: string | boolean; timeout?: number; on?: string }) => {
        const startOpts = startOptions(ctx, opts);
        // In a cluster (this host ran cluster init/join) start means: place it, write the desired state.
        const cluster = !!opts.on || (await import('../../cluster/local.js')).inCluster(ctx.paths);
        if (names.length > 1) {
          if (cluster) throw badInput('MULTI_UNSUPPORTED', 'in cluster mode start takes one VM name', 'start them one at a time: kvmctl start NAME');
          const { startMany } = await import('../../vm/many.js');
          const { printEach, finishMany } = await import('../many.js');
          const onDone = printEach<StartOutcome>(ctx, startedLine);
          finishMany(ctx, 'start', await startMany(ctx.paths, names, { ...startOpts, onDone }));
          return;
        }
        const name = names[0]!;
        if (cluster) return (await import('./cluster.js')).clusterStartCmd(ctx, name, opts);
        mark('start: cluster checked');
        await startOne(ctx, name, opts);
      }),
    );

  program
    .command('stop')
    .description('ACPI power-down, then after the timeout QMP quit, then SIGKILL; says which one ended the VM; several names stop at once')
    .argument('<names...>')
    .option('-t, --timeout <seconds>', 'seconds to wait for the guest (default: the definition\'s stopTimeout, 60)', seconds)
    .option('-f, --force', 'skip the ACPI power-down')
    .option('--method <how>', 'acpi (the power button) or agent (guest-shutdown through the QEMU guest agent; ACPI if no agent answers)', 'acpi')
    .action(
      action(async (ctx, names: string[], opts: { timeout?: number; force?: boolean; method: string }) => {
        if (opts.method !== 'acpi' && opts.method !== 'agent') throw badInput('BAD_VALUE', `--method must be acpi or agent, got "${opts.method}"`);
        const method = opts.method;
        const cluster = (await import('../../cluster/local.js')).inCluster(ctx.paths);
        if (names.length > 1) {
          if (cluster) throw badInput('MULTI_UNSUPPORTED', 'in cluster mode stop takes one VM name', 'stop them one at a time: kvmctl stop NAME');
          const { stopMany } = await import('../../vm/many.js');
          const { printEach, finishMany } = await import('../many.js');
          const onDone = printEach<StopOutcome>(ctx, stoppedLine);
          finishMany(ctx, 'stop', await stopMany(ctx.paths, names, { timeoutSec: opts.timeout, force: opts.force, method, onDone }));
          return;
        }
        const name = names[0]!;
        if (cluster) return (await import('./cluster.js')).clusterStopCmd(ctx, name, opts);
        const { stopVm } = await import('../../vm/stop.js');
        const r = await stopVm(ctx.paths, name, { timeoutSec: opts.timeout, force: opts.force, method });
        ctx.out(r, () => stoppedLine(r));
      }),
    );

  program
    .command('kill')
    .description('end a VM now: QMP quit, then SIGKILL (no ACPI)')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const { killVm } = await import('../../vm/stop.js');
        const r = await killVm(ctx.paths, name);
        ctx.out(r, () => `killed ${name} (${r.how}) in ${r.tookMs} ms`);
      }),
    );

  program
    .command('restart')
    .description('stop (gracefully, with the same escalation) and start again')
    .argument('<name>')
    .option('-t, --timeout <seconds>', 'stop timeout', seconds)
    .option('--netns <name>', 'start it again in this existing network namespace (default: env KVMCTL_NETNS, else the one it was running in)')
    .action(
      action(async (ctx, name: string, opts: { timeout?: number }) => {
        const netns = ctx.netns();
        const { restartVm } = await import('../../vm/restart.js');
        const r = await restartVm(ctx.paths, name, { timeoutSec: opts.timeout, netns });
        ctx.out(r, () => `restarted ${name} (pid ${r.started.pid})`);
      }),
    );

  program
    .command('status')
    .description('state of a VM: running, paused, stopped, crashed, starting, stopping')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const { readVm } = await import('../../definition/store.js');
        const { vmStatus } = await import('../../vm/status.js');
        readVm(ctx.paths, name);
        const s = await vmStatus(ctx.paths, name);
        ctx.out(s, () =>
          [
            `${name}: ${s.state}${s.pid ? ` (pid ${s.pid})` : ''}`,
            s.accel ? `  accel: ${s.accel}` : '',
            s.uptimeSec !== undefined ? `  uptime: ${s.uptimeSec} s` : '',
            s.rssBytes ? `  rss: ${Math.round(s.rssBytes / 1048576)} MiB` : '',
            s.reason ? `  reason: ${s.reason}` : '',
            s.lastExit && s.state === 'stopped' ? `  last exit: ${s.lastExit.how} at ${s.lastExit.at}` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        );
      }),
    );

  for (const [cmd, fn, desc] of [
    ['pause', 'pauseVm', 'pause the guest\'s CPUs'],
    ['resume', 'resumeVm', 'resume a paused guest'],
    ['reset', 'resetVm', 'hard-reset the guest (like the reset button)'],
  ] as const) {
    program
      .command(cmd)
      .description(desc)
      .argument('<name>')
      .action(
        action(async (ctx, name: string) => {
          const control = await import('../../vm/control.js');
          const r = (await (control[fn] as (p: typeof ctx.paths, n: string) => Promise<unknown>)(ctx.paths, name)) as { clockSynced?: boolean; note?: string } | undefined;
          ctx.out({ name, done: cmd, ...(r ?? {}) }, () => `${cmd}: ${name} ok${r?.clockSynced ? ' (guest clock set to the host\'s through the agent)' : r?.note ? ` (${r.note})` : ''}`);
        }),
      );
  }
}
