/** Metric history routes: a VM's and the host's series from the ring files (src/metrics/). */
import type { FastifyInstance } from 'fastify';
import { KvmError } from '../../errors.js';
import { exists } from '../../definition/store.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

export function metricsRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const recorder = () => {
    if (!ctx.recorder) throw new KvmError('METRICS_UNAVAILABLE', 'this server keeps no metric history (it runs without watching VMs)', { hint: 'kvmctl serve keeps history; GET /api/metrics has the current values' });
    return ctx.recorder;
  };
  bind(app, R.vmMetricsHistory, async ({ params, query }) => {
    if (!exists(ctx.paths, 'vm', params.name)) throw new KvmError('VM_NOT_FOUND', `no VM named "${params.name}"`, { hint: 'GET /api/vms lists them', exit: 2 });
    return recorder().history(params.name, query.range);
  });
  bind(app, R.hostMetricsHistory, async ({ query }) => {
    const r = recorder();
    return { ...r.history(undefined, query.range), sampler: { intervalMs: r.intervalMs, lastTickMs: r.lastTick.ms, lastTickCpuMs: r.lastTick.cpuMs, lastTickVms: r.lastTick.vms } };
  });
}
