/**
 * kvmctl's command line. Each command lives in src/cli/commands/NAME.ts and exports
 * `register(program, run)`; this file only wires them up, so start-up stays lean (command
 * modules import their heavy dependencies lazily inside their actions).
 */
import { mark } from '../trace.js';
mark('main: evaluating');
import { Command, CommanderError } from 'commander';
import { deferWrites, discardWrites, flushWrites } from '../definition/definition-cache.js';
import { prepareDefinitions } from '../definition/store.js';
import { makeCtx, renderError, type Ctx } from './context.js';
import { commands } from './commands/index.js';
import type { Action } from './action.js';
import { asCliTask } from '../tasks/cli.js';

export type { Action } from './action.js';


// `kvmctl … | head`: a reader that goes away is the end of the output, not a crash with a stack.
for (const s of [process.stdout, process.stderr]) s.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });

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

/** Wraps a command action: builds the context, maps errors to message + hint + exit status. */
const action: Action = (fn) => async (...args: any[]) => {
  const cmd = args[args.length - 1] as Command;
  const opts = cmd.optsWithGlobals() as { json?: boolean; remote?: string; netns?: string };
  const ctx = makeCtx(opts);
  let top = cmd;
  while (top.parent && top.parent !== program) top = top.parent;
  try {
    if (opts.remote && cmd.name() !== 'serve') await (await import('../api/remote-cli.js')).runRemote(ctx, opts.remote, cmd, args.slice(0, -1));
    else {
      const long = LONG_RUNNING.has(top.name());
      // Cache entries are written only once a short command succeeded: bad input writes nothing.
      if (!long) deferWrites();
      mark('action: commander parsed');
      await prepareDefinitions(ctx.paths, { eager: long });
      mark('definitions checked');
      await asCliTask(ctx.paths, cmd, args.slice(0, -1), async () => fn(ctx, ...args)); // long operations are listed by kvmctl tasks
      mark('action done');
      if (!process.exitCode) flushWrites();
    }
  } catch (e) {
    discardWrites();
    const r = renderError(e);
    if (opts.json) process.stdout.write(`${JSON.stringify({ error: r.json }, null, 2)}\n`);
    process.stderr.write(`${r.text}\n`);
    process.exitCode = r.exit;
  }
};

for (const register of commands) register(program, action);
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
