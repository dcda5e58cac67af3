/**
 * `kvmctl start NAME` on this host (not in a cluster): shared by the start command
 * (src/cli/commands/lifecycle.ts) and the start fast path (src/cli/start-fast.ts).
 */
import { mark } from '../trace.js';
import type { StartResult } from '../vm/start.js';
import type { Ctx } from './context.js';

export const startedLine = (r: StartResult) =>
  `started ${r.name} (pid ${r.pid}, ${r.accel}) — QMP ready in ${r.qmpReadyMs} ms${r.guestReadyMs !== undefined ? `, guest ready in ${r.guestReadyMs} ms` : ''}`;

export type StartCliOptions = { waitForGuest?: string | boolean; timeout?: number };

/** The options `start` passes to the service layer. */
export const startOptions = (ctx: Ctx, opts: StartCliOptions) => ({
  waitForGuest: opts.waitForGuest,
  timeoutMs: opts.timeout !== undefined ? opts.timeout * 1000 : undefined,
  netns: ctx.netns(),
  log: (m: string) => process.stderr.write(`${m}\n`),
});

export async function startOne(ctx: Ctx, name: string, opts: StartCliOptions): Promise<void> {
  const startOpts = startOptions(ctx, opts);
  const { startVm } = await import('../vm/start.js');
  mark('start: module loaded');
  const r = await startVm(ctx.paths, name, startOpts);
  for (const w of r.warnings) ctx.warn(w);
  ctx.out(r, () => startedLine(r));
}
