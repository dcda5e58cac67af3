/**
 * Cluster routes: the cluster's status (hosts with lease state and capacity, VMs with owner and
 * migration) and live migration, through src/cluster/service.ts on this host's cluster.json.
 * A migration runs as a task (routes/tasks.ts wraps it): its progress is QEMU's transferred/total;
 * its task can be cancelled on any host's serve, and POST …/migrate/cancel cancels a migration
 * whoever asked for it (src/cluster/migrate-cancel.ts; the source agent acts through etcd).
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
    const { s, cl } = await session();
    const mc = await import('../../cluster/migrate-cancel.js');
    const svc = await import('../../cluster/service.js');
    const signal = taskSignal();
    // The abort comes from the cancel request's call chain: log into this task by its id.
    const tid = currentTask();
    const log = (m: string) => void (tid && ctx.tasks?.log(tid, m));
    // The source QEMU directly when it runs here; else (and as well) the source agent through etcd.
    const here = signal && mc.runsHere(ctx.paths, params.name) ? mc.cancelMigrationOnAbort(ctx.paths, params.name, signal, log, () => ctx.watcher?.qmp(params.name)) : () => undefined;
    const viaEtcd = signal ? mc.cancelThroughClusterOnAbort(signal, () => svc.requestMigrationCancel(s, params.name, `the serve on ${cl.host ?? 'another host'}`), log) : () => undefined;
    const dispose = () => (here(), viaEtcd());
    try {
      let state = '';
      return await svc.clusterMigrate(s, params.name, body.to, {
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
  bind(app, R.cancelMigration, async ({ params }) => {
    const { s, cl } = await session();
    try {
      return await (await import('../../cluster/service.js')).requestMigrationCancel(s, params.name, `the serve on ${cl.host ?? 'another host'}`);
    } finally {
      s.close();
    }
  });
}
