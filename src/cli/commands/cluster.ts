/** cluster init/join/leave/status/apply/start/stop, agent, migrate (docs/cluster.md). etcd is loaded only inside actions. */
import type { Command } from 'commander';
import type { Ctx } from '../context.js';
import type { Action } from '../action.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];
const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`"${v}" is not a positive number`);
  return n;
};

async function session(ctx: Ctx, etcd?: string) {
  const { parseUrls } = await import('../../cluster/etcd.js');
  const { requireCluster } = await import('../../cluster/local.js');
  const cl = requireCluster(ctx.paths, etcd ? parseUrls(etcd) : undefined);
  const { open } = await import('../../cluster/service.js');
  return { cl, s: await open(cl) };
}

const mib = (b?: number) => (b === undefined ? '-' : `${Math.round(b / 2 ** 20)}M`);

/** `kvmctl start VM` in cluster mode (also called from lifecycle.ts when this host is in a cluster). */
export async function clusterStartCmd(ctx: Ctx, name: string, opts: { on?: string; wait?: boolean; timeout?: number; etcd?: string }): Promise<void> {
  const { cl, s } = await session(ctx, opts.etcd);
  void cl;
  try {
    const { clusterStart } = await import('../../cluster/service.js');
    const r = await clusterStart(s, ctx.paths, name, { on: opts.on, wait: opts.wait, timeoutMs: opts.timeout !== undefined ? opts.timeout * 1000 : undefined });
    ctx.out(r, () =>
      r.how === 'already'
        ? `${name} is already placed on ${r.host}`
        : `${name} ${r.how === 'pinned' ? 'pinned to' : 'placed on'} ${r.host}${r.pid ? ` — running (pid ${r.pid}) after ${r.waitedMs} ms` : ''}${r.considered ? `\n${r.considered.map((c) => `  ${c.host}: ${mib(c.free)} uncommitted${c.ok ? '' : ` — ${c.why}`}`).join('\n')}` : ''}`,
    );
  } finally {
    s.close();
  }
}

export async function clusterStopCmd(ctx: Ctx, name: string, opts: { wait?: boolean; timeout?: number; etcd?: string }): Promise<void> {
  const { s } = await session(ctx, opts.etcd);
  try {
    const { clusterStop } = await import('../../cluster/service.js');
    const r = await clusterStop(s, name, { wait: opts.wait, timeoutMs: opts.timeout !== undefined ? opts.timeout * 1000 : undefined });
    ctx.out(r, () => `stopped ${name}${r.was ? ` on ${r.was}` : ''}`);
  } finally {
    s.close();
  }
}

export function register(program: Command, action: Action): void {
  const cluster = program.command('cluster').description('run VMs across hosts: state in etcd, one agent per host (docs/cluster.md)');

  cluster
    .command('init')
    .description('create the cluster in etcd (idempotent) and make this host a member')
    .requiredOption('--etcd <urls>', 'etcd client URLs, comma-separated')
    .option('--ttl <seconds>', 'host lease TTL: a dead host is noticed after this long', num, 5)
    .option('--margin <ms>', 'extra wait after a lease expired before HA VMs restart elsewhere', num, 1000)
    .option('--shared-storage <dir>', 'a directory every host mounts at the same path (repeatable)', collect)
    .option('--prefix <prefix>', 'etcd key prefix', '/kvmctl/')
    .option('--host <name>', 'this host\'s name (default: the hostname)')
    .option('--addr <ip>', 'the address other hosts reach this one at (live migration)')
    .action(
      action(async (ctx, o: { etcd: string; ttl: number; margin: number; sharedStorage?: string[]; prefix: string; host?: string; addr?: string }) => {
        const { parseUrls } = await import('../../cluster/etcd.js');
        const local = await import('../../cluster/local.js');
        const os = await import('node:os');
        const { open, initCluster, joinCluster } = await import('../../cluster/service.js');
        const etcd = parseUrls(o.etcd);
        const host = o.host ?? os.hostname();
        const s = await open({ etcd, prefix: o.prefix });
        try {
          const r = await initCluster(s, { ttlSec: o.ttl, marginMs: o.margin, sharedStorage: o.sharedStorage ?? [] });
          await joinCluster(s, host, o.addr);
          local.writeLocalCluster(ctx.paths, { etcd, prefix: o.prefix, host, addr: o.addr });
          ctx.out({ ...r, host }, () => `${r.created ? 'created' : 'joined existing'} cluster ${o.prefix} (lease TTL ${r.config.ttlSec} s, failover margin ${r.config.marginMs} ms) as host ${host}`);
        } finally {
          s.close();
        }
      }),
    );

  cluster
    .command('join')
    .description('make this host a member of an existing cluster')
    .requiredOption('--etcd <urls>', 'etcd client URLs, comma-separated')
    .option('--host <name>', 'this host\'s name (default: the hostname)')
    .option('--addr <ip>', 'the address other hosts reach this one at (live migration)')
    .option('--prefix <prefix>', 'etcd key prefix', '/kvmctl/')
    .action(
      action(async (ctx, o: { etcd: string; host?: string; addr?: string; prefix: string }) => {
        const { parseUrls } = await import('../../cluster/etcd.js');
        const local = await import('../../cluster/local.js');
        const os = await import('node:os');
        const { open, joinCluster } = await import('../../cluster/service.js');
        const etcd = parseUrls(o.etcd);
        const host = o.host ?? os.hostname();
        const s = await open({ etcd, prefix: o.prefix });
        try {
          const m = await joinCluster(s, host, o.addr);
          local.writeLocalCluster(ctx.paths, { etcd, prefix: o.prefix, host, addr: o.addr });
          ctx.out(m, () => `host ${host} joined; now run: kvmctl agent`);
        } finally {
          s.close();
        }
      }),
    );

  cluster
    .command('leave')
    .description('remove this host from the cluster (refused while VMs are placed on it)')
    .option('--force', 'leave even if VMs are placed here')
    .action(
      action(async (ctx, o: { force?: boolean }) => {
        const { s, cl } = await session(ctx);
        try {
          const { leaveCluster } = await import('../../cluster/service.js');
          const os = await import('node:os');
          const r = await leaveCluster(s, cl.host ?? os.hostname(), !!o.force);
          (await import('../../cluster/local.js')).removeLocalCluster(ctx.paths);
          ctx.out(r, () => `host ${r.host} left the cluster`);
        } finally {
          s.close();
        }
      }),
    );

  cluster
    .command('status')
    .description('hosts (alive, lease TTL left, uncommitted memory, VMs), VMs (desired, owner, observed), etcd members')
    .option('--etcd <urls>', 'etcd client URLs (default: this host\'s cluster)')
    .action(
      action(async (ctx, o: { etcd?: string }) => {
        const { s, cl } = await session(ctx, o.etcd);
        try {
          const { clusterStatus } = await import('../../cluster/service.js');
          const st = await clusterStatus(s, cl.etcd);
          ctx.out(st, () => {
            const lines = [`cluster ${st.prefix}: lease TTL ${st.config?.ttlSec ?? '?'} s, failover margin ${st.config?.marginMs ?? '?'} ms`, 'HOST          ALIVE  TTL  ADDR             MEM-FREE  VMS'];
            for (const h of st.hosts) lines.push(`${h.name.padEnd(13)} ${(h.alive ? 'yes' : 'NO').padEnd(6)} ${String(h.leaseTtlLeft ?? '-').padEnd(4)} ${(h.addr ?? '-').padEnd(16)} ${mib(h.memFree).padEnd(9)} ${h.vms.join(',')}`);
            lines.push('VM            DESIRED         OWNER       OBSERVED         HA');
            for (const v of st.vms) lines.push(`${v.name.padEnd(13)} ${`${v.desired?.state ?? '-'}@${v.desired?.host ?? '-'}`.padEnd(15)} ${(v.owner ?? (v.desired?.state === 'running' ? 'LOST' : '-')).padEnd(11)} ${`${v.observed?.state ?? '-'}@${v.observed?.host ?? '-'}`.padEnd(16)} ${v.ha ? 'yes' : 'no'}${v.migration ? `  migrating ${v.migration.from}→${v.migration.to} (${v.migration.state})` : ''}`);
            lines.push(`etcd: ${st.etcd.map((e) => `${e.endpoint} ${e.ok ? `ok${e.leader ? ' (leader)' : ''}` : 'DOWN'}`).join(', ')}`);
            return lines.join('\n');
          });
        } finally {
          s.close();
        }
      }),
    );

  cluster
    .command('apply')
    .description('put VM and network definitions into the cluster')
    .requiredOption('-f, --file <path>', 'YAML file or directory', collect)
    .action(
      action(async (ctx, o: { file: string[] }) => {
        const { loadFiles } = await import('../../definition/load.js');
        const defs = loadFiles(o.file);
        const texts = defs.map((d) => ({ kind: d.kind, name: d.spec.name, text: d.text ?? '' }));
        const { s } = await session(ctx);
        try {
          const { applyToCluster } = await import('../../cluster/service.js');
          const r = await applyToCluster(s, texts);
          ctx.out(r, () => r.map((x) => `${x.kind}/${x.name} ${x.action}`).join('\n'));
        } finally {
          s.close();
        }
      }),
    );

  cluster
    .command('start')
    .description('place a VM on the host with the most free memory that fits its constraints, or --on HOST')
    .argument('<name>')
    .option('--on <host>', 'this host, no placement')
    .option('--no-wait', 'return once the desired state is written')
    .option('--timeout <seconds>', 'wait this long for the VM to run', num)
    .option('--etcd <urls>', 'etcd client URLs (default: this host\'s cluster)')
    .action(action((ctx, name: string, o: { on?: string; wait?: boolean; timeout?: number; etcd?: string }) => clusterStartCmd(ctx, name, o)));

  cluster
    .command('stop')
    .description('set a VM\'s desired state to stopped; its host stops it and releases it')
    .argument('<name>')
    .option('--no-wait', 'return once the desired state is written')
    .option('--timeout <seconds>', 'wait this long', num)
    .option('--etcd <urls>', 'etcd client URLs (default: this host\'s cluster)')
    .action(action((ctx, name: string, o: { wait?: boolean; timeout?: number; etcd?: string }) => clusterStopCmd(ctx, name, o)));

  cluster
    .command('watchdog', { hidden: true })
    .description('the per-host watchdog the agent starts and feeds (not for direct use)')
    .argument('<feed-file>')
    .action(
      action(async (_ctx, file: string) => {
        await (await import('../../cluster/watchdog.js')).runWatchdog(file);
      }),
    );

  program
    .command('agent')
    .description('run this host\'s cluster agent: lease, placement convergence, self-fencing, failover, migration')
    .option('--etcd <urls>', 'etcd client URLs (default: from cluster init/join)')
    .option('--host <name>', 'this host\'s name (default: from cluster init/join, else the hostname)')
    .option('--addr <ip>', 'the address other hosts reach this one at (live migration)')
    .option('--memory <size>', 'memory this host offers to VMs (default: all)')
    .option('--prefix <prefix>', 'etcd key prefix')
    .option('--netns <name>', 'run this host\'s VMs (their links, networks and QEMU) in this existing network namespace (default: env KVMCTL_NETNS)')
    .action(
      action(async (ctx, o: { etcd?: string; host?: string; addr?: string; memory?: string; prefix?: string }) => {
        const netns = ctx.netns();
        const { parseUrls } = await import('../../cluster/etcd.js');
        const { readLocalCluster } = await import('../../cluster/local.js');
        const { parseSize } = await import('../../definition/units.js');
        const { badInput } = await import('../../errors.js');
        const os = await import('node:os');
        const local = readLocalCluster(ctx.paths);
        const etcd = o.etcd ? parseUrls(o.etcd) : local?.etcd;
        if (!etcd) throw badInput('NOT_IN_CLUSTER', 'no etcd to talk to', 'pass --etcd URLS or run kvmctl cluster join first');
        const memory = o.memory !== undefined ? parseSize(o.memory) : undefined;
        if (o.memory !== undefined && !memory) throw badInput('BAD_SIZE', `--memory "${o.memory}" is not a size`, 'e.g. --memory 4G');
        const { runAgent } = await import('../../cluster/agent.js');
        const prefix = o.prefix ?? local?.prefix ?? '/kvmctl/';
        const host = o.host ?? local?.host ?? os.hostname();
        // Beside the agent: which storages this host reaches, merged into its host record (placement reads it).
        const reach = await (await import('../../cluster/storage-reach.js')).startStorageReach({ etcd, prefix, host, paths: ctx.paths, netns });
        try {
          await runAgent({ paths: ctx.paths, etcd, prefix, host, addr: o.addr ?? local?.addr, memory, netns });
        } finally {
          await reach.stop();
        }
      }),
    );

  program
    .command('migrate')
    .description('live-migrate a running cluster VM to another host (QMP migrate; ownership moves in one etcd transaction)')
    .argument('<name>')
    .requiredOption('--to <host>', 'destination host')
    .option('--timeout <seconds>', 'give up after this long', num)
    .option('--bwlimit <rate>', 'cap the memory stream and each disk copy at this many bytes/s (e.g. 100M); default: no cap')
    .option('--etcd <urls>', 'etcd client URLs (default: this host\'s cluster)')
    .addHelpText('after', '\nLocal disks (not under the cluster\'s shared storage) are copied live over NBD; the source keeps its\nnow-stale copies renamed FILE.migrated-to-HOST-ID. UEFI vars and TPM state travel with the VM.')
    .action(
      action(async (ctx, name: string, o: { to: string; timeout?: number; bwlimit?: string; etcd?: string }) => {
        const { parseSize } = await import('../../definition/units.js');
        const bwlimit = o.bwlimit !== undefined ? parseSize(o.bwlimit) : undefined;
        if (o.bwlimit !== undefined && bwlimit === undefined) throw new (await import('../../errors.js')).KvmError('BAD_BWLIMIT', `--bwlimit "${o.bwlimit}" is not a rate`, { exit: 2, hint: 'bytes per second with a unit, e.g. --bwlimit 100M' });
        const { s } = await session(ctx, o.etcd);
        try {
          const { clusterMigrate } = await import('../../cluster/service.js');
          const tty = !ctx.json && process.stderr.isTTY;
          const r = await clusterMigrate(s, name, o.to, {
            bwlimit,
            timeoutMs: o.timeout !== undefined ? o.timeout * 1000 : undefined,
            onProgress: (m) => {
              if (ctx.json) return;
              const p = m.progress;
              const pct = p?.total ? Math.min(100, Math.round((100 * (p.transferred ?? 0)) / p.total)) : 0;
              const what = p?.status === 'mirroring' ? 'disks' : 'memory';
              const bar = `[${'#'.repeat(Math.round(pct / 5)).padEnd(20, '.')}] ${String(pct).padStart(3)}% ${what} ${mib(p?.transferred)}/${mib(p?.total)} ${m.state}${p ? ` (${p.status})` : ''}`;
              process.stderr.write(tty ? `\r${bar}` : '');
            },
          });
          if (tty) process.stderr.write('\n');
          ctx.out(r, () =>
            [
              `migrated ${name} ${r.from} → ${r.to} in ${r.totalMs} ms (QEMU: ${r.stats?.totalTimeMs ?? '?'} ms, downtime ${r.stats?.downtimeMs ?? '?'} ms, ${mib(r.stats?.transferredBytes)} sent)`,
              ...(r.disks ? [`disks ${r.disks.join(', ')} copied (${mib(r.stats?.diskBytes)}) in ${r.stats?.mirrorMs ?? '?'} ms`] : []),
              ...(r.leftBehind ? [`${r.from} keeps its stale copies: ${r.leftBehind.join(', ')} (delete them when no longer needed)`] : []),
            ].join('\n'),
          );
        } finally {
          s.close();
        }
      }),
    );
}
