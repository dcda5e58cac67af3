/** Users routes: who am I, the named tokens (admin), the audit log (admin) — over src/api/users.ts and audit.ts. */
import type { FastifyInstance } from 'fastify';
import { readAudit } from '../audit.js';
import type { ServerCtx } from '../context.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import { addToken, listTokens, removeToken } from '../users.js';

export function userRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  bind(app, R.whoami, async (_i, req) => req.identity ?? { user: 'local', role: 'admin' as const });
  bind(app, R.listTokens, async () => listTokens(paths));
  bind(app, R.createToken, async ({ body }) => addToken(paths, body.name, body.role, body.vms));
  bind(app, R.deleteToken, async ({ params }) => removeToken(paths, params.name));
  bind(app, R.audit, async ({ query }) => readAudit(paths, { limit: query.limit, user: query.user }));
}
