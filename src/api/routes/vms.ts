/** VM routes: list, get, create/update/delete definitions, lifecycle and control. */
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { badInput, KvmError } from '../../errors.js';
import { defPath, exists, readVm } from '../../definition/store.js';
import type { VmSpec } from '../../definition/vm.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import { listForApi } from '../list.js';
import { parseBody } from '../definition-body.js';
import type { ServerCtx } from '../context.js';

function guestMounts(spec: VmSpec): string[] {
  return spec.shares.map((s) =>
    s.driver === '9p' ? `mount -t 9p -o trans=virtio,version=9p2000.L${s.readOnly ? ',ro' : ''} ${s.tag} /mnt/${s.tag}` : `mount -t virtiofs ${s.tag} /mnt/${s.tag}`,
  );
}

export function vmRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const status = () => import('../../vm/status.js');
  /** After a change, let the watcher see it before answering: a list right after shows the new state. */
  const settled = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } finally {
      await ctx.watcher?.reconcile();
    }
  };

  bind(app, R.listVms, async () => listForApi(ctx, ctx.specs));

  bind(app, R.getVm, async ({ params }) => {
    const spec = readVm(paths, params.name);
    const { vmStatus } = await status();
    const st = await vmStatus(paths, params.name);
    const running = st.state === 'running' || st.state === 'paused';
    // Addresses by source; the agent is asked for 1 s at most and its answer kept for 15 s (src/vm/addresses.ts).
    const addresses = running ? await (await import('../../vm/addresses.js')).vmAddressReport(paths, params.name, { running }) : undefined;
    return { spec, yaml: fs.readFileSync(defPath(paths, 'vm', params.name), 'utf8'), status: st, supervision: ctx.supervisor?.info(params.name), guestMounts: guestMounts(spec), ...(addresses ? { addresses } : {}) };
  });

  const apply = async (body: Parameters<typeof parseBody>[0], expect: { name?: string; create: boolean }) => {
    const defs = parseBody(body, 'vm');
    const d = defs[0]!;
    if (expect.name && d.spec.name !== expect.name) {
      throw badInput('NAME_MISMATCH', `the definition names "${d.spec.name}" but the URL names "${expect.name}"`, 'rename by creating a new VM and removing the old one', [{ path: 'name', message: `must be "${expect.name}"` }]);
    }
    if (expect.create && exists(paths, 'vm', d.spec.name)) throw new KvmError('VM_EXISTS', `a VM named "${d.spec.name}" already exists`, { hint: `PUT /api/vms/${d.spec.name} to change it` });
    if (!expect.create) readVm(paths, d.spec.name); // 404 when it does not exist
    const { checkLoadedDefinitions, applyLoadedDefinitions } = await import('../../vm/definitions.js');
    const [r] = applyLoadedDefinitions(paths, checkLoadedDefinitions(paths, defs, 'request body'));
    await ctx.watcher?.reconcile();
    return r;
  };
  bind(app, R.createVm, async ({ body }) => apply(body, { create: true }));
  bind(app, R.updateVm, async ({ params, body }) => apply(body, { name: params.name, create: false }));

  bind(app, R.deleteVm, async ({ params }) => {
    const { removeVm } = await import('../../vm/remove.js');
    await settled(removeVm(paths, params.name));
    return { removed: params.name };
  });

  bind(app, R.startVm, async ({ params, body }) => {
    const { startVm } = await import('../../vm/start.js');
    return settled(startVm(paths, params.name, { netns: ctx.netns, waitForGuest: body.waitForGuest, timeoutMs: body.timeoutSec !== undefined ? body.timeoutSec * 1000 : undefined }));
  });
  bind(app, R.stopVm, async ({ params, body }) => {
    const { stopVm } = await import('../../vm/stop.js');
    return settled(stopVm(paths, params.name, { timeoutSec: body.timeoutSec, force: body.force, method: body.method }));
  });
  bind(app, R.agentInfo, async ({ params }) => (await import('../../vm/guest-agent.js')).agentInfo(paths, params.name));
  bind(app, R.agentInterfaces, async ({ params }) => (await import('../../vm/guest-agent.js')).agentAddresses(paths, params.name));
  bind(app, R.killVm, async ({ params }) => {
    const { killVm } = await import('../../vm/stop.js');
    return settled(killVm(paths, params.name));
  });
  bind(app, R.restartVm, async ({ params, body }) => {
    const { restartVm } = await import('../../vm/restart.js');
    return settled(restartVm(paths, params.name, { timeoutSec: body.timeoutSec, netns: ctx.netns }));
  });

  for (const [route, fn] of [
    [R.pauseVm, 'pauseVm'],
    [R.resumeVm, 'resumeVm'],
    [R.resetVm, 'resetVm'],
  ] as const) {
    bind(app, route, async ({ params }) => {
      const control = await import('../../vm/control.js');
      const r = (await settled((control[fn] as (p: typeof paths, n: string) => Promise<unknown>)(paths, params.name))) as { clockSynced?: boolean; note?: string } | undefined;
      return { name: params.name, done: route.path.split('/').pop()!, ...(r ?? {}) };
    });
  }

  bind(app, R.monitorVm, async ({ params, body }) => {
    const { monitorCommand } = await import('../../vm/control.js');
    return { output: await monitorCommand(paths, params.name, body.command) };
  });
  bind(app, R.qmpVm, async ({ params, body }) => {
    const { qmpCommand } = await import('../../vm/control.js');
    return { return: await qmpCommand(paths, params.name, JSON.stringify(body)) };
  });

  bind(app, R.validate, async ({ body }) => {
    try {
      const defs = parseBody(body, 'any');
      const d = defs[0]!;
      const { checkLoadedDefinitions } = await import('../../vm/definitions.js');
      checkLoadedDefinitions(paths, defs, 'request body');
      return { ok: true, kind: d.kind, name: d.spec.name, issues: [] };
    } catch (e) {
      if (e instanceof KvmError && e.code === 'SPEC_INVALID') return { ok: false, issues: e.issues ?? [] };
      throw e;
    }
  });
}
