/** kvmctl ip VM: the guest's addresses on nat networks (from dnsmasq's lease files), else from its guest agent. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  program
    .command('ip')
    .description("a VM's addresses on nat networks, from the network's DHCP leases (waits for a lease while the VM runs); on other networks, from its guest agent")
    .argument('<vm>')
    .option('--timeout <seconds>', 'wait at most this long for a running guest to take its lease', '60')
    .option('--no-wait', 'print what the lease files hold now')
    .addHelpText('after', '\nExamples:\n  kvmctl ip natvm\n  ssh root@$(kvmctl ip natvm)')
    .action(
      action(async (ctx, name: string, opts: { timeout: string; wait: boolean }) => {
        const { badInput, KvmError } = await import('../../errors.js');
        const t = Number(opts.timeout);
        if (!Number.isFinite(t) || t < 0) throw badInput('BAD_TIMEOUT', `--timeout ${opts.timeout}: not a number of seconds`);
        const { vmAddresses, waitForAddresses } = await import('../../net/nat/addresses.js');
        const { vmIsRunning } = await import('../../net/gc.js');
        const rows = opts.wait ? await waitForAddresses(ctx.paths, name, { timeoutMs: t * 1000, isRunning: () => vmIsRunning(ctx.paths, name) }) : vmAddresses(ctx.paths, name);
        if (!rows.length) {
          // Not on a nat network: the guest agent knows its addresses, when there is one.
          const { readVm } = await import('../../definition/store.js');
          const { effectiveAgent } = await import('../../definition/vm-effective.js');
          if (effectiveAgent(readVm(ctx.paths, name)) && vmIsRunning(ctx.paths, name)) {
            const ifs = await (await import('../../vm/guest-agent.js')).agentAddresses(ctx.paths, name);
            const v4 = ifs.flatMap((i) => i.addresses.filter((a) => !a.includes(':')).map((a) => ({ nic: i.name, mac: i.mac, ip: a.split('/')[0]!, source: 'agent' })));
            ctx.out(v4, () => v4.map((r) => (v4.length === 1 ? r.ip : `${r.nic}\t${r.mac ?? ''}\t${r.ip}\t(agent)`)).join('\n') || `${name}: the guest agent reports no IPv4 address`);
            return;
          }
          throw badInput('NO_NAT_NIC', `VM "${name}" has no NIC on a nat network`, 'kvmctl ip reads the DHCP leases of nat networks, or asks the guest agent (agent: true); for other networks ask the guest');
        }
        const got = rows.filter((r) => r.ip);
        if (!got.length) {
          throw new KvmError('NO_LEASE', `VM "${name}" has no DHCP lease yet on ${rows.map((r) => `${r.network} (${r.mac})`).join(', ')}`, {
            hint: vmIsRunning(ctx.paths, name) ? 'the guest has not asked for one yet (does it run a DHCP client?); try again, or raise --timeout' : `the VM is not running (kvmctl start ${name})`,
          });
        }
        ctx.out(rows, () => (rows.length === 1 ? got[0]!.ip! : rows.map((r) => `${r.nic}\t${r.network}\t${r.mac}\t${r.ip ?? '-'}`).join('\n')));
      }),
    );
}
