/**
 * Binds a route of the contract to a handler: params, query and body are parsed with the
 * contract's zod schemas (400 BAD_REQUEST with every issue when they do not fit), the result is
 * checked against the response schema (500 RESPONSE_INVALID when the server broke its own
 * contract) and sent as JSON.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { badInput, KvmError } from '../errors.js';
import type { Route } from './contract.js';

type In<R extends Route, K extends 'params' | 'query' | 'body'> = R[K] extends z.ZodType ? z.output<R[K]> : undefined;
export type Handler<R extends Route> = (
  input: { params: In<R, 'params'>; query: In<R, 'query'>; body: In<R, 'body'> },
  req: FastifyRequest,
  reply: FastifyReply,
) => Promise<unknown>;

function issuesOf(err: z.ZodError, where: string) {
  return err.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
}

function parse<T>(schema: z.ZodType | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value);
  if (r.success) return r.data as T;
  const issues = issuesOf(r.error, where);
  throw badInput('BAD_REQUEST', `bad ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, 'see /api/openapi.json for the expected shape', issues);
}

export function bind<R extends Route>(app: FastifyInstance, route: R, handler: Handler<R>): void {
  app.route({
    method: route.method,
    url: route.path,
    handler: async (req, reply) => {
      const params = parse<In<R, 'params'>>(route.params, req.params, 'params');
      const query = parse<In<R, 'query'>>(route.query, req.query, 'query');
      const body = parse<In<R, 'body'>>(route.body, req.body ?? undefined, 'body');
      const out = await handler({ params, query, body }, req, reply);
      if (reply.sent) return reply;
      if (route.response) {
        const r = route.response.safeParse(out);
        if (!r.success) {
          throw new KvmError('RESPONSE_INVALID', `${route.method} ${route.path}: the server's answer does not fit the API contract`, { issues: issuesOf(r.error, 'response') });
        }
      }
      return reply.send(out);
    },
  });
}
