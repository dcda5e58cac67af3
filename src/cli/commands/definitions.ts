/** apply, rm, validate, list, show, cmdline: definitions and the command line they give. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  program
    .command('apply')
    .description('define or update VMs and networks from YAML files (all validated first; nothing written if any is invalid)')
    .requiredOption('-f, --file <path...>', 'YAML file(s) or directories of *.yaml')
    .addHelpText('after', '\nExamples:\n  kvmctl apply -f examples/exam_vm.yaml\n  kvmctl apply -f ./vms/')
    .action(
      action(async (ctx, opts: { file: string[] }) => {
        const { applyDefinitions } = await import('../../vm/definitions.js');
        const res = applyDefinitions(ctx.paths, opts.file);
        ctx.out(res, () => res.map((r) => `${r.kind}/${r.name} ${r.action}`).join('\n'));
      }),
    );

  program
    .command('validate')
    .description('check definitions (files, or stored VMs/networks by name; none = all stored) and print every problem')
    .argument('[targets...]', 'files, directories or names')
    .action(
      action(async (ctx, targets: string[]) => {
        const { validateTargets } = await import('../../vm/validate.js');
        const res = validateTargets(ctx.paths, targets);
        ctx.out(res, () => res.map((r) => `ok ${r.kind}/${r.name}${r.source ? ` (${r.source})` : ''}`).join('\n'));
      }),
    );

  program
    .command('rm')
    .description('remove a VM definition (never its disks; its UEFI vars and TPM state only with --purge-state)')
    .argument('<name>')
    .option('--purge-state', "also delete the VM's UEFI vars (NVRAM) and TPM state (<data>/vms/NAME)")
    .action(
      action(async (ctx, name: string, opts: { purgeState?: boolean }) => {
        const { removeVm } = await import('../../vm/remove.js');
        const r = await removeVm(ctx.paths, name, { purgeState: opts.purgeState });
        const state = r.state === 'kept' ? `; UEFI vars and TPM state kept in ${r.stateDir} (--purge-state deletes them)` : r.state === 'purged' ? `; state ${r.stateDir} deleted` : '';
        ctx.out(r, () => `vm/${name} removed (disks kept${state})`);
      }),
    );

  program
    .command('cmdline')
    .description('print the exact QEMU command that start will run, shell-quoted (--json: the argv array)')
    .argument('<name-or-file>', 'a defined VM name or a YAML file')
    .option('--one-line', 'print on one line instead of one option per line')
    .addHelpText('after', '\nExamples:\n  kvmctl cmdline exam_vm\n  kvmctl cmdline examples/exam_vm.yaml --json')
    .action(
      action(async (ctx, target: string, opts: { oneLine?: boolean }) => {
        const { planCommandLine } = await import('../../vm/plan.js');
        const { formatCommandLine } = await import('../../qemu/quote.js');
        const r = await planCommandLine(ctx.paths, target, await ctx.facts());
        for (const w of r.warnings) ctx.warn(w);
        ctx.out({ argv: r.argv, warnings: r.warnings, accel: r.accel }, () => formatCommandLine(r.argv, { multiline: !opts.oneLine }));
      }),
    );

  program
    .command('list')
    .alias('ls')
    .description('defined VMs and their state (--wide: also their addresses, from DHCP leases and guest agents)')
    .option('-w, --wide', "add each running VM's addresses, marked by source (lease, agent); agents are asked in parallel, 1 s at most, and their answers kept for 15 s")
    .action(
      action(async (ctx, o: { wide?: boolean }) => {
        const { listVms } = await import('../../vm/status.js');
        const { readVm } = await import('../../definition/store.js');
        const { formatSize } = await import('../../definition/units.js');
        const rows = (await listVms(ctx.paths)).map((s) => {
          let spec: { cpu: { count: number }; memory: number } | undefined;
          try {
            spec = readVm(ctx.paths, s.name);
          } catch {
            /* broken definition: kvmctl validate says why */
          }
          return { ...s, cpus: spec?.cpu.count, memory: spec ? formatSize(spec.memory) : undefined, ok: !!spec };
        });
        const A = o.wide ? await import('../../vm/addresses.js') : undefined;
        const reports = A
          ? await Promise.all(rows.map((r) => (r.ok && (r.state === 'running' || r.state === 'paused') ? A.vmAddressReport(ctx.paths, r.name, { running: true }).catch(() => undefined) : undefined)))
          : [];
        const out = rows.map(({ ok: _ok, ...r }, i) => (o.wide ? { ...r, addresses: reports[i]?.addresses ?? [], agent: reports[i]?.agentState } : r));
        ctx.out(out, () => {
          if (!rows.length) return 'no VMs defined (kvmctl apply -f FILE)';
          const lines = [['NAME', 'STATE', 'PID', 'CPUS', 'MEMORY', 'ACCEL', ...(A ? ['ADDRESSES'] : [])]];
          rows.forEach((r, i) => lines.push([r.name, r.state, String(r.pid ?? '-'), String(r.cpus ?? '?'), r.memory ?? '?', r.accel ?? '-', ...(A ? [A.formatAddresses(reports[i]?.addresses ?? [])] : [])]));
          const w = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
          return lines.map((l) => l.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
        });
      }),
    );

  program
    .command('show')
    .description("a VM's definition (with defaults filled in), its state, and guest mount lines for its shares")
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const { readVm } = await import('../../definition/store.js');
        const { vmStatus } = await import('../../vm/status.js');
        const { stringify } = await import('../../definition/yaml-out.js');
        const spec = readVm(ctx.paths, name);
        const status = await vmStatus(ctx.paths, name);
        const mounts = spec.shares.map((s) =>
          s.driver === '9p'
            ? `mount -t 9p -o trans=virtio,version=9p2000.L${s.readOnly ? ',ro' : ''} ${s.tag} /mnt/${s.tag}`
            : `mount -t virtiofs ${s.tag} /mnt/${s.tag}`,
        );
        // A running VM's addresses: DHCP leases on nat networks, and what its guest agent reports (asked now, 2 s at most).
        const up = status.state === 'running' || status.state === 'paused';
        const rep = up ? await (await import('../../vm/addresses.js')).vmAddressReport(ctx.paths, name, { running: true, agentTimeoutMs: 2_000, maxAgeMs: 0 }) : undefined;
        const leases = rep?.leases ?? [];
        const agent = rep && rep.agentState !== 'off' ? { addresses: rep.agent, why: rep.agentNote } : undefined;
        const addresses = rep
          ? { leases, list: rep.addresses, agentState: rep.agentState, ...(agent ? { agent: agent.addresses ?? [], ...(agent.why ? { agentUnavailable: agent.why } : {}) } : {}), ...(rep.agentAt ? { agentAt: rep.agentAt } : {}) }
          : undefined;
        ctx.out({ spec, status, guestMounts: mounts, ...(addresses ? { addresses } : {}) }, () =>
          [
            `# state: ${status.state}${status.pid ? ` (pid ${status.pid})` : ''}`,
            ...leases.map((l) => `# address (DHCP lease on ${l.network}): ${l.nic} ${l.mac} ${l.ip}`),
            ...(agent?.addresses ?? []).filter((i) => i.addresses.length).map((i) => `# address (guest agent): ${i.name} ${i.mac ?? ''} ${i.addresses.join(' ')}`),
            ...(agent?.why ? [`# guest agent: ${rep?.agentState === 'cached' ? `no answer now (${agent.why}); addresses above as it reported them at ${rep.agentAt}` : agent.why}`] : []),
            stringify(spec).trimEnd(),
            ...(mounts.length ? ['# in the guest:', ...mounts.map((m) => `#   ${m}`)] : []),
          ].join('\n'),
        );
      }),
    );
}
