/**
 * `kvmctl guest kernel-config [NAME] [--check FILE]` and `kvmctl guest time-sync`: the settings
 * a guest OS needs (seed §7), printed for the operator to apply inside the guest.
 */
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Action } from '../action.js';
import { registerAgent } from './guest-agent.js';

export function register(program: Command, action: Action): void {
  const guest = program.command('guest').description('the guest OS: its QEMU guest agent (ping, info, ip, exec, fsfreeze, shutdown, …), kernel config, PTP time sync');
  registerAgent(guest, action);

  guest
    .command('kernel-config')
    .description('print the kernel config fragment a guest needs (NAME: only what its definition uses); --check a guest .config')
    .argument('[name]', 'a defined VM, or a VM definition file (.yaml)')
    .option('--check <file>', 'read this guest .config (plain or .gz) and list what is missing and what may be turned off; exit 1 if anything is missing')
    .addHelpText('after', '\nExamples:\n  kvmctl guest kernel-config > kvm-guest.config\n  kvmctl guest kernel-config exam_vm --check /usr/src/linux/.config')
    .action(
      action(async (ctx, name: string | undefined, opts: { check?: string }) => {
        const m = await import('../../guest/kernel-fragment.js');
        let needs = m.seedNeeds();
        if (name) {
          let vm;
          if (/\.ya?ml$/.test(name) || name.includes('/')) {
            const { loadFiles } = await import('../../definition/load.js');
            const vms = loadFiles([name]).filter((d) => d.kind === 'vm');
            if (vms.length !== 1) throw badInput('NOT_ONE_VM', `${name}: holds ${vms.length} VM definitions, need exactly one`);
            vm = vms[0]!.spec as import('../../definition/vm.js').VmSpec;
          } else {
            const { readVm } = await import('../../definition/store.js');
            vm = readVm(ctx.paths, name);
          }
          needs = m.vmNeeds(vm);
        }
        if (!opts.check) {
          const options = m.optionsFor(needs);
          ctx.out({ label: needs.label, notes: needs.notes, options }, () => m.formatFragment(needs, options));
          return;
        }
        const { readKernelConfigFile } = await import('../../host/kernel-config.js');
        const c = m.checkGuestConfig(readKernelConfigFile(opts.check), needs);
        ctx.out({ file: opts.check, label: needs.label, ...c }, () => m.formatConfigCheck(opts.check!, needs, c));
        if (c.missing.length) process.exitCode = 1;
      }),
    );

  guest
    .command('time-sync')
    .description("print chrony.conf and the files and steps for guest time sync: the KVM PTP clock when the guest has one, NTP (the host, or the definition's servers) otherwise")
    .argument('[name]', "a defined VM: its timeSync servers, or the host's address on its network, are the NTP fallback")
    .option('--init <system>', 'openrc or systemd', 'openrc')
    .option('--server <host...>', 'NTP server(s) for the fallback (overrides the definition)')
    .option('--pool <host...>', 'NTP pool(s) for the fallback (overrides the definition)')
    .option('--apply', 'do it in the running guest through its agent (write the files, restart chrony) and show chronyc sources')
    .addHelpText('after', '\nExamples:\n  kvmctl guest time-sync exam_vm --init systemd\n  kvmctl guest time-sync --server 192.168.1.1')
    .action(
      action(async (ctx, name: string | undefined, opts: { init: string; server?: string[]; pool?: string[]; apply?: boolean }) => {
        if (opts.init !== 'openrc' && opts.init !== 'systemd') throw badInput('BAD_VALUE', `--init must be openrc or systemd, got "${opts.init}"`);
        const m = await import('../../guest/time-sync.js');
        const given = [...(opts.server ?? []).map((host) => ({ kind: 'server' as const, host })), ...(opts.pool ?? []).map((host) => ({ kind: 'pool' as const, host }))];
        const bad = given.filter((s) => !m.validNtpHost(s.host));
        if (bad.length) throw badInput('BAD_VALUE', `not a host name or IP address: ${bad.map((s) => `"${s.host}"`).join(', ')}`, 'give a name such as 2.debian.pool.ntp.org or an address such as 192.168.1.1');
        let sources = given.length ? given : undefined;
        let sourcesFrom = given.length ? 'given on the command line' : undefined;
        let tcg: boolean | undefined;
        if (name) {
          const store = await import('../../definition/store.js');
          const vm = store.readVm(ctx.paths, name);
          if (!sources) {
            const r = m.sourcesForVm(vm, (n) => (store.listNames(ctx.paths, 'network').includes(n) ? store.readNetwork(ctx.paths, n) : undefined));
            sources = r.sources;
            sourcesFrom = r.from;
          }
          const facts = await ctx.facts();
          tcg = !facts.kvm || !vm.machine.accel.includes('kvm');
        }
        const plan = m.timeSyncPlan({ init: opts.init, sources, sourcesFrom, tcg });
        if (opts.apply) {
          if (!name) throw badInput('BAD_VALUE', '--apply needs the VM name', 'kvmctl guest time-sync NAME --init systemd --apply');
          const r = await (await import('../../vm/time-sync-apply.js')).applyTimeSync(ctx.paths, name, plan);
          ctx.out(r, () => [`${name}: chrony configured (${r.chronyConf}), time source: ${r.source === 'ptp' ? 'the KVM PTP clock' : 'NTP'}`, ...r.steps.map((s) => `  ${s.exitCode ? `exit ${s.exitCode}${s.optional ? ' (optional)' : ''}` : 'ok'}  ${s.argv.join(' ')}`), r.sources.trimEnd()].join('\n'));
          return;
        }
        ctx.out(plan, () => m.formatTimeSync(plan));
      }),
    );
}
