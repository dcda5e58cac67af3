/**
 * `kvmctl --remote URL|SOCKET CMD …`: the CLI commands that can work through a server (list,
 * status, start, stop, kill, restart, pause, resume, reset) sent to `kvmctl serve` with the
 * client, rendered like the local commands. Others are refused with a clear error.
 */
import type { Command } from 'commander';
import { badInput } from '../errors.js';
import type { Ctx } from '../cli/context.js';
import { parseRemote, remoteApi } from './client.js';
import type { StartResult, StopResult, VmListItem } from './types.js';

export const REMOTE_COMMANDS = ['list', 'status', 'start', 'stop', 'kill', 'restart', 'pause', 'resume', 'reset'] as const;

export async function runRemote(ctx: Ctx, target: string, cmd: Command, args: unknown[]): Promise<void> {
  const name = cmd.name();
  if (!(REMOTE_COMMANDS as readonly string[]).includes(name)) {
    throw badInput('REMOTE_UNSUPPORTED', `"kvmctl ${name}" does not work through --remote yet`, `remote commands: ${REMOTE_COMMANDS.join(', ')}; or run it on the server's host`);
  }
  // The server works in the namespace it was started with (serve --netns / KVMCTL_NETNS): a
  // client's --netns would be silently ignored there, so it is refused (the client's env is not read).
  const flagNs = (cmd.optsWithGlobals() as { netns?: string }).netns;
  if (flagNs !== undefined) throw badInput('REMOTE_NETNS', `--netns ${flagNs} does not apply through --remote: the server works in the namespace it was started with`, 'start the server with kvmctl serve --netns NS (or KVMCTL_NETNS), or run the command on its host without --remote');
  const api = remoteApi(parseRemote(target, ctx.paths));
  // start/stop take several names locally (variadic: an array); through a server, one at a time.
  const names = Array.isArray(args[0]) ? (args[0] as string[]) : [args[0] as string];
  if (names.length > 1) throw badInput('REMOTE_UNSUPPORTED', `"kvmctl ${name}" takes one VM name through --remote`, `run it once per VM, or on the server's host: kvmctl ${name} ${names.join(' ')}`);
  const vm = names[0]!;
  const opts = (args.find((a) => a && typeof a === 'object') ?? {}) as { timeout?: number; force?: boolean; waitForGuest?: boolean | string };
  switch (name) {
    case 'list': {
      const rows = (await api.list()) as VmListItem[];
      ctx.out(rows, () => {
        if (!rows.length) return 'no VMs defined';
        const lines = [['NAME', 'STATE', 'PID', 'CPUS', 'MEMORY', 'ACCEL', 'RESTART']];
        for (const r of rows) lines.push([r.name, r.state, String(r.pid ?? '-'), String(r.cpus ?? '?'), r.memory ? `${Math.round(r.memory / 1048576)}M` : '?', r.accel ?? '-', r.restart ?? '-']);
        const w = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
        return lines.map((l) => l.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
      });
      return;
    }
    case 'status': {
      const s = ((await api.get(vm)) as { status: VmListItem }).status;
      ctx.out(s, () => [`${vm}: ${s.state}${s.pid ? ` (pid ${s.pid})` : ''}`, s.accel ? `  accel: ${s.accel}` : '', s.uptimeSec !== undefined ? `  uptime: ${s.uptimeSec} s` : '', s.reason ? `  reason: ${s.reason}` : ''].filter(Boolean).join('\n'));
      return;
    }
    case 'start': {
      const r = (await api.start(vm, { waitForGuest: opts.waitForGuest, timeoutSec: opts.timeout })) as StartResult;
      for (const w of r.warnings) ctx.warn(w);
      ctx.out(r, () => `started ${vm} (pid ${r.pid}, ${r.accel}) through ${target}`);
      return;
    }
    case 'stop':
    case 'kill': {
      const r = (name === 'stop' ? await api.stop(vm, { timeoutSec: opts.timeout, force: opts.force }) : await api.kill(vm)) as StopResult;
      ctx.out(r, () => `${name === 'stop' ? 'stopped' : 'killed'} ${vm} (${r.how}) in ${r.tookMs} ms through ${target}`);
      return;
    }
    case 'restart': {
      const r = (await api.restart(vm, { timeoutSec: opts.timeout })) as { started: StartResult };
      ctx.out(r, () => `restarted ${vm} (pid ${r.started.pid}) through ${target}`);
      return;
    }
    default: {
      await api.control(vm, name as 'pause' | 'resume' | 'reset');
      ctx.out({ name: vm, done: name }, () => `${name}: ${vm} ok`);
    }
  }
}
