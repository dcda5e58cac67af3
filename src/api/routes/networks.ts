/** Network routes: list, get, create, up, down, delete — through src/net/service.ts. */
import type { FastifyInstance } from 'fastify';
import { KvmError } from '../../errors.js';
import fs from 'node:fs';
import { defPath, exists } from '../../definition/store.js';
import { routes as R } from '../contract.js';
import { parseBody } from '../definition-body.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

export function networkRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const svc = () => import('../../net/service.js');
  const o = { paths: ctx.paths, netns: ctx.netns };

  bind(app, R.listNetworks, async () => (await svc()).listNetworks(o));
  bind(app, R.getNetwork, async ({ params }) => ({ ...(await (await svc()).showNetwork(o, params.name)), yaml: fs.readFileSync(defPath(ctx.paths, 'network', params.name), 'utf8') }));
  bind(app, R.networkLeases, async ({ params }) => (await import('../../net/nat/addresses.js')).networkLeases(ctx.paths, params.name));
  bind(app, R.createNetwork, async ({ query, body }) => {
    const defs = parseBody(body, 'network');
    const name = defs[0]!.spec.name;
    const replace = query.replace === 'true';
    if (!replace && exists(ctx.paths, 'network', name)) throw new KvmError('NETWORK_EXISTS', `a network named "${name}" already exists`, { hint: 'POST with ?replace=true to overwrite it' });
    return (await svc()).createNetworksFrom(o, defs, 'request body', replace);
  });
  bind(app, R.upNetwork, async ({ params }) => (await svc()).upNetwork(o, params.name) as unknown as Record<string, unknown>);
  bind(app, R.downNetwork, async ({ params, body }) => (await svc()).downNetwork(o, params.name, body.force) as unknown as Record<string, unknown>);
  bind(app, R.deleteNetwork, async ({ params, query }) => (await svc()).removeNetwork(o, params.name, query.force === 'true') as unknown as Record<string, unknown>);
}
