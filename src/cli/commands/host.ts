/**
 * `kvmctl host check` (the host doctor) and `kvmctl host ksm status|on|off|tune`.
 */
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Action } from '../action.js';

function intOpt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw badInput('BAD_VALUE', `${flag} must be a whole number, got "${v}"`);
    return Number(v);
  };
}

function zeroOne(v: string): 0 | 1 {
  if (v !== '0' && v !== '1') throw badInput('BAD_VALUE', `--merge-across-nodes must be 0 or 1, got "${v}"`);
  return Number(v) as 0 | 1;
}

type TuneOpts = { pagesToScan?: number; sleepMs?: number; mergeAcrossNodes?: 0 | 1 };

function tuneOptions(cmd: Command): Command {
  return cmd
    .option('--pages-to-scan <n>', 'pages scanned per wake-up (pages_to_scan)', intOpt('--pages-to-scan'))
    .option('--sleep-ms <n>', 'milliseconds between scans (sleep_millisecs)', intOpt('--sleep-ms'))
    .option('--merge-across-nodes <0|1>', 'merge pages across NUMA nodes (merge_across_nodes)', zeroOne);
}

export function register(program: Command, action: Action): void {
  const host = program.command('host').description('check and tune this host for running VMs');

  host
    .command('check')
    .description('check CPU, /dev/kvm, kernel options, devices, tools, IOMMU, huge pages and clocksource; exit 1 on any FAIL')
    .option('--kernel-config <file>', 'judge this kernel .config (plain or .gz) instead of the running kernel’s')
    .action(
      action(async (ctx, opts: { kernelConfig?: string }) => {
        const { gatherHostInputs } = await import('../../host/check-gather.js');
        const { checkHost, formatCheck, summarize } = await import('../../host/check.js');
        const inputs = await gatherHostInputs({ kernelConfigFile: opts.kernelConfig });
        const items = checkHost(inputs);
        const summary = summarize(items);
        ctx.out({ kernel: inputs.kernelRelease, kernelConfig: inputs.kernelConfig?.source ?? null, summary, items }, () =>
          formatCheck(items, `kvmctl host check — ${inputs.machine}, kernel ${inputs.kernelRelease}, config ${inputs.kernelConfig?.source ?? '(none readable)'}`),
        );
        if (summary.fail > 0) process.exitCode = 1;
      }),
    );

  const ksm = host.command('ksm').description('kernel samepage merging: share identical guest memory pages');
  const show = async (ctx: Parameters<Parameters<Action>[0]>[0], settings?: import('../../host/ksm.js').KsmSettings) => {
    const m = await import('../../host/ksm.js');
    const root = process.env.KVMCTL_KSM_ROOT || m.KSM_ROOT;
    const s = settings ? m.writeKsm(settings, root) : m.readKsm(root);
    ctx.out(s, () => m.formatKsm(s));
  };
  ksm
    .command('status')
    .description('show run state, tuning and pages shared / memory saved')
    .action(action(async (ctx) => show(ctx)));
  tuneOptions(ksm.command('on').description('start merging (run=1), optionally tuning first'))
    .action(action(async (ctx, o: TuneOpts) => show(ctx, { run: 1, pagesToScan: o.pagesToScan, sleepMillisecs: o.sleepMs, mergeAcrossNodes: o.mergeAcrossNodes })));
  ksm
    .command('off')
    .description('stop merging (run=0); --unmerge also splits every merged page (run=2)')
    .option('--unmerge', 'unmerge all merged pages (run=2)')
    .action(action(async (ctx, o: { unmerge?: boolean }) => show(ctx, { run: o.unmerge ? 2 : 0 })));
  tuneOptions(ksm.command('tune').description('change the scanner settings without starting or stopping it'))
    .action(
      action(async (ctx, o: TuneOpts) => {
        if (o.pagesToScan === undefined && o.sleepMs === undefined && o.mergeAcrossNodes === undefined) {
          throw badInput('NOTHING_TO_TUNE', 'kvmctl host ksm tune: give at least one of --pages-to-scan, --sleep-ms, --merge-across-nodes');
        }
        await show(ctx, { pagesToScan: o.pagesToScan, sleepMillisecs: o.sleepMs, mergeAcrossNodes: o.mergeAcrossNodes });
      }),
    );
}
