/**
 * Every route of kvmctl serve through fastify `inject` against a private KVMCTL_HOME (no VM
 * booted: real qemu-img for disks, a fake KSM sysfs dir), every error status, the event stream
 * over injectWS, then the real unix socket (with the --remote client) and TCP with a token on a
 * random loopback port.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrorSchema, routes, type ServerMessage } from '../../src/api/contract.js';
import { request } from '../../src/api/client.js';
import { serve } from '../../src/api/listen.js';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';

let home: string;
let paths: Paths;
let s: KvmServer;
const ksmRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kksm-'));
const oldKsm = process.env.KVMCTL_KSM_ROOT;

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kapi-'));
  paths = resolvePaths({ KVMCTL_HOME: home });
  for (const [f, v] of Object.entries({ run: 0, pages_to_scan: 100, sleep_millisecs: 20, pages_shared: 3, pages_sharing: 7, pages_unshared: 1, full_scans: 2 })) fs.writeFileSync(path.join(ksmRoot, f), `${v}\n`);
  process.env.KVMCTL_KSM_ROOT = ksmRoot;
  s = await buildServer({ paths, reconcileMs: 200 });
});
afterAll(async () => {
  await s?.close();
  if (oldKsm === undefined) delete process.env.KVMCTL_KSM_ROOT;
  else process.env.KVMCTL_KSM_ROOT = oldKsm;
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(ksmRoot, { recursive: true, force: true });
});

const call = async (method: string, url: string, payload?: unknown) => {
  const r = await s.app.inject({ method: method as 'GET', url, payload: payload as object });
  return { status: r.statusCode, body: r.headers['content-type']?.includes('json') ? r.json() : r.body, headers: r.headers };
};
const expectError = (r: { status: number; body: any }, status: number, code: string) => {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(apiErrorSchema.parse(r.body).code).toBe(code);
};

const VM = `name: web
# a comment kept in the stored file
memory: 64M
kernel: { builtin: test-guest }
restart: on-failure
`;

describe('VM definitions', () => {
  it('creates from YAML, lists, gets (YAML kept), updates, refuses duplicates and bad input, deletes', async () => {
    expect(await call('GET', '/api/vms')).toMatchObject({ status: 200, body: [] });
    const c = await call('POST', '/api/vms', { yaml: VM });
    expect(c).toMatchObject({ status: 200, body: { kind: 'vm', name: 'web', action: 'created' } });
    expectError(await call('POST', '/api/vms', { yaml: VM }), 409, 'VM_EXISTS');
    // a definition object works too (sizes as text)
    expect((await call('POST', '/api/vms', { definition: { name: 'obj', memory: '128M', kernel: { builtin: 'test-guest' } } })).status).toBe(200);
    // YAML as the raw body
    const raw = await s.app.inject({ method: 'POST', url: '/api/vms', headers: { 'content-type': 'application/yaml' }, payload: 'name: rawyaml\nmemory: 64M\n' });
    expect(raw.statusCode, raw.body).toBe(200);

    const list = await call('GET', '/api/vms');
    expect(list.body.map((v: { name: string }) => v.name)).toEqual(['obj', 'rawyaml', 'web']);
    expect(list.body[2]).toMatchObject({ name: 'web', state: 'stopped', memory: 64 * 1024 * 1024, cpus: 1, restart: 'on-failure', supervision: { policy: 'on-failure', restarts: 0, gaveUp: false } });

    const g = await call('GET', '/api/vms/web');
    expect(g.status).toBe(200);
    expect(g.body.yaml).toContain('# a comment kept');
    expect(g.body.spec).toMatchObject({ name: 'web', memory: 64 * 1024 * 1024 });
    expect(g.body.status).toMatchObject({ name: 'web', state: 'stopped' });

    const u = await call('PUT', '/api/vms/web', { yaml: VM.replace('64M', '96M') });
    expect(u).toMatchObject({ status: 200, body: { action: 'configured' } });
    expect((await call('GET', '/api/vms/web')).body.spec.memory).toBe(96 * 1024 * 1024);
    expectError(await call('PUT', '/api/vms/web', { yaml: 'name: other\n' }), 400, 'NAME_MISMATCH');
    expectError(await call('PUT', '/api/vms/ghost', { yaml: 'name: ghost\n' }), 404, 'VM_NOT_FOUND');

    expect((await call('DELETE', '/api/vms/obj')).body).toEqual({ removed: 'obj' });
    expectError(await call('DELETE', '/api/vms/obj'), 404, 'VM_NOT_FOUND');
    expectError(await call('GET', '/api/vms/obj'), 404, 'VM_NOT_FOUND');
  });

  it('reports every problem of a bad definition with its path (422), and bad request shapes (400)', async () => {
    const r = await call('POST', '/api/vms', { yaml: 'name: bad\nmemroy: 1G\ncpu: { count: 0 }\nnics: [{ network: lan, mac: "zz" }]\n' });
    expectError(r, 422, 'SPEC_INVALID');
    const paths = r.body.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['memroy', 'cpu.count', 'nics[0].mac']));
    expect(r.body.issues.find((i: { path: string }) => i.path === 'memroy').message).toMatch(/did you mean "memory"/);
    expectError(await call('POST', '/api/vms', { yaml: 'kind: network\nname: n\ntype: user\n' }), 400, 'WRONG_KIND');
    expectError(await call('POST', '/api/vms', { yaml: 'name: a\n---\nname: b\n' }), 400, 'NOT_ONE_DEFINITION');
    expectError(await call('POST', '/api/vms', { nope: 1 }), 400, 'BAD_REQUEST');
    expectError(await call('POST', '/api/vms/web/stop', { timeoutSec: 'soon' }), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/api/vms/bad%20name'), 400, 'BAD_REQUEST');
    const badJson = await s.app.inject({ method: 'POST', url: '/api/vms', headers: { 'content-type': 'application/json' }, payload: '{"yaml":' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().code).toBe('BAD_REQUEST');
    expectError(await call('GET', '/api/nothing-here'), 404, 'NOT_FOUND');
  });

  it('validates without storing: ok, or the issues', async () => {
    expect((await call('POST', '/api/validate', { yaml: 'name: v\nmemory: 64M\n' })).body).toEqual({ ok: true, kind: 'vm', name: 'v', issues: [] });
    const bad = await call('POST', '/api/validate', { definition: { name: 'v', memory: 'lots' } });
    expect(bad.status).toBe(200);
    expect(bad.body.ok).toBe(false);
    expect(bad.body.issues[0].path).toBe('memory');
    expectError(await call('GET', '/api/vms/v'), 404, 'VM_NOT_FOUND');
  });

  it('refuses lifecycle and control on a VM that is not running (409) or not defined (404)', async () => {
    for (const [m, u, b] of [
      ['POST', '/api/vms/web/stop', {}],
      ['POST', '/api/vms/web/kill', undefined],
      ['POST', '/api/vms/web/pause', undefined],
      ['POST', '/api/vms/web/resume', undefined],
      ['POST', '/api/vms/web/reset', undefined],
      ['POST', '/api/vms/web/monitor', { command: 'info status' }],
      ['POST', '/api/vms/web/qmp', { execute: 'query-status' }],
    ] as const) expectError(await call(m, u, b), 409, 'VM_NOT_RUNNING');
    for (const u of ['start', 'stop', 'kill', 'restart', 'pause', 'resume', 'reset']) expectError(await call('POST', `/api/vms/ghost/${u}`), 404, 'VM_NOT_FOUND');
    expectError(await call('POST', '/api/vms/web/monitor', {}), 400, 'BAD_REQUEST');
    expectError(await call('POST', '/api/vms/web/qmp', { arguments: {} }), 400, 'BAD_REQUEST');
  });
});

describe('networks, disks, host', () => {
  it('networks: create, list, get, up/down of a user network, conflicts, delete', async () => {
    const net = 'kind: network\nname: usernet\ntype: user\n';
    expect((await call('POST', '/api/networks', { yaml: net })).body).toMatchObject([{ name: 'usernet', action: 'created' }]);
    expectError(await call('POST', '/api/networks', { yaml: net }), 409, 'NETWORK_EXISTS');
    expect((await call('POST', '/api/networks?replace=true', { yaml: net })).body).toMatchObject([{ action: 'replaced' }]);
    expectError(await call('POST', '/api/networks', { yaml: 'name: vmnotnet\n' }), 400, 'WRONG_KIND');
    expectError(await call('POST', '/api/networks', { yaml: 'kind: network\nname: x\ntype: bridge\nstp: maybe\n' }), 422, 'SPEC_INVALID');
    const l = await call('GET', '/api/networks');
    expect(l.status).toBe(200);
    expect(l.body).toMatchObject([{ network: 'usernet', type: 'user' }]);
    expect((await call('GET', '/api/networks/usernet')).body).toMatchObject({ spec: { name: 'usernet', type: 'user' }, status: { network: 'usernet' } });
    expect((await call('POST', '/api/networks/usernet/up')).status).toBe(200);
    expect((await call('POST', '/api/networks/usernet/down', { force: false })).status).toBe(200);
    expectError(await call('GET', '/api/networks/nonet'), 404, 'NETWORK_NOT_FOUND');
    expectError(await call('POST', '/api/networks/nonet/up'), 404, 'NETWORK_NOT_FOUND');
    expect((await call('DELETE', '/api/networks/usernet')).status).toBe(200);
    expectError(await call('DELETE', '/api/networks/usernet'), 404, 'NETWORK_NOT_FOUND');
  });

  it('disks: create with qemu-img, info, list, refuse paths outside the images dir and overwrites', async () => {
    const c = await call('POST', '/api/disks', { path: 'd/one.qcow2', size: '64M', format: 'qcow2' });
    expect(c.status, JSON.stringify(c.body)).toBe(200);
    expect(c.body.info).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * 1024 * 1024 });
    expectError(await call('POST', '/api/disks', { path: 'd/one.qcow2', size: '64M', format: 'qcow2' }), 409, 'DISK_EXISTS');
    expectError(await call('POST', '/api/disks', { path: '../escape.raw', size: '1M' }), 400, 'DISK_OUTSIDE_ROOTS');
    expectError(await call('POST', '/api/disks', { path: 'x.raw', size: 'big' }), 400, 'DISK_BAD_SIZE');
    expect((await call('GET', '/api/disks/info?path=d/one.qcow2')).body).toMatchObject({ inUse: false, info: { format: 'qcow2' } });
    expectError(await call('GET', '/api/disks/info?path=/etc/passwd'), 400, 'DISK_OUTSIDE_ROOTS');
    expectError(await call('GET', '/api/disks/info?path=missing.raw'), 404, 'DISK_NOT_FOUND');
    expectError(await call('GET', '/api/disks/info'), 400, 'BAD_REQUEST');
    expect((await call('GET', '/api/disks')).body).toMatchObject([{ path: 'd/one.qcow2' }]);
  });

  it('host check and KSM (on a fake sysfs dir)', async () => {
    const h = await call('GET', '/api/host/check');
    expect(h.status).toBe(200);
    expect(h.body.items.length).toBeGreaterThan(5);
    expect(h.body.summary.accel).toMatch(/kvm|tcg/);
    expect((await call('GET', '/api/host/ksm')).body).toMatchObject({ run: 0, pagesSharing: 7, savedBytes: 7 * 4096 });
    expect((await call('POST', '/api/host/ksm/on', { pagesToScan: 500 })).body).toMatchObject({ run: 1, pagesToScan: 500 });
    expect(fs.readFileSync(path.join(ksmRoot, 'run'), 'utf8').trim()).toBe('1');
    expect((await call('POST', '/api/host/ksm/off', { unmerge: true })).body).toMatchObject({ run: 2 });
    expectError(await call('POST', '/api/host/ksm/on', { pagesToScan: -1 }), 400, 'BAD_REQUEST');
  });

  it('health, OpenAPI, metrics (JSON and Prometheus), the web UI fallback', async () => {
    expect((await call('GET', '/api/health')).body).toMatchObject({ ok: true, serverId: s.ctx.bus.serverId });
    const doc = (await call('GET', '/api/openapi.json')).body;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toHaveLength(new Set(Object.values(routes).map((r) => r.path)).size);
    expect(doc.paths['/api/vms/{name}/stop'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('timeoutSec');
    expect(doc.components.schemas.VmDefinition.properties).toHaveProperty('restart');
    const m = await call('GET', '/api/metrics');
    expect(m.body).toMatchObject({ host: { cpus: os.cpus().length, ksmSavedBytes: 7 * 4096 }, vms: [] });
    const p = await call('GET', '/metrics');
    expect(p.headers['content-type']).toContain('text/plain');
    expect(p.body).toContain('kvmctl_host_memory_total_bytes');
    const ui = await s.app.inject({ url: '/' });
    expect([200, 404]).toContain(ui.statusCode); // 404 NO_WEB_UI until the UI is built
  });
});

describe('event stream', () => {
  it('streams definition events over the real unix socket and resumes from ?since=ID after a reconnect', async () => {
    const { default: WebSocket } = await import('ws'); // @fastify/websocket's own dependency
    const sock = path.join(home, 'ev.sock');
    const srv = await serve({ paths, socket: sock, reconcileMs: 200 });
    const collect = async (q: string, until: (m: ServerMessage) => boolean, act?: () => Promise<unknown>) => {
      const ws = new WebSocket(`ws+unix://${sock}:/api/events${q}`);
      const got: ServerMessage[] = [];
      const done = new Promise<void>((resolve) =>
        ws.on('message', (d: Buffer) => {
          got.push(JSON.parse(d.toString()) as ServerMessage);
          if (until(got[got.length - 1]!)) resolve();
        }),
      );
      await new Promise((r) => ws.once('open', r));
      await act?.();
      await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
      ws.terminate();
      return got;
    };
    const isDef = (m: ServerMessage) => m.type === 'event' && m.event.kind === 'definition';
    try {
      const first = await collect('', isDef, () => request({ socketPath: sock }, 'POST', '/api/vms', { yaml: 'name: ev1\nmemory: 64M\n' }));
      expect(first[0]).toMatchObject({ type: 'hello', serverId: srv.ctx.bus.serverId });
      const ev = first.find(isDef);
      expect(ev).toMatchObject({ type: 'event', event: { kind: 'definition', action: 'created', vm: 'ev1' } });
      const id = (ev as { event: { id: number } }).event.id;
      // While disconnected: the VM is removed; a reconnect with since=id gets what it missed.
      await request({ socketPath: sock }, 'DELETE', '/api/vms/ev1');
      await new Promise((r) => setTimeout(r, 800));
      const again = (await collect(`?since=${id}`, isDef)).filter(isDef);
      expect(again[0]).toMatchObject({ type: 'event', event: { kind: 'definition', action: 'removed', vm: 'ev1' } });
      expect((again[0] as { event: { id: number } }).event.id).toBeGreaterThan(id);
      const reset = await collect('?since=999999', (m) => m.type === 'reset');
      expect(reset.find((m) => m.type === 'reset')).toMatchObject({ type: 'reset' });
    } finally {
      await srv.close();
    }
  });
});

describe('listening for real', () => {
  it('unix socket: mode 0660, the client, and CLI --remote', async () => {
    const sock = path.join(home, 'api.sock');
    const srv = await serve({ paths, socket: sock, watch: false });
    try {
      expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
      const list = await request<{ name: string }[]>({ socketPath: sock }, 'GET', '/api/vms');
      expect(list.map((v) => v.name)).toContain('web');
      await expect(request({ socketPath: sock }, 'POST', '/api/vms/web/stop', {})).rejects.toMatchObject({ code: 'VM_NOT_RUNNING' });
      await expect(serve({ paths, socket: sock, watch: false })).rejects.toMatchObject({ code: 'SERVER_RUNNING' });
    } finally {
      await srv.close();
    }
    await expect(request({ socketPath: sock }, 'GET', '/api/vms')).rejects.toMatchObject({ code: 'REMOTE_UNREACHABLE' });
  });

  it('TCP on 127.0.0.1 with a random port needs the token: none → 401, wrong → 401, right → 200', async () => {
    const srv = await serve({ paths, listen: '127.0.0.1:0', watch: false });
    try {
      const url = new URL(srv.url!);
      expect(url.hostname).toBe('127.0.0.1');
      expect(fs.statSync(path.join(paths.config, 'token')).mode & 0o777).toBe(0o600);
      await expect(request({ url }, 'GET', '/api/vms')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
      await expect(request({ url, token: 'wrong' }, 'GET', '/api/vms')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
      await expect(request({ url, token: srv.token }, 'GET', '/metrics')).resolves.toContain('kvmctl_host_cpus');
      const ok = await request<unknown[]>({ url, token: srv.token }, 'GET', '/api/vms');
      expect(Array.isArray(ok)).toBe(true);
      // raw statuses, not only the client's reading of them
      const raw = async (headers: Record<string, string>) => (await fetch(`${srv.url}/api/vms`, { headers })).status;
      expect(await raw({})).toBe(401);
      expect(await raw({ authorization: 'Bearer wrong' })).toBe(401);
      expect(await raw({ authorization: `Bearer ${srv.token}` })).toBe(200);
      expect((await fetch(`${srv.url}/api/health`)).status).toBe(200); // health is public
      // rotation takes effect at once
      const { rotateToken } = await import('../../src/api/token.js');
      const next = rotateToken(paths).token;
      expect(await raw({ authorization: `Bearer ${srv.token}` })).toBe(401);
      expect(await raw({ authorization: `Bearer ${next}` })).toBe(200);
    } finally {
      await srv.close();
    }
  });
  // openssl makes a throw-away self-signed certificate; without it there is nothing to serve TLS with.
  it.skipIf(!fs.existsSync('/usr/bin/openssl'))('TLS with --cert/--key: https with the token', async () => {
    const { run } = await import('../../src/host/exec.js');
    const key = path.join(home, 'k.pem');
    const cert = path.join(home, 'c.pem');
    await run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const srv = await serve({ paths, listen: '127.0.0.1:0', cert, key, watch: false });
    try {
      expect(srv.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const https = await import('node:https');
      const status = (auth?: string) =>
        new Promise<number>((resolve, reject) =>
          https.get(`${srv.url}/api/vms`, { ca: fs.readFileSync(cert), headers: auth ? { authorization: auth } : {} }, (r) => (r.resume(), resolve(r.statusCode!))).on('error', reject),
        );
      expect(await status()).toBe(401);
      expect(await status(`Bearer ${srv.token}`)).toBe(200);
    } finally {
      await srv.close();
    }
    await expect(serve({ paths, listen: '127.0.0.1:0', cert, watch: false })).rejects.toMatchObject({ code: 'BAD_TLS' });
  });
});
