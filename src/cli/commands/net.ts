/** kvmctl net: guest networks (bridge, host-only, macvtap, user, nat), boot-config export/import. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  const net = program
    .command('net')
    .description('guest networks: bridges, host-only nets, NAT with DHCP/DNS, macvtap, user-mode; boot-config export/import')
    .option('--netns <ns>', 'work inside this existing network namespace (ip -n NS); default: env KVMCTL_NETNS');
  const svc = () => import('../../net/service.js');

  net
    .command('create')
    .description('define networks from a YAML file (kind: network); checked against the others first')
    .requiredOption('-f, --file <path...>', 'YAML file(s)')
    .option('--replace', 'overwrite networks that already exist')
    .action(
      action(async (ctx, opts: { file: string[]; replace?: boolean }) => {
        const r = (await svc()).createNetworks({ paths: ctx.paths }, opts.file, opts.replace);
        ctx.out(r, () => r.map((x) => `network/${x.name} ${x.action}`).join('\n'));
      }),
    );

  net
    .command('list')
    .alias('ls')
    .description('defined networks and their live state')
    .action(
      action(async (ctx) => {
        const rows = await (await svc()).listNetworks({ paths: ctx.paths, netns: ctx.netns() });
        ctx.out(rows, () => {
          if (!rows.length) return 'no networks defined (kvmctl net create -f FILE)';
          const t = [['NAME', 'TYPE', 'STATE', 'INTERFACE', 'ADDRESSES', 'PORTS', 'VMS']];
          for (const r of rows) t.push([r.network, r.type, r.state, r.interface ?? '-', r.addresses.join(',') || '-', String(r.ports.length), r.users.join(',') || '-']);
          const w = t[0]!.map((_, i) => Math.max(...t.map((row) => row[i]!.length)));
          return t.map((row) => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
        });
      }),
    );

  net
    .command('show')
    .description('a network definition and its live state')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const r = await (await svc()).showNetwork({ paths: ctx.paths, netns: ctx.netns() }, name);
        const { stringify } = await import('../../definition/yaml-out.js');
        const problems = (r.status as { problems?: string[] }).problems ?? [];
        ctx.out(r, () => `${stringify(r.spec).trimEnd()}\n# state: ${r.status.state}${r.status.ports.length ? `, ports: ${r.status.ports.join(' ')}` : ''}${r.status.users.length ? `, VMs: ${r.status.users.join(' ')}` : ''}${problems.map((p) => `\n# ${p}`).join('')}`);
      }),
    );

  net
    .command('up')
    .description('create the bridge (uplinks, static taps, host addresses; nat: dnsmasq, nftables, ip_forward); idempotent, repairs a nat network')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const r = await (await svc()).upNetwork({ paths: ctx.paths, netns: ctx.netns(), warn: ctx.warn }, name);
        ctx.out(r, () => (r.action === 'foreign' ? `${name}: ${r.bridge} exists (not made by kvmctl); used as it is` : r.steps.length ? r.steps.map((s) => `${name}: ${s}`).join('\n') : `${name}: already up`));
      }),
    );

  net
    .command('down')
    .description('undo what net up did (refused while a running VM uses it, unless --force)')
    .argument('<name>')
    .option('--force', 'take it down even when running VMs use it')
    .action(
      action(async (ctx, name: string, opts: { force?: boolean }) => {
        const r = await (await svc()).downNetwork({ paths: ctx.paths, netns: ctx.netns() }, name, opts.force);
        ctx.out(r, () => (r.action === 'absent' ? `${name}: already down` : r.action === 'foreign' ? `${name}: ${r.bridge} was not made by kvmctl; left as it is` : r.steps.map((s) => `${name}: ${s}`).join('\n')));
      }),
    );

  net
    .command('rm')
    .description('take a network down and remove its definition')
    .argument('<name>')
    .option('--force', 'even when VMs name it or run on it')
    .action(
      action(async (ctx, name: string, opts: { force?: boolean }) => {
        const r = await (await svc()).removeNetwork({ paths: ctx.paths, netns: ctx.netns() }, name, opts.force);
        if (r.usedBy.length) ctx.warn(`VMs ${r.usedBy.join(', ')} still name network ${name}`);
        ctx.out({ removed: name, ...r }, () => `network/${name} removed`);
      }),
    );

  net
    .command('gc')
    .description('remove leftovers: taps/macvtaps of VMs that are not running; of nat networks whose net up never finished: bridge, dnsmasq, nftables rules, ip_forward')
    .action(
      action(async (ctx) => {
        const r = await (await svc()).gcNetworks({ paths: ctx.paths, netns: ctx.netns() });
        const lines = [...r.removed.map((x) => `removed ${x.ifname} (VM ${x.vm}, ${x.nic})`), ...r.nat.flatMap((n) => n.steps.map((s) => `${n.network}: ${s}`))];
        ctx.out(r, () => (lines.length ? lines.join('\n') : 'nothing to remove'));
      }),
    );

  net
    .command('export')
    .description('write networks as boot-time config: netifrc (/etc/conf.d/net), networkd, ifupdown, or an ip script')
    .argument('[names...]', 'networks (default: all)')
    .option('--format <format>', 'netifrc | networkd | ifupdown | script', 'netifrc')
    .option('-o, --output <dir>', 'networkd: write the files into this directory')
    .addHelpText('after', '\nExamples:\n  kvmctl net export --format netifrc br0 br_local0 >> /etc/conf.d/net\n  kvmctl net export --format networkd -o /etc/systemd/network')
    .action(
      action(async (ctx, names: string[], opts: { format: string; output?: string }) => {
        const r = (await svc()).exportNetworks({ paths: ctx.paths }, opts.format, names);
        if (opts.output && r.files) {
          const fs = await import('node:fs');
          const path = await import('node:path');
          fs.mkdirSync(opts.output, { recursive: true });
          for (const f of r.files) fs.writeFileSync(path.join(opts.output, f.path), f.content);
          ctx.out(r.files.map((f) => path.join(opts.output!, f.path)), () => r.files!.map((f) => `wrote ${path.join(opts.output!, f.path)}`).join('\n'));
          return;
        }
        if (ctx.json) ctx.out(r);
        else process.stdout.write(r.text);
      }),
    );

  net
    .command('import')
    .description('read boot-time network config back into network definitions')
    .argument('<format>', 'netifrc')
    .argument('<file>', 'e.g. /etc/conf.d/net')
    .option('-o, --output <file>', 'write the YAML here (default: stdout); then kvmctl net create -f FILE')
    .action(
      action(async (ctx, format: string, file: string, opts: { output?: string }) => {
        if (format !== 'netifrc') {
          const { badInput } = await import('../../errors.js');
          throw badInput('BAD_FORMAT', `import ${format}: only netifrc is supported`);
        }
        const r = (await svc()).importNetworks(file);
        for (const w of r.warnings) ctx.warn(/^line \d+: /.test(w) ? w.replace(/^line (\d+): /, `${file}:$1: `) : `not mapped: ${w}`);
        if (opts.output) {
          const fs = await import('node:fs');
          fs.writeFileSync(opts.output, r.yaml);
          ctx.out({ ...r, output: opts.output }, () => `${r.count} network${r.count === 1 ? '' : 's'} written to ${opts.output}`);
        } else if (ctx.json) ctx.out(r);
        else process.stdout.write(r.yaml);
      }),
    );
}
