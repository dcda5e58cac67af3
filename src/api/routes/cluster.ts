/**
 * Cluster routes: the cluster's status (hosts with lease state and capacity, VMs with owner and
 * migration) and live migration, through src/cluster/service.ts on this host's cluster.json.
 * A migration runs as a task (routes/tasks.ts wraps it): its progress is QEMU's transferred/total;
 * when the VM leaves this host the task can be cancelled (src/cluster/migrate-cancel.ts).
 */
import type { FastifyInstance } from 'fastify';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';
import { currentTask, taskLog, taskProgress, taskSignal } from '../../tasks/current.js';

export function clusterRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const session = async () => {
    const { requireCluster } = await import('../../cluster/local.js');
    const cl = requireCluster(ctx.paths); // NOT_IN_CLUSTER (400) on a host that is in none
    const { open } = await import('../../cluster/service.js');
    return { s: await open(cl), cl };
  };
  bind(app, R.clusterStatus, async () => {
    const { s, cl } = await session();
    try {
      return await (await import('../../cluster/service.js')).clusterStatus(s, cl.etcd);
    } finally {
      s.close();
    }
  });
  bind(app, R.migrateVm, async ({ params, body }) => {
    const { s } = await session();
    const mc = await import('../../cluster/migrate-cancel.js');
    const signal = mc.runsHere(ctx.paths, params.name) ? taskSignal() : undefined;
    // The abort comes from the cancel request's call chain: log into this task by its id.
    const tid = currentTask();
    const log = (m: string) => void (tid && ctx.tasks?.log(tid, m));
    const dispose = signal ? mc.cancelMigrationOnAbort(ctx.paths, params.name, signal, log, () => ctx.watcher?.qmp(params.name)) : () => undefined;
    try {
      let state = '';
      return await (await import('../../cluster/service.js')).clusterMigrate(s, params.name, body.to, {
        timeoutMs: body.timeoutSec !== undefined ? body.timeoutSec * 1000 : undefined,
        bwlimit: body.bwlimit,
        onProgress: (m) => {
          if (m.state !== state) taskLog(`${m.from} → ${m.to}: ${(state = m.state)}`);
          const p = m.progress;
          if (p?.total) taskProgress(Math.min(99, (100 * (p.transferred ?? 0)) / p.total));
        },
      });
    } finally {
      dispose();
      s.close();
    }
  });
}
