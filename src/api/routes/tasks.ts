/**
 * Task routes (list, get, log, cancel) and the wrapper that makes every mutating API call a
 * task: an `onRoute` hook, installed before the other routes are registered, wraps the handler
 * of each POST/PUT/DELETE route of the contract (but validate and cancel) in
 * `TaskRegistry.run`, so routes added later become tasks without code of their own. The task's
 * kind is the contract's route id, its target the `:name` (or the body's `path` for disks), its
 * owner the API user (`req.identity`, src/api/auth.ts: a named token's user, `token`, `local`).
 * A VM-scoped token sees only the tasks of its VMs.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KvmError } from '../../errors.js';
import { routes as R, type Route } from '../contract.js';
import { vmInScope } from '../users.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

// agentExec: a guest program's output is not kept in task files (the audit log still has the call).
const NOT_TASKS = new Set<string>(['validate', 'cancelTask', 'agentExec']);

/** method + path → the contract's route id. */
const ROUTE_IDS = new Map(Object.entries(R as Record<string, Route>).map(([id, r]) => [`${r.method} ${r.path}`, id]));

export function taskOwner(req: FastifyRequest): string {
  // The identity src/api/auth.ts set: a named token's user, "token" (the main token), "local" (the unix socket).
  const user = req.identity?.user;
  if (user) return user;
  return req.socket?.remoteAddress ? 'api' : 'local';
}

function summaryLine(out: unknown): string | undefined {
  if (out === undefined) return undefined;
  let text: string;
  try {
    text = JSON.stringify(out);
  } catch {
    return undefined;
  }
  return `result: ${text.length > 400 ? `${text.slice(0, 400)}…` : text}`;
}

/** Call before registering the routes to wrap. */
export function installTaskWrapping(app: FastifyInstance, ctx: ServerCtx): void {
  app.addHook('onRoute', (opts) => {
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    if (!methods.some((m) => m === 'POST' || m === 'PUT' || m === 'DELETE')) return;
    const id = ROUTE_IDS.get(`${methods[0]} ${opts.url}`);
    if (!id || NOT_TASKS.has(id)) return;
    const inner = opts.handler as (this: FastifyInstance, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
    opts.handler = async function (this: FastifyInstance, req: FastifyRequest, reply: FastifyReply) {
      const tasks = ctx.tasks;
      if (!tasks) return inner.call(this, req, reply);
      const params = (req.params ?? {}) as { name?: string };
      const body = (req.body ?? {}) as { path?: unknown };
      const target = params.name ?? (typeof body.path === 'string' ? body.path : undefined);
      let payload: unknown;
      const send = reply.send.bind(reply);
      reply.send = ((p?: unknown) => {
        payload = p;
        return send(p);
      }) as typeof reply.send;
      let taskId = '';
      await tasks.run({ kind: id, target, owner: taskOwner(req) }, async () => {
        taskId = tasks.current() ?? '';
        tasks.log(taskId, `${req.method} ${req.url.split('?')[0]}`);
        await inner.call(this, req, reply);
        const line = summaryLine(payload);
        if (line) tasks.log(taskId, line);
        return payload;
      });
      return reply;
    };
  });
}

export function taskRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const reg = () => ctx.tasks!;
  /** A scoped token reads the tasks of its VMs only (others look absent). */
  const visible = (req: FastifyRequest, target: string | undefined) => !req.identity?.vms || (target !== undefined && vmInScope(req.identity, target));
  const getVisible = (req: FastifyRequest, id: string) => {
    const t = reg().get(id);
    if (!visible(req, t.target)) throw new KvmError('TASK_NOT_FOUND', `no task "${id}"`, { hint: 'GET /api/tasks lists the ones this token may see', exit: 2 });
    return t;
  };
  bind(app, R.listTasks, async ({ query }, req) => reg().list({ vm: query.vm, state: query.state, limit: req.identity?.vms ? 1000 : query.limit }).filter((t) => visible(req, t.target)).slice(0, query.limit));
  bind(app, R.getTask, async ({ params }, req) => {
    const t = getVisible(req, params.id);
    return { ...t, logLines: t.log.length };
  });
  bind(app, R.taskLog, async ({ params, query }, req) => {
    const t = getVisible(req, params.id);
    return { id: t.id, state: t.state, lines: t.log.slice(query.since), next: t.log.length };
  });
  bind(app, R.cancelTask, async ({ params }, req) => {
    getVisible(req, params.id);
    return reg().cancel(params.id);
  });
}
