/**
 * ISO upload through the API (src/disk/iso-upload.ts, src/api/routes/media.ts) over a real
 * loopback HTTP listener, streamed in chunks: the file arrives whole (same SHA-256) in the images
 * root's iso/ folder; bad names, oversize bodies (announced or not), a client that goes away and
 * a cancel from the task list leave nothing behind; an iso/ folder symlinked out of the storage
 * roots is refused; a viewer gets 403. Then the CD-ROM of a real running test guest: insert the
 * uploaded ISO, refuse to delete it while it is in the drive, eject, delete.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { addToken } from '../../src/api/users.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const MAIN = 'iso-main-token';
const MiB = 1024 * 1024;
let home: Home;
let paths: Paths;
let s: KvmServer;
let base = '';
const isoDir = () => path.join(paths.images, 'iso');
const leftovers = () => (fs.existsSync(isoDir()) ? fs.readdirSync(isoDir()).filter((f) => f.startsWith('.')) : []);

/** PUT a body in chunks (optionally without Content-Length, optionally stopping half-way). */
function put(url: string, data: Buffer, o: { token?: string; length?: boolean; chunk?: number; abortAt?: number; delayMs?: number; type?: string } = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve) => {
    const req = http.request(`${base}${url}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${o.token ?? MAIN}`, 'content-type': o.type ?? 'application/octet-stream', ...(o.length === false ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(data.length) }) },
    });
    req.on('response', (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t ? JSON.parse(t) : undefined }));
    });
    let failed = false;
    // The server may answer (and close) before the body is all sent: a refusal or a cancel.
    req.on('error', (e) => ((failed = true), resolve({ status: -1, body: String(e) })));
    const step = o.chunk ?? 256 * 1024;
    let off = 0;
    const next = () => {
      if (o.abortAt !== undefined && off >= o.abortAt) {
        req.destroy();
        resolve({ status: -1, body: 'aborted by the test' });
        return;
      }
      if (failed) return;
      if (off >= data.length) return void req.end();
      const piece = data.subarray(off, off + step);
      off += piece.length;
      req.write(piece, (e) => !e && (o.delayMs ? setTimeout(next, o.delayMs) : next()));
    };
    next();
  });
}
const api = async (method: string, url: string, body?: unknown, token = MAIN) => {
  const r = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: r.status, body: (await r.json()) as any };
};

beforeAll(async () => {
  home = makeHome();
  paths = resolvePaths(home.env);
  s = await buildServer({ paths, token: MAIN, watch: false, maxUploadBytes: 8 * MiB });
  await s.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await s?.close();
  await home?.cleanup();
});

describe('ISO upload through the API', () => {
  const data = crypto.randomBytes(5 * MiB + 123);
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

  it('streams an upload into <images>/iso/ (same bytes), lists it, and records a task with its progress', async () => {
    const r = await put('/api/isos/first.iso', data);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ name: 'first.iso', path: path.join(isoDir(), 'first.iso'), sizeBytes: data.length });
    expect(sha(fs.readFileSync(path.join(isoDir(), 'first.iso')))).toBe(sha(data));
    const list = await api('GET', '/api/isos');
    expect(list.body).toMatchObject({ dir: isoDir(), maxUploadBytes: 8 * MiB, isos: [{ name: 'first.iso', sizeBytes: data.length }] });
    const tasks = (await api('GET', '/api/tasks')).body as { kind: string; state: string; progress: number | null }[];
    expect(tasks.find((t) => t.kind === 'uploadIso')).toMatchObject({ state: 'ok', progress: 100 });
    expect(leftovers()).toEqual([]);
  });

  it('refuses bad names, an existing file (409, unless ?replace=true), a JSON body, and a viewer (403): nothing written', async () => {
    for (const bad of ['..%2Fescape.iso', 'notes.txt', '.hidden.iso', 'a%20b.iso', '-x.iso']) {
      const r = await put(`/api/isos/${bad}`, data.subarray(0, 1000));
      expect(r.status, bad).toBe(400);
      expect(r.body.code, bad).toBe('BAD_ISO_NAME');
    }
    expect(fs.existsSync(path.join(paths.images, 'escape.iso'))).toBe(false);
    expect((await put('/api/isos/first.iso', data.subarray(0, 1000))).status).toBe(409);
    const again = await put('/api/isos/first.iso?replace=true', data.subarray(0, 4096));
    expect(again.status).toBe(200);
    expect(fs.statSync(path.join(isoDir(), 'first.iso')).size).toBe(4096);
    const json = await api('PUT', '/api/isos/j.iso', { x: 1 });
    expect(json.status).toBe(400);
    expect(json.body.code).toBe('UPLOAD_NOT_RAW');
    const viewer = addToken(paths, 'iso-viewer', 'viewer').token;
    expect((await put('/api/isos/v.iso', data.subarray(0, 1000), { token: viewer })).status).toBe(403);
    expect(fs.readdirSync(isoDir()).sort()).toEqual(['first.iso']);
  });

  it('refuses a body over the limit: announced (413 at once) or streamed without a length (413 when it passes it), keeping nothing', async () => {
    const big = crypto.randomBytes(9 * MiB);
    const announced = await put('/api/isos/big.iso', big);
    expect(announced.status).toBe(413);
    expect(announced.body.code).toBe('UPLOAD_TOO_LARGE');
    const chunked = await put('/api/isos/big2.iso', big, { length: false });
    expect(chunked.status).toBe(413);
    expect(fs.readdirSync(isoDir()).sort()).toEqual(['first.iso']);
    expect(leftovers()).toEqual([]);
  });

  it('keeps nothing of an upload the client breaks off', async () => {
    const r = await put('/api/isos/cut.iso', data, { abortAt: 2 * MiB, chunk: 512 * 1024 });
    expect(r.status).toBe(-1);
    // The server notices the reset and removes its partial file.
    await expect.poll(() => leftovers(), { timeout: 10_000 }).toEqual([]);
    expect(fs.existsSync(path.join(isoDir(), 'cut.iso'))).toBe(false);
  });

  it('cancels a running upload from the task list: the answer says so and nothing is kept', async () => {
    const slow = put('/api/isos/slow.iso', data, { chunk: 64 * 1024, delayMs: 100 });
    let id = '';
    await expect
      .poll(async () => (id = ((await api('GET', '/api/tasks?state=running')).body as { id: string; kind: string }[]).find((t) => t.kind === 'uploadIso')?.id ?? ''), { timeout: 10_000 })
      .not.toBe('');
    const c = await api('POST', `/api/tasks/${id}/cancel`);
    expect(c.status, JSON.stringify(c.body)).toBe(200);
    const r = await slow;
    expect(r.body?.code ?? r.body).toMatch(/UPLOAD_CANCELLED|aborted|socket hang up|ECONNRESET/);
    await expect.poll(() => leftovers(), { timeout: 10_000 }).toEqual([]);
    expect(fs.existsSync(path.join(isoDir(), 'slow.iso'))).toBe(false);
    expect(((await api('GET', `/api/tasks/${id}`)).body as { state: string }).state).toBe('cancelled');
  });

  it('refuses an iso/ folder that is a symlink out of the storage roots, writing nothing there', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'kiso-out-'));
    const moved = `${isoDir()}.real`;
    fs.renameSync(isoDir(), moved);
    fs.symlinkSync(outside, isoDir());
    try {
      const r = await put('/api/isos/sneaky.iso', data.subarray(0, 1000));
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('PATH_OUTSIDE_ROOTS');
      expect(fs.readdirSync(outside)).toEqual([]);
    } finally {
      fs.unlinkSync(isoDir());
      fs.renameSync(moved, isoDir());
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!canBootGuest())('the uploaded ISO in a running VM\'s CD-ROM drive', () => {
  it('inserts it, refuses to delete it while it is in the drive, ejects it, deletes it', async () => {
    fs.writeFileSync(path.join(isoDir(), 'boot.iso'), Buffer.alloc(MiB));
    await home.apply('name: cdvm\nmemory: 128M\nkernel: { builtin: test-guest }\ncdroms: [iso/boot.iso]\nstopTimeout: 5\n');
    const st = await home.cli(['start', 'cdvm']);
    expect(st.code, st.stderr).toBe(0);
    const before = await api('GET', '/api/vms/cdvm/cdrom');
    expect(before.body).toMatchObject({ running: true, drives: [{ id: 'cd0', inserted: path.join(isoDir(), 'boot.iso') }] });
    const ins = await api('POST', '/api/vms/cdvm/cdrom', { op: 'insert', file: 'iso/first.iso' });
    expect(ins.status, JSON.stringify(ins.body)).toBe(200);
    expect(ins.body).toMatchObject({ id: 'cd0', inserted: path.join(isoDir(), 'first.iso') });
    const busy = await api('DELETE', '/api/isos/first.iso');
    expect(busy.status).toBe(409);
    expect(busy.body.code).toBe('ISO_IN_USE');
    for (const outside of ['../../../etc/hostname', '/etc/hostname']) expect((await api('POST', '/api/vms/cdvm/cdrom', { op: 'insert', file: outside })).status, outside).toBe(400);
    const ej = await api('POST', '/api/vms/cdvm/cdrom', { op: 'eject', force: true });
    expect(ej.status, JSON.stringify(ej.body)).toBe(200);
    expect(ej.body.inserted).toBeUndefined();
    expect((await api('DELETE', '/api/isos/first.iso')).status).toBe(200);
    expect(fs.existsSync(path.join(isoDir(), 'first.iso'))).toBe(false);
    expect((await home.cli(['kill', 'cdvm'])).code).toBe(0);
  }, 120_000);
});
