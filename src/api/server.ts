/**
 * `kvmctl serve`'s HTTP/WebSocket server (fastify), built without listening so that tests can
 * drive it through `inject`. Thin: every route calls the same service functions as the CLI.
 * The watcher (state changes + QMP events), the supervisor (restart policies) and the metrics
 * sampler run only when `watch` is on.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type { ServerCtx } from './context.js';
import type { Paths } from '../host/paths.js';
import { Supervisor } from '../vm/supervisor.js';
import { BackupScheduler } from '../backup/scheduler.js';
import { MetricsSampler, toPrometheus } from '../vm/metrics.js';
import { routes as R } from './contract.js';
import { installAuth } from './auth.js';
import { toApiError } from './errors.js';
import { EventBus } from './events.js';
import { SpecCache } from './spec-cache.js';
import { openApiDocument } from './openapi.js';
import { bind } from './route.js';
import { backupRoutes } from './routes/backups.js';
import { diskRoutes } from './routes/disks.js';
import { volumeRoutes } from './routes/volumes.js';
import { hostRoutes } from './routes/host.js';
import { manageRoutes } from './routes/manage.js';
import { vmDeviceRoutes } from './routes/vm-devices.js';
import { networkRoutes } from './routes/networks.js';
import { vmRoutes } from './routes/vms.js';
import { agentRoutes } from './routes/agent.js';
import { userRoutes } from './routes/users.js';
import { wsRoutes } from './routes/ws.js';
import { webCommon, webStatic } from './web-static.js';
import { metricsRoutes } from './routes/metrics.js';
import { clusterRoutes } from './routes/cluster.js';
import { mediaRoutes } from './routes/media.js';
import { tuningRoutes } from './routes/tuning.js';
import { installTaskWrapping, taskRoutes } from './routes/tasks.js';
import { MetricsRecorder } from '../metrics/recorder.js';
import { TaskRegistry } from '../tasks/registry.js';
import { vmInScope } from './users.js';
import { VmWatcher } from './watcher.js';
import { listNames as listNamesSync } from '../definition/store.js';

export const VERSION = '0.1.0';

export type ServerOptions = {
  paths: Paths;
  /** Require this bearer token (TCP). Undefined: no auth (the unix socket, guarded by its mode). */
  token?: string | (() => string);
  /** Watch VMs: events, supervision, QMP connections (default true). */
  watch?: boolean;
  /** Network namespace every VM start and network action works in (`serve --netns` / KVMCTL_NETNS, resolved once by the CLI). */
  netns?: string;
  /** TLS. */
  https?: { cert: Buffer; key: Buffer };
  /** The built web UI (default: dist/web next to this module's dist/). */
  webRoot?: string;
  log?: (m: string) => void;
  /** Event ring buffer size. */
  eventBuffer?: number;
  reconcileMs?: number;
  /** Metric history sample interval (default 10 s, or KVMCTL_METRICS_INTERVAL_MS). */
  metricsIntervalMs?: number;
  /** Largest ISO upload in bytes. */
  maxUploadBytes?: number;
};

export type { ServerCtx } from './context.js';

export type KvmServer = { app: FastifyInstance; ctx: ServerCtx; close(): Promise<void> };

function defaultWebRoot(): string {
  // dist/api/server.js → dist/web; src/api/server.ts (tests) → dist/web as well.
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '..', '..', 'dist', 'web').replace(`${path.sep}dist${path.sep}dist${path.sep}`, `${path.sep}dist${path.sep}`);
}

export async function buildServer(opts: ServerOptions): Promise<KvmServer> {
  const app = Fastify({ logger: false, ...(opts.https ? { https: opts.https } : {}), bodyLimit: 4 * 1024 * 1024, forceCloseConnections: true });
  const bus = new EventBus(opts.eventBuffer);
  const metrics = new MetricsSampler(opts.paths, async (name) => {
    const c = ctx.watcher?.qmp(name);
    return c ? c.execute('query-blockstats', undefined, { timeoutMs: 2000 }) : [];
  });
  const ctx: ServerCtx = { paths: opts.paths, netns: opts.netns, bus, metrics, specs: new SpecCache(opts.paths), maxUploadBytes: opts.maxUploadBytes };
  const started = Date.now();

  if (opts.watch !== false) {
    const log = opts.log ?? (() => undefined);
    ctx.supervisor = new Supervisor(opts.paths, {
      start: async (name) => (await import('../vm/start.js')).startVm(opts.paths, name, { netns: ctx.netns }),
      publish: (e) => bus.publish(e),
      log,
      spec: (name) => ctx.specs.get(name).spec,
    });
    ctx.watcher = new VmWatcher(opts.paths, bus, (t) => ctx.supervisor!.onTransition(t), opts.reconcileMs);
    ctx.backups = new BackupScheduler(opts.paths, (name) => ctx.specs.get(name).spec, log, ctx.netns);
    ctx.recorder = new MetricsRecorder(opts.paths, {
      sampler: new MetricsSampler(opts.paths, async (name) => ctx.watcher?.qmp(name)?.execute('query-blockstats', undefined, { timeoutMs: 2000 }) ?? []),
      running: () => listNamesSync(opts.paths, 'vm').flatMap((name) => { const st = ctx.watcher?.state(name); return st === 'running' || st === 'paused' ? [{ name, state: st }] : []; }),
      balloon: async (name) => ((await ctx.watcher?.qmp(name)?.execute('query-balloon', undefined, { timeoutMs: 2000 })) as { actual?: number } | undefined)?.actual,
      log,
    }, opts.metricsIntervalMs);
  }
  // In a cluster: failovers and migrations recorded by any host's agent, onto this bus (src/cluster/events.ts).
  let clusterFeed: { close(): Promise<void> } | undefined;
  if (opts.watch !== false) {
    const { readLocalCluster } = await import('../cluster/local.js');
    const cl = readLocalCluster(opts.paths);
    if (cl) {
      const { ClusterEventFeed } = await import('../cluster/events.js');
      const { keys } = await import('../cluster/etcd.js');
      const feed = new ClusterEventFeed(cl, keys(cl.prefix), ({ at, ...e }) => bus.publish({ kind: 'cluster', ...e, happenedAt: at }), opts.log);
      feed.start();
      clusterFeed = feed;
    }
  }
  ctx.tasks = new TaskRegistry(opts.paths, (action, task, line) => bus.publish({ kind: 'task', vm: task.target ?? '', action, task, line }));

  await webCommon(app);
  await app.register(websocket, { options: { maxPayload: 16 * 1024 * 1024 } });

  // YAML bodies: POST /api/vms with Content-Type: application/yaml is {yaml: <the text>}.
  for (const type of ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain']) {
    app.addContentTypeParser(type, { parseAs: 'string' }, (_req, body, done) => done(null, { yaml: body as string }));
  }

  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500) opts.log?.(`error: ${body.code}: ${body.message}`);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}`, hint: 'GET /api/openapi.json lists the routes' });
  });

  // Roles, VM scopes and the audit log: one hook before every route (src/api/auth.ts).
  const tok = opts.token;
  installAuth(app, { paths: opts.paths, token: tok === undefined ? undefined : typeof tok === 'function' ? tok : () => tok });

  bind(app, R.health, async () => ({ ok: true as const, version: VERSION, pid: process.pid, uptimeSec: Math.round((Date.now() - started) / 1000), serverId: bus.serverId }));
  let openapi: Record<string, unknown> | undefined; // built on first request: it costs memory nobody may need
  app.get(R.openapi.path, async () => (openapi ??= openApiDocument(VERSION)));
  installTaskWrapping(app, ctx); // before the routes it wraps
  vmRoutes(app, ctx);
  agentRoutes(app, ctx);
  networkRoutes(app, ctx);
  diskRoutes(app, ctx);
  volumeRoutes(app, ctx);
  backupRoutes(app, ctx);
  hostRoutes(app, ctx);
  userRoutes(app, ctx);
  manageRoutes(app, ctx);
  vmDeviceRoutes(app, ctx);
  wsRoutes(app, ctx);
  metricsRoutes(app, ctx);
  taskRoutes(app, ctx);
  clusterRoutes(app, ctx);
  mediaRoutes(app, ctx);
  tuningRoutes(app, ctx);

  const states = async () => {
    const { listNames } = await import('../definition/store.js');
    const w = ctx.watcher;
    return listNames(opts.paths, 'vm').map((name) => ({ name, state: w?.state(name) ?? ('running' as const) }));
  };
  const sample = async (names?: Awaited<ReturnType<typeof states>>) =>
    metrics.sample((names ?? (await states())).filter((n) => n.state === 'running' || n.state === 'paused' || !ctx.watcher));
  bind(app, R.metrics, async () => sample());
  app.get(R.prometheus.path, async (req, reply) => {
    // Every defined VM is in kvmctl_vm_up / kvmctl_vm_state, stopped ones as 0; a scoped token's own VMs only.
    const id = req.identity;
    const all = (await states()).filter((v) => !id || vmInScope(id, v.name));
    return reply.type(R.prometheus.text).send(toPrometheus(await sample(all), all));
  });

  const webRoot = opts.webRoot ?? defaultWebRoot();
  webStatic(app, webRoot);

  await app.ready();
  await ctx.watcher?.start();
  ctx.backups?.start();
  ctx.recorder?.start();

  return {
    app,
    ctx,
    async close() {
      ctx.supervisor?.close();
      await clusterFeed?.close();
      await ctx.backups?.stop();
      await ctx.recorder?.close();
      ctx.tasks?.close();
      await ctx.watcher?.close();
      await app.close();
    },
  };
}
