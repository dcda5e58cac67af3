/**
 * Users and scoped tokens, the audit log and the response headers, against the real server
 * (fastify inject and a real loopback TCP listener for the WebSocket upgrade) over a private
 * KVMCTL_HOME, and the real CLI (`serve token add|list|rm`, `serve audit`). No VM boots here:
 * test/integration/web-ui-manage.test.ts does that in a browser.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorize, requiredRole, scopePayload } from '../../src/api/auth.js';
import type { KvmEvent, ServerMessage } from '../../src/api/contract.js';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { addToken, globToRegExp, readTokens, tokensFile } from '../../src/api/users.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let dir: string;
let paths: Paths;
let s: KvmServer;
const MAIN = 'main-token-for-tests';
const webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kweb-'));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kauth-'));
  paths = resolvePaths({ KVMCTL_HOME: dir });
  fs.mkdirSync(path.join(webRoot, 'assets'));
  fs.writeFileSync(path.join(webRoot, 'index.html'), `<!doctype html><title>t</title>${'<p>x</p>'.repeat(400)}`);
  fs.writeFileSync(path.join(webRoot, 'assets/index-AbCdEf12.js'), `console.log(${JSON.stringify('y'.repeat(5000))});`);
  s = await buildServer({ paths, token: MAIN, watch: false, webRoot });
});
afterAll(async () => {
  await s?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(webRoot, { recursive: true, force: true });
});

const as = (token: string | undefined, method: string, url: string, payload?: unknown) =>
  s.app.inject({ method: method as 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as object }) });

describe('roles (pure)', () => {
  it('declares roles with the routes and defaults to admin for any non-GET', () => {
    expect(requiredRole('GET', '/api/vms')).toBe('viewer');
    expect(requiredRole('POST', '/api/vms/:name/start')).toBe('operator');
    expect(requiredRole('GET', '/api/vms/:name/serial')).toBe('operator');
    expect(requiredRole('PUT', '/api/vms/:name')).toBe('admin');
    expect(requiredRole('POST', '/api/some/new/route')).toBe('admin');
    expect(requiredRole('GET', '/api/audit')).toBe('admin');
    expect(() => authorize({ user: 'v', role: 'viewer' }, 'POST', '/api/vms/:name/start', 'a')).toThrow(/viewer/);
    expect(() => authorize({ user: 'o', role: 'operator', vms: 'web-*' }, 'POST', '/api/vms/:name/start', 'db-1')).toThrow(/web-\*/);
    expect(() => authorize({ user: 'o', role: 'operator', vms: 'web-*' }, 'POST', '/api/vms/:name/start', 'web-1')).not.toThrow();
    expect(() => authorize({ user: 'a', role: 'admin', vms: 'web-*' }, 'POST', '/api/disks', undefined)).toThrow(/scoped/);
    expect(globToRegExp('web-?.x*').test('web-1.xyz')).toBe(true);
    expect(globToRegExp('web-?.x*').test('web-12xyz')).toBe(false);
  });
});

describe('named tokens through the API', () => {
  let viewer = '';
  let operator = '';
  let scoped = '';

  it('an admin makes tokens; they are stored hashed, 0600; bad input is a 4xx naming the field', async () => {
    const mk = async (name: string, role: string, vms?: string) => {
      const r = await as(MAIN, 'POST', '/api/tokens', { name, role, ...(vms ? { vms } : {}) });
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as { token: string }).token;
    };
    viewer = await mk('vera', 'viewer');
    operator = await mk('otto', 'operator');
    scoped = await mk('wendy', 'operator', 'web-*');
    const text = fs.readFileSync(tokensFile(paths), 'utf8');
    for (const t of [viewer, operator, scoped]) expect(text).not.toContain(t);
    expect(fs.statSync(tokensFile(paths)).mode & 0o777).toBe(0o600);
    expect(readTokens(paths).map((t) => t.name)).toEqual(['vera', 'otto', 'wendy']);
    const dup = await as(MAIN, 'POST', '/api/tokens', { name: 'vera', role: 'admin' });
    expect(dup.statusCode).toBe(409);
    const bad = await as(MAIN, 'POST', '/api/tokens', { name: '-x', role: 'root' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('role');
    const bad2 = await as(MAIN, 'POST', '/api/tokens', { name: 'local', role: 'viewer', vms: 'a b' });
    expect(bad2.statusCode).toBe(400);
    expect((bad2.json() as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['name', 'vms']);
    expect((await as(MAIN, 'DELETE', '/api/tokens/nobody')).statusCode).toBe(404);
  });

  it('a viewer reads but gets 403 for start, for changes and for the tokens; an operator gets past auth', async () => {
    await as(MAIN, 'POST', '/api/vms', { yaml: 'name: web-1\nmemory: 64M\nkernel: { builtin: test-guest }\n' });
    await as(MAIN, 'POST', '/api/vms', { yaml: 'name: db-1\nmemory: 64M\nkernel: { builtin: test-guest }\n' });
    expect((await as(viewer, 'GET', '/api/vms')).statusCode).toBe(200);
    expect((await as(viewer, 'GET', '/api/whoami')).json()).toEqual({ user: 'vera', role: 'viewer' });
    const start = await as(viewer, 'POST', '/api/vms/web-1/start', {});
    expect(start.statusCode).toBe(403);
    expect(start.json()).toMatchObject({ code: 'FORBIDDEN' });
    expect((await as(viewer, 'DELETE', '/api/vms/web-1')).statusCode).toBe(403);
    expect((await as(viewer, 'GET', '/api/tokens')).statusCode).toBe(403);
    expect((await as(viewer, 'GET', '/api/audit')).statusCode).toBe(403);
    // An operator passes the role check: pausing a stopped VM is then the VM's own 409.
    const pause = await as(operator, 'POST', '/api/vms/web-1/pause', {});
    expect(pause.statusCode).toBe(409);
    expect((await as(operator, 'PUT', '/api/vms/web-1', { yaml: 'name: web-1\nmemory: 64M\n' })).statusCode).toBe(403);
    expect((await as('kvm_wrong', 'GET', '/api/vms')).statusCode).toBe(401);
  });

  it('a scoped token sees and acts on its VMs only', async () => {
    const list = (await as(scoped, 'GET', '/api/vms')).json() as { name: string }[];
    expect(list.map((v) => v.name)).toEqual(['web-1']);
    expect((await as(scoped, 'POST', '/api/vms/db-1/pause', {})).statusCode).toBe(403);
    expect((await as(scoped, 'POST', '/api/vms/web-1/pause', {})).statusCode).toBe(409);
    expect((await as(scoped, 'POST', '/api/networks', { yaml: 'name: n1\ntype: bridge\n' })).statusCode).toBe(403);
  });

  it('refuses the console upgrade to a viewer (403) and lets an operator through to the VM check', async () => {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (s.app.server.address() as { port: number }).port;
    const { default: WebSocket } = await import('ws');
    const attempt = (token: string) =>
      new Promise<{ status?: number; close?: number }>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/api/vms/web-1/serial?token=${token}`);
        ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
        ws.on('close', (code) => resolve({ close: code }));
        ws.on('error', () => undefined);
      });
    expect(await attempt(viewer)).toEqual({ status: 403 });
    expect(await attempt(operator)).toEqual({ close: 4404 }); // upgraded; then "not running"
  });

  it('the audit log names the user, the route, the target and the result', async () => {
    const r = await as(MAIN, 'GET', '/api/audit?limit=1000');
    const log = r.json() as { user: string; method: string; route: string; target?: string; status: number }[];
    expect(log).toContainEqual(expect.objectContaining({ user: 'vera', method: 'POST', route: '/api/vms/:name/start', target: 'web-1', status: 403 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'otto', route: '/api/vms/:name/pause', target: 'web-1', status: 409 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'token', route: '/api/tokens', target: 'vera', status: 200 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'vera', route: '/api/vms/:name/serial', status: 403 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'otto', route: '/api/vms/:name/serial', status: 101 }));
    expect(log.some((e) => e.method === 'GET' && e.status === 200)).toBe(false); // reads are not logged
    expect((await as('', 'GET', '/api/audit?limit=0')).statusCode).toBe(401);
    expect((await as(MAIN, 'GET', '/api/audit?limit=0')).statusCode).toBe(400);
    // Revoked: refused from the next request on.
    expect((await as(MAIN, 'DELETE', '/api/tokens/vera')).statusCode).toBe(200);
    expect((await as(viewer, 'GET', '/api/vms')).statusCode).toBe(401);
  });
});

describe('VM hardware through the definition', () => {
  it('attaches an image, adds a NIC (comments kept), refuses mistakes with 4xx, detaches', async () => {
    const operator = addToken(paths, 'hw-operator', 'operator').token;
    await as(MAIN, 'PUT', '/api/vms/db-1', { yaml: '# db, hand-written\nname: db-1\nmemory: 64M\nkernel: { builtin: test-guest }\n' });
    expect((await as(MAIN, 'POST', '/api/disks', { path: 'db.qcow2', size: '16M', format: 'qcow2' })).statusCode).toBe(200);
    const att = await as(MAIN, 'POST', '/api/vms/db-1/disks', { file: 'db.qcow2' });
    expect(att.statusCode, att.body).toBe(200);
    expect(att.json()).toMatchObject({ id: 'disk0', action: 'configured', pendingRestart: false });
    expect((await as(MAIN, 'POST', '/api/vms/db-1/disks', { file: 'db.qcow2' })).statusCode).toBe(409);
    expect((await as(MAIN, 'POST', '/api/vms/db-1/disks', { file: 'nope.qcow2' })).statusCode).toBe(404);
    expect((await as(MAIN, 'POST', '/api/vms/db-1/disks', { file: '/etc/passwd' })).statusCode).toBe(400);
    expect((await as(MAIN, 'POST', '/api/vms/db-1/nics', { network: 'no-such-net' })).statusCode).toBe(422);
    expect((await as(MAIN, 'POST', '/api/vms/db-1/nics', { user: true })).json()).toMatchObject({ id: 'net0' });
    expect((await as(operator, 'POST', '/api/vms/db-1/nics', { user: true })).statusCode).toBe(403);
    const dev = (await as(operator, 'GET', '/api/vms/db-1/devices')).json() as { disks: { id: string; virtualSize: number }[]; nics: { mac: string }[] };
    expect(dev.disks).toMatchObject([{ id: 'disk0', virtualSize: 16 * 1024 * 1024 }]);
    expect(dev.nics[0]!.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const yaml = (await as(MAIN, 'GET', '/api/vms/db-1')).json().yaml as string;
    expect(yaml).toMatch(/^# db, hand-written/);
    const rs = await as(MAIN, 'POST', '/api/vms/db-1/disks/disk0/resize', { size: '+8M' });
    expect(rs.json()).toMatchObject({ from: 16 * 1024 * 1024, to: 24 * 1024 * 1024 });
    expect((await as(MAIN, 'POST', '/api/vms/db-1/disks/disk0/resize', { size: '1M' })).statusCode).toBe(400); // shrinking needs shrink: true
    expect((await as(MAIN, 'DELETE', '/api/vms/db-1/disks/disk9')).statusCode).toBe(404);
    expect((await as(MAIN, 'DELETE', '/api/vms/db-1/nics/net0')).statusCode).toBe(200);
    const det = await as(MAIN, 'DELETE', '/api/vms/db-1/disks/disk0?deleteImage=true');
    expect(det.json()).toMatchObject({ id: 'disk0', deleted: path.join(paths.images, 'db.qcow2') });
    expect(fs.existsSync(path.join(paths.images, 'db.qcow2'))).toBe(false);
  });
});

describe('a scoped token: events, tasks and metrics of its VMs only', () => {
  /** One event-stream client over TCP with a token in ?token=, as the browser opens it. */
  const openStream = async (token: string, since?: number) => {
    if (!s.app.server.listening) await s.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (s.app.server.address() as { port: number }).port;
    const { default: WebSocket } = await import('ws');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events?token=${token}${since !== undefined ? `&since=${since}` : ''}`);
    const msgs: ServerMessage[] = [];
    let closed: number | undefined;
    const waiters: (() => void)[] = [];
    const poke = () => waiters.splice(0).forEach((w) => w());
    ws.on('message', (d: Buffer) => (msgs.push(JSON.parse(d.toString()) as ServerMessage), poke()));
    ws.on('close', (code: number) => ((closed = code), poke()));
    ws.on('error', () => undefined);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`)))));
    const events = () => msgs.flatMap((m) => (m.type === 'event' ? [m.event] : []));
    const until = async (what: string, pred: () => boolean, ms = 15_000) => {
      const end = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(events().slice(-8))}, closed ${closed}`);
        await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 250)));
      }
    };
    return { ws, msgs, events, until, closed: () => closed };
  };
  const ended = (vm: string) => (e: KvmEvent) => e.kind === 'task' && e.action === 'ended' && e.vm === vm;

  it('streams (live and replayed) only the events of its VMs, lists only their tasks, and /metrics only their series', async () => {
    const sally = addToken(paths, 'sally', 'viewer', 'web-*').token;
    const full = await openStream(MAIN);
    const scopedLive = await openStream(sally);
    const first = (full.msgs[0] as { lastId: number }).lastId;
    // Tasks of three targets through the API (db-1, a disk path, web-1), and state/QMP events as the watcher publishes them.
    expect((await as(MAIN, 'POST', '/api/vms/db-1/autostart', { enabled: true })).statusCode).toBe(200);
    expect((await as(MAIN, 'POST', '/api/disks', { path: 'scoped-test.qcow2', size: '1M', format: 'qcow2' })).statusCode).toBe(200);
    s.ctx.bus.publish({ kind: 'state', vm: 'db-1', state: 'running', previous: 'stopped', pid: 1 });
    s.ctx.bus.publish({ kind: 'qmp', vm: 'db-1', event: 'RESET' });
    s.ctx.bus.publish({ kind: 'state', vm: 'web-1', state: 'running', previous: 'stopped', pid: 2 });
    expect((await as(MAIN, 'POST', '/api/vms/web-1/autostart', { enabled: true })).statusCode).toBe(200);
    // The unscoped stream sees everything; the scoped one, in order, web-1's only (its last event arrives after all the others were sent).
    await full.until('web-1 task end (main token)', () => full.events().some(ended('web-1')));
    expect(new Set(full.events().map((e) => e.vm))).toEqual(new Set(['db-1', 'web-1', 'scoped-test.qcow2']));
    await scopedLive.until('web-1 task end (scoped)', () => scopedLive.events().some(ended('web-1')));
    const seen = scopedLive.events();
    expect(seen.length).toBeGreaterThanOrEqual(3); // state + task started + ended
    expect(seen.every((e) => e.vm === 'web-1')).toBe(true);
    expect(seen.map((e) => e.kind)).toContain('state');
    // Replayed from the ring buffer: filtered the same way.
    const replay = await openStream(sally, first);
    await replay.until('replayed web-1 task end', () => replay.events().some(ended('web-1')));
    expect(replay.events().map((e) => e.id)).toEqual(seen.map((e) => e.id));
    for (const c of [full, scopedLive, replay]) c.ws.terminate();

    // Tasks: the list and the task itself.
    const tasks = (await as(sally, 'GET', '/api/tasks?limit=200')).json() as { id: string; target?: string }[];
    expect(tasks.length).toBeGreaterThan(0);
    expect(tasks.every((t) => t.target?.startsWith('web-'))).toBe(true);
    const all = (await as(MAIN, 'GET', '/api/tasks?limit=200')).json() as { id: string; target?: string }[];
    const dbTask = all.find((t) => t.target === 'db-1')!;
    expect((await as(sally, 'GET', `/api/tasks/${dbTask.id}`)).statusCode).toBe(404);
    expect((await as(sally, 'GET', `/api/tasks/${dbTask.id}/log`)).statusCode).toBe(404);
    expect((await as(sally, 'GET', '/api/vms/db-1/metrics')).statusCode).toBe(403);
    // Prometheus: every defined VM has kvmctl_vm_up; the scoped token's text names web-1 only.
    const promAll = (await as(MAIN, 'GET', '/metrics')).body;
    expect(promAll).toContain('kvmctl_vm_up{vm="db-1"}');
    const prom = await as(sally, 'GET', '/metrics');
    expect(prom.statusCode).toBe(200);
    expect(prom.body).toContain('kvmctl_vm_up{vm="web-1"}');
    expect(prom.body).not.toContain('db-1');
  });

  it('closes a stream (4401) whose token is revoked, before sending it anything more', async () => {
    const tmp = addToken(paths, 'tmp-viewer', 'viewer', 'web-*').token;
    const c = await openStream(tmp);
    expect((await as(MAIN, 'DELETE', '/api/tokens/tmp-viewer')).statusCode).toBe(200);
    const before = c.events().length;
    expect((await as(MAIN, 'POST', '/api/vms/web-1/autostart', { enabled: false })).statusCode).toBe(200);
    await c.until('the close', () => c.closed() !== undefined);
    expect(c.closed()).toBe(4401);
    expect(c.events().length).toBe(before);
  });

  it('scopes the backup schedule and the cluster view (pure), and lets a scoped operator migrate its own VM only', () => {
    const id = { user: 'w', role: 'operator' as const, vms: 'web-*' };
    expect(scopePayload(id, '/api/backups/tasks', [{ vm: 'web-1' }, { vm: 'db-1' }])).toEqual([{ vm: 'web-1' }]);
    expect(
      scopePayload(id, '/api/cluster', { prefix: '/k', etcd: [], hosts: [{ name: 'h1', alive: true, vms: ['web-1', 'db-1'] }], vms: [{ name: 'db-1' }, { name: 'web-2' }] }),
    ).toEqual({ prefix: '/k', etcd: [], hosts: [{ name: 'h1', alive: true, vms: ['web-1'] }], vms: [{ name: 'web-2' }] });
    expect(scopePayload(id, '/api/disks', [{ path: 'x' }])).toEqual([{ path: 'x' }]);
    expect(() => authorize(id, 'POST', '/api/cluster/vms/:name/migrate', 'web-1')).not.toThrow();
    expect(() => authorize(id, 'POST', '/api/cluster/vms/:name/migrate', 'db-1')).toThrow(/web-\*/);
  });
});

describe('headers, compression, caching', () => {
  it('sends the security headers and compresses with brotli or gzip', async () => {
    const r = await s.app.inject({ url: '/', headers: { 'accept-encoding': 'br, gzip' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(r.headers['content-security-policy']).toContain("script-src 'self'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['content-encoding']).toBe('br');
    expect(zlib.brotliDecompressSync(r.rawPayload).toString()).toContain('<title>t</title>');
    const g = await s.app.inject({ url: '/assets/index-AbCdEf12.js', headers: { 'accept-encoding': 'gzip' } });
    expect(g.headers['content-encoding']).toBe('gzip');
    expect(g.headers['cache-control']).toContain('immutable');
    expect(zlib.gunzipSync(g.rawPayload).length).toBeGreaterThan(5000);
    // After the first request the file is compressed once at brotli's best, then served from memory.
    const js = fs.readFileSync(path.join(webRoot, 'assets/index-AbCdEf12.js'));
    const best = zlib.brotliCompressSync(js, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: js.length } });
    await expect
      .poll(async () => (await s.app.inject({ url: '/assets/index-AbCdEf12.js', headers: { 'accept-encoding': 'gzip, br' } })).rawPayload.equals(best), { timeout: 5000 })
      .toBe(true);
    const refused = await s.app.inject({ url: '/assets/index-AbCdEf12.js', headers: { 'accept-encoding': 'br;q=0, gzip' } });
    expect(refused.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(refused.rawPayload).equals(js)).toBe(true);
    const again = await s.app.inject({ url: '/', headers: { 'if-modified-since': String(r.headers['last-modified']) } });
    expect(again.statusCode).toBe(304);
    const api = await as(MAIN, 'GET', '/api/vms');
    expect(api.headers['cache-control']).toBe('no-store');
    expect(api.headers['x-content-type-options']).toBe('nosniff');
  });
});

describe('the CLI', () => {
  let home: Home;
  beforeAll(() => {
    home = makeHome();
  });
  afterAll(async () => home?.cleanup());

  it('serve token add prints the token once; list shows names and roles only; rm revokes; audit reads the log', async () => {
    const add = await home.cli(['serve', 'token', 'add', 'ci', '--role', 'operator', '--vms', 'web-*']);
    expect(add.code, add.stderr).toBe(0);
    const token = add.stdout.trim().split('\n').pop()!;
    expect(token).toMatch(/^kvm_/);
    const list = await home.cli(['serve', 'token', 'list']);
    expect(list.stdout).toMatch(/ci\s+operator\s+web-\*/);
    expect(list.stdout).not.toContain(token);
    const bad = await home.cli(['serve', 'token', 'add', 'x', '--role', 'god']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('role');
    expect((await home.cli(['serve', 'token', 'rm', 'ci'])).code).toBe(0);
    expect((await home.cli(['serve', 'token', 'rm', 'ci'])).code).toBe(1);
    const p = resolvePaths({ KVMCTL_HOME: home.dir });
    addToken(p, 'someone', 'viewer');
    fs.mkdirSync(p.data, { recursive: true });
    fs.writeFileSync(path.join(p.data, 'audit.log'), `${JSON.stringify({ at: '2026-12-07T10:00:00Z', user: 'someone', method: 'POST', route: '/api/vms/:name/start', target: 'a', status: 403 })}\n`);
    const audit = await home.cli(['serve', 'audit']);
    expect(audit.stdout).toMatch(/someone\s+403\s+POST\s+\/api\/vms\/:name\/start a/);
  });
});
