/** Answers are compressed by webCommon's own onSend hook (node:zlib; src/api/web-static.ts), on a real fastify. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webCommon } from '../../../src/api/web-static.js';

const big = { items: Array.from({ length: 200 }, (_, i) => ({ name: `vm${i}`, state: 'running' })) };
const app = Fastify({ logger: false });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-compress-'));
const file = path.join(dir, 'big.txt');

beforeAll(async () => {
  fs.writeFileSync(file, 'x'.repeat(50_000));
  await webCommon(app);
  app.get('/api/big', async () => big);
  app.get('/api/small', async () => ({ ok: true }));
  app.get('/api/stream', async (_req, reply) => reply.type('text/plain').send(fs.createReadStream(file)));
  app.get('/api/png', async (_req, reply) => reply.type('image/png').send(Buffer.alloc(5000)));
  await app.ready();
});
afterAll(async () => {
  await app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('compression', () => {
  it('brotli when the client takes it, else gzip; JSON decodes to the same answer', async () => {
    const br = await app.inject({ url: '/api/big', headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toContain('accept-encoding');
    expect(br.headers['content-length']).not.toBe(String(JSON.stringify(big).length));
    expect(JSON.parse(zlib.brotliDecompressSync(br.rawPayload).toString())).toEqual(big);
    const gz = await app.inject({ url: '/api/big', headers: { 'accept-encoding': 'br;q=0, gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(zlib.gunzipSync(gz.rawPayload).toString())).toEqual(big);
    expect(gz.headers['cache-control']).toBe('no-store');
  });

  it('leaves alone: no accept-encoding, below 1 KiB, already compressed types, HEAD', async () => {
    const plain = await app.inject({ url: '/api/big' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.json()).toEqual(big);
    const small = await app.inject({ url: '/api/small', headers: { 'accept-encoding': 'br' } });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.json()).toEqual({ ok: true });
    const png = await app.inject({ url: '/api/png', headers: { 'accept-encoding': 'br' } });
    expect(png.headers['content-encoding']).toBeUndefined();
    expect(png.rawPayload.length).toBe(5000);
    const head = await app.inject({ method: 'HEAD', url: '/api/big', headers: { 'accept-encoding': 'br' } });
    expect(head.headers['content-encoding']).toBeUndefined();
  });

  it('compresses a streamed file on the fly', async () => {
    const r = await app.inject({ url: '/api/stream', headers: { 'accept-encoding': 'gzip' } });
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(r.rawPayload).toString()).toBe('x'.repeat(50_000));
  });
});
