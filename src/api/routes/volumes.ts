/** Volume routes (RBD volumes of a named storage): list, info, create, resize, rm — through src/storage/volumes.ts, in the server's namespace; the named storages' list and check (src/storage/defs.ts, check.ts), read only. */
import type { FastifyInstance } from 'fastify';
import { badInput } from '../../errors.js';
import { parseSize } from '../../definition/units.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

const size = (v: string | number) => {
  const n = parseSize(v);
  if (n === undefined) throw badInput('BAD_SIZE', `${JSON.stringify(v)} is not a size`, 'e.g. 20G', [{ path: 'size', message: 'must be a size such as 20G' }]);
  return n;
};

export function volumeRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const v = () => import('../../storage/volumes.js');
  const c = () => ({ paths: ctx.paths, netns: ctx.netns });
  bind(app, R.listStorages, async () => (await import('../../storage/defs.js')).listStorages(ctx.paths));
  bind(app, R.checkStorage, async ({ params }) => (await import('../../storage/check.js')).checkStorage(ctx.paths, params.storage, ctx.netns));
  bind(app, R.listVolumes, async ({ params }) => (await v()).listVolumes(c(), params.storage));
  bind(app, R.volumeInfo, async ({ params }) => (await v()).volumeInfo(c(), `${params.storage}/${params.volume}`));
  bind(app, R.createVolume, async ({ params, body }) => (await v()).createVolume(c(), `${params.storage}/${body.volume}`, size(body.size)));
  bind(app, R.resizeVolume, async ({ params, body }) => (await v()).resizeVolume(c(), `${params.storage}/${params.volume}`, size(body.size), { shrink: body.shrink }));
  bind(app, R.deleteVolume, async ({ params }) => (await v()).removeVolume(c(), `${params.storage}/${params.volume}`));
}
