/** The start fast path's body (src/cli/start-fast.ts): false = not for the fast path, nothing done. */
import { inCluster } from '../cluster/local.js';
import { makeCtx } from './context.js';
import type { FastStart } from './fast-argv.js';
import { endOnEpipe, guarded, runLocal } from './run.js';
import { startOne } from './start-one.js';

/** What the task registry sees of the command (src/tasks/cli.ts): `kvmctl start`. */
const START = { name: () => 'start', parent: { name: () => 'kvmctl', parent: null } };

export async function runFastStart(p: FastStart): Promise<boolean> {
  let ctx;
  try {
    ctx = makeCtx({ json: p.json, netns: p.netns });
  } catch {
    return false; // the full CLI reports it
  }
  // In a cluster, start places the VM (src/cli/commands/cluster.ts): the full CLI does that.
  if (inCluster(ctx.paths)) return false;
  endOnEpipe();
  const opts = { waitForGuest: p.waitForGuest, timeout: p.timeout };
  await guarded(ctx, () => runLocal(ctx, START, [[p.name], opts], false, () => startOne(ctx, p.name, opts)));
  return true;
}
