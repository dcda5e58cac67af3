/**
 * kvmctl's command line. Each command lives in src/cli/commands/NAME.ts and exports
 * `register(program, run)`; this file only wires them up, so start-up stays lean (command
 * modules import their heavy dependencies lazily inside their actions).
 */
import { mark } from '../trace.js';
mark('main: evaluating');
import { Command, CommanderError } from 'commander';
import { makeCtx, renderError } from './context.js';
import { commands, daemons } from './commands/index.js';
import type { Action } from './action.js';
import { endOnEpipe, guarded, runLocal } from './run.js';

export type { Action } from './action.js';


endOnEpipe();

const program = new Command();
program
  .name('kvmctl')
  .description('Declarative manager for QEMU/KVM virtual machines')
  .version('0.1.0')
  .option('--json', 'print machine-readable JSON')
  .option('--netns <name>', 'create host networking (bridges, taps, dnsmasq, nftables, ip_forward) and run QEMU in this existing network namespace; default: env KVMCTL_NETNS')
  .option('--remote <url|socket>', 'work through a kvmctl serve (its unix socket path, or http(s)://HOST:PORT with KVMCTL_TOKEN): list, status, start, stop, kill, restart, pause, resume, reset')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

/**
 * Commands that run for long, while definitions may change under them: they load the definition
 * validator up front. The others validate (YAML + zod) only definitions the cache has not seen.
 */
const LONG_RUNNING = new Set(['serve', 'agent', 'cluster', 'migrate', 'autostart', 'shutdown-all', 'demo']);

/** Wraps a command action: builds the context, maps errors to message + hint + exit status (src/cli/run.ts). */
const action: Action = (fn) => async (...args: any[]) => {
  const cmd = args[args.length - 1] as Command;
  const opts = cmd.optsWithGlobals() as { json?: boolean; remote?: string; netns?: string };
  const ctx = makeCtx(opts);
  let top = cmd;
  while (top.parent && top.parent !== program) top = top.parent;
  await guarded(ctx, async () => {
    if (opts.remote && cmd.name() !== 'serve') await (await import('../api/remote-cli.js')).runRemote(ctx, opts.remote, cmd, args.slice(0, -1));
    else await runLocal(ctx, cmd, args.slice(0, -1), LONG_RUNNING.has(top.name()), () => fn(ctx, ...args));
  });
};

// `kvmctl serve …` (and the cluster agent) need only their own command: see daemons.
const daemon = Object.hasOwn(daemons, process.argv[2] ?? '') ? daemons[process.argv[2]!] : undefined;
for (const register of daemon ? [daemon] : commands) register(program, action);
mark('commands registered');

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
    return;
  }
  const r = renderError(e);
  process.stderr.write(`${r.text}\n`);
  process.exitCode = r.exit;
});
