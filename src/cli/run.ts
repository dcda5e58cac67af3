/**
 * The core every CLI command runs through, shared by main.ts's action wrapper (commander) and the
 * `start` fast path (src/cli/start-fast.ts): the definition cache's deferred writes, definitions
 * checked, the command run as a CLI task when it is one, errors mapped to message + hint + exit
 * status. Below main.ts and start-fast.ts, so imports point down.
 */
import { deferWrites, discardWrites, flushWrites } from '../definition/definition-cache.js';
import { prepareDefinitions } from '../definition/store.js';
import { asCliTask, type Cmd } from '../tasks/cli.js';
import { mark } from '../trace.js';
import { renderError, type Ctx } from './context.js';

/** `kvmctl … | head`: a reader that goes away is the end of the output, not a crash with a stack. */
export function endOnEpipe(): void {
  for (const s of [process.stdout, process.stderr]) s.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

/** Run `fn`; a failure is printed (JSON too with --json) and sets the exit status. */
export async function guarded(ctx: Ctx, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    discardWrites();
    const r = renderError(e);
    if (ctx.json) process.stdout.write(`${JSON.stringify({ error: r.json }, null, 2)}\n`);
    process.stderr.write(`${r.text}\n`);
    process.exitCode = r.exit;
  }
}

/**
 * A command on this host. `long`: it runs for long while definitions may change under it, so it
 * loads the definition validator up front; the others validate only what the cache has not seen.
 */
export async function runLocal(ctx: Ctx, cmd: Cmd, args: unknown[], long: boolean, fn: () => Promise<void> | void): Promise<void> {
  // Cache entries are written only once a short command succeeded: bad input writes nothing.
  if (!long) deferWrites();
  mark('action: commander parsed');
  await prepareDefinitions(ctx.paths, { eager: long });
  mark('definitions checked');
  await asCliTask(ctx.paths, cmd, args, async () => fn()); // long operations are listed by kvmctl tasks
  mark('action done');
  if (!process.exitCode) flushWrites();
}
