/**
 * Guest-agent routes beyond info/interfaces (those are in vms.ts): a program run in the guest and
 * a VM's addresses by source. Bad input (no program, an env entry without "=", input over 8 MiB,
 * input given twice) is a 400 before the agent is asked; a VM not running or without an agent a 409.
 */
import type { FastifyInstance } from 'fastify';
import { badInput } from '../../errors.js';
import { routes as R } from '../contract.js';
import type { ServerCtx } from '../context.js';
import { bind } from '../route.js';

/** UTF-8 text of the bytes, and base64 too when the bytes are not valid UTF-8 (a round trip changes them). */
export function textAndBytes(b: Buffer): { text: string; base64?: string } {
  const text = b.toString('utf8');
  return Buffer.from(text, 'utf8').equals(b) ? { text } : { text, base64: b.toString('base64') };
}

export function agentRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;

  bind(app, R.agentExec, async ({ params, body }) => {
    if (body.input !== undefined && body.inputBase64 !== undefined) throw badInput('BAD_REQUEST', 'give input or inputBase64, not both', undefined, [{ path: 'body.inputBase64', message: 'input is given too' }]);
    const input = body.inputBase64 !== undefined ? Buffer.from(body.inputBase64, 'base64') : body.input !== undefined ? Buffer.from(body.input, 'utf8') : undefined;
    const { agentExecStream } = await import('../../vm/guest-agent.js');
    const { exitStatusOf } = await import('../../qga/commands.js');
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await agentExecStream(paths, params.name, body.argv, {
      input,
      env: body.env,
      timeoutMs: body.timeoutSec !== undefined ? body.timeoutSec * 1000 : undefined,
      onOutput: (s, b) => (s === 'stdout' ? out : err).push(b),
    });
    const o = textAndBytes(Buffer.concat(out));
    const e = textAndBytes(Buffer.concat(err));
    return {
      pid: r.pid,
      ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
      ...(r.signal !== undefined ? { signal: r.signal } : {}),
      status: r.timedOut ? 124 : exitStatusOf(r),
      stdout: o.text,
      stderr: e.text,
      ...(o.base64 !== undefined ? { stdoutBase64: o.base64 } : {}),
      ...(e.base64 !== undefined ? { stderrBase64: e.base64 } : {}),
      truncated: r.truncated,
      timedOut: r.timedOut,
      killed: r.killed,
      ms: r.ms,
    };
  });

  bind(app, R.vmAddresses, async ({ params }) => {
    const { vmAddressReport } = await import('../../vm/addresses.js');
    return vmAddressReport(paths, params.name, { running: watchedRunning(ctx, params.name) });
  });
}

/** The watcher's view of whether the VM runs (undefined without a watcher: the report reads it itself). */
export function watchedRunning(ctx: ServerCtx, name: string): boolean | undefined {
  const s = ctx.watcher?.state(name);
  return s === undefined ? undefined : s === 'running' || s === 'paused';
}
