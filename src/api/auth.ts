/**
 * Who may do what, enforced in one place: an onRequest hook that runs before every route,
 * WebSocket upgrades (serial, VNC, events) included. A route's required role is declared with
 * the route in the contract (`role` in src/api/contract.ts); without one, GET needs viewer and
 * anything else admin, so a route added without thinking about roles is admin-only.
 *
 * Identities: the main token (`<config>/token` or KVMCTL_TOKEN) is `token`, an admin; named
 * tokens (src/api/users.ts) have their own role and optional VM scope; with no token required
 * (the unix socket, guarded by its mode) every request is `local`, an admin.
 *
 * A scoped token acts on VMs whose names match its pattern: a route with a VM name outside it is
 * 403, a route without a VM needs no more than viewer, and the VM list and metrics it reads
 * leave the other VMs out. Every change, console open and refusal goes to the audit log.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { appendAudit } from './audit.js';
import { routes as R, type Route } from './contract.js';
import { unauthorized } from './errors.js';
import { tokenMatches } from './token.js';
import { findToken, roleRank, tokenStore, vmInScope, type Identity, type Role } from './users.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
    /** Whether the credentials this request came with still hold (a token revoked or rotated since: false). Long-lived WebSockets ask it. */
    stillAuthorized?: () => boolean;
  }
}

const index = new Map<string, Route>(Object.values(R as Record<string, Route>).map((r) => [`${r.method} ${r.path}`, r]));

/** The role a request needs: the route's own, else viewer for reads and admin for the rest. */
export function requiredRole(method: string, routeUrl: string | undefined): Role {
  const r = routeUrl ? index.get(`${method === 'HEAD' ? 'GET' : method} ${routeUrl}`) : undefined;
  if (r?.role) return r.role;
  return method === 'GET' || method === 'HEAD' ? 'viewer' : 'admin';
}

export const forbidden = (why: string, hint?: string) => new KvmError('FORBIDDEN', why, { hint: hint ?? 'ask an admin for a token with that role (kvmctl serve token add NAME --role operator|admin)' });

/** Decide for one request (pure: the hook and the unit test use it). Throws 403 FORBIDDEN. */
export function authorize(id: Identity, method: string, routeUrl: string | undefined, vm: string | undefined): void {
  const need = requiredRole(method, routeUrl);
  if (roleRank(id.role) < roleRank(need)) throw forbidden(`"${id.user}" is a ${id.role}: ${method} ${routeUrl ?? 'this route'} needs ${need}`);
  if (!id.vms) return;
  // A VM's route names it as `:name` after `/vms/` (`/api/vms/:name/…`, `/api/cluster/vms/:name/migrate`).
  const vmRoute = routeUrl?.includes('/vms/:name') ?? false;
  if (vmRoute && vm !== undefined && !vmInScope(id, vm)) throw forbidden(`"${id.user}" may act on VMs matching "${id.vms}" only, not "${vm}"`, 'use a token whose scope includes this VM');
  if (!vmRoute && need !== 'viewer') throw forbidden(`"${id.user}" is scoped to VMs matching "${id.vms}": ${method} ${routeUrl ?? 'this route'} is not a VM's`);
}

function givenToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  // Browsers cannot set headers on a WebSocket: only upgrades may carry ?token=.
  return req.headers.upgrade ? ((req.query as { token?: string }).token ?? undefined) : undefined;
}

function targetOf(req: FastifyRequest): string | undefined {
  const p = req.params as Record<string, string> | undefined;
  const q = req.query as Record<string, string> | undefined;
  const b = req.body as Record<string, unknown> | undefined;
  const t = p?.name ?? q?.path ?? (typeof b?.path === 'string' ? b.path : undefined) ?? (typeof b?.name === 'string' ? b.name : undefined);
  return p?.id && t ? `${t}/${p.id}` : t;
}

const LOCAL: Identity = { user: 'local', role: 'admin' };

export function installAuth(app: FastifyInstance, o: { paths: Paths; token?: () => string }): void {
  const named = tokenStore(o.paths);
  const audit = (req: FastifyRequest, status: number) =>
    appendAudit(o.paths, {
      at: new Date().toISOString(),
      user: req.identity?.user ?? 'anonymous',
      ...(req.identity ? { role: req.identity.role } : {}),
      method: req.method,
      route: req.routeOptions.url ?? req.url.split('?')[0]!,
      ...(targetOf(req) !== undefined ? { target: targetOf(req) } : {}),
      status,
      ms: Math.round(Date.now() - ((req as { t0?: number }).t0 ?? Date.now())),
      ip: req.ip,
    });

  app.addHook('onRequest', async (req) => {
    (req as { t0?: number }).t0 = Date.now();
    const url = req.url.split('?')[0]!;
    if (url === R.health.path) return;
    // The web UI's own files are public (it asks for the token); the API and /metrics are not.
    if (!url.startsWith('/api/') && url !== '/metrics') return;
    if (!o.token) {
      req.identity = LOCAL;
      req.stillAuthorized = () => true;
    } else {
      const given = givenToken(req);
      if (!given) throw unauthorized('this server needs a token');
      const main = o.token;
      if (tokenMatches(given, main())) {
        req.identity = { user: 'token', role: 'admin' };
        req.stillAuthorized = () => tokenMatches(given, main());
      } else {
        const t = findToken(named(), given);
        if (!t) throw unauthorized('wrong token');
        req.identity = { user: t.name, role: t.role, ...(t.vms ? { vms: t.vms } : {}) };
        // Still there, with the same role and scope (a token removed and re-added under its name is another token).
        req.stillAuthorized = () => {
          const now = findToken(named(), given);
          return !!now && now.role === t.role && now.vms === t.vms;
        };
      }
    }
    authorize(req.identity, req.method, req.routeOptions.url, (req.params as { name?: string } | undefined)?.name);
    // A console opened: the upgrade is answered outside fastify's reply, so log it here.
    if (req.headers.upgrade && req.routeOptions.url !== R.events.path) audit(req, 101);
  });

  app.addHook('onResponse', async (req, reply) => {
    const url = req.url.split('?')[0]!;
    if (!url.startsWith('/api/') && url !== '/metrics') return;
    const s = reply.statusCode;
    if ((req.method !== 'GET' && req.method !== 'HEAD') || s === 401 || s === 403) audit(req, s);
  });

  // A scoped token reads only its own VMs in the lists that name VMs: the VM list, the metrics,
  // the backup schedule, the cluster view. (Tasks: src/api/routes/tasks.ts; the event stream:
  // src/api/routes/ws.ts; Prometheus /metrics: src/api/server.ts.)
  app.addHook('preSerialization', async (req, _reply, payload: unknown) => {
    const id = req.identity;
    if (!id?.vms) return payload;
    return scopePayload(id, req.routeOptions.url, payload);
  });
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => !!x && typeof x === 'object' && !Array.isArray(x);

/** A read's payload as a scoped identity may see it (pure; other routes' payloads unchanged). */
export function scopePayload(id: Identity, routeUrl: string | undefined, payload: unknown): unknown {
  const byName = (x: unknown) => vmInScope(id, String((x as { name?: unknown }).name ?? ''));
  if (routeUrl === R.listVms.path && Array.isArray(payload)) return payload.filter(byName);
  if (routeUrl === R.metrics.path && isObj(payload) && Array.isArray(payload.vms)) return { ...payload, vms: payload.vms.filter(byName) };
  if (routeUrl === R.backupTasks.path && Array.isArray(payload)) return payload.filter((x) => vmInScope(id, String((x as { vm?: unknown }).vm ?? '')));
  if (routeUrl === R.clusterStatus.path && isObj(payload)) {
    return {
      ...payload,
      vms: Array.isArray(payload.vms) ? payload.vms.filter(byName) : payload.vms,
      events: Array.isArray(payload.events) ? payload.events.filter((e) => vmInScope(id, String((e as { vm?: unknown }).vm ?? ''))) : payload.events,
      hosts: Array.isArray(payload.hosts) ? payload.hosts.map((h) => (isObj(h) && Array.isArray(h.vms) ? { ...h, vms: h.vms.filter((v) => vmInScope(id, String(v))) } : h)) : payload.hosts,
    };
  }
  return payload;
}
