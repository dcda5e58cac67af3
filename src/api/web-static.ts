/**
 * What every answer of `kvmctl serve` carries, and the web UI's files:
 * - compression (gzip or brotli, whichever the client prefers, above 1 KiB, brotli quality 6 on the
 *   fly, in the onSend hook below: node:zlib directly — @fastify/compress with mime-db and its
 *   streams cost ≈ 2 MB of an idle server's memory, issue #19); the UI's files are also compressed once at brotli's best (quality 11, ≈ 8 %
 *   smaller than gzip -9, ≈ 0.6 s of a thread-pool thread for the main bundle) in the background
 *   after their first request, and served from memory from then on;
 * - security headers: a Content-Security-Policy (own origin only; inline styles allowed because
 *   React style attributes and xterm.js use them; no inline scripts, no framing), nosniff,
 *   no referrer, X-Frame-Options DENY, COOP same-origin;
 * - caching: `assets/` holds content-hashed names (vite) — a year, immutable; index.html and any
 *   other file — no-cache with Last-Modified (a 304 when unchanged); the API — no-store.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

/** A vite output name: `assets/index-BlyWEIhr.js`. */
const HASHED = /^\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

const THRESHOLD = 1024;
/** What is worth compressing (images, fonts and archives are compressed already). */
const COMPRESSIBLE = /^(text\/|application\/(json|javascript|xml|yaml|x-yaml|openmetrics-text)|image\/svg\+xml)/;

/** The encoding to answer with: brotli, else gzip, each unless refused (q=0); undefined: identity. */
const pickEncoding = (ae: string): 'br' | 'gzip' | undefined => (['br', 'gzip'] as const).find((e) => accepts(ae, e));

/** Compress a reply's payload (string, Buffer or stream) when the client takes it and it is worth it. */
function compressed(reply: FastifyReply, payload: unknown, ae: string): unknown {
  if (payload === null || payload === undefined || reply.hasHeader('content-encoding') || reply.statusCode === 204 || reply.statusCode === 304) return payload;
  if (!COMPRESSIBLE.test(String(reply.getHeader('content-type') ?? ''))) return payload;
  const stream = payload instanceof Readable;
  if (!stream && typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
  if (!stream && Buffer.byteLength(payload as string | Buffer) < THRESHOLD) return payload;
  reply.header('vary', 'accept-encoding');
  const enc = pickEncoding(ae);
  if (!enc) return payload;
  reply.header('content-encoding', enc).removeHeader('content-length');
  if (enc === 'br') {
    const params = { [zlib.constants.BROTLI_PARAM_QUALITY]: 6 };
    return stream ? (payload as Readable).pipe(zlib.createBrotliCompress({ params })) : zlib.brotliCompressSync(payload as string | Buffer, { params });
  }
  return stream ? (payload as Readable).pipe(zlib.createGzip()) : zlib.gzipSync(payload as string | Buffer);
}

export async function webCommon(app: FastifyInstance): Promise<void> {
  app.addHook('onSend', async (req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    const url = req.url.split('?')[0]!;
    if ((url.startsWith('/api/') || url === '/metrics') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return req.method === 'HEAD' ? payload : compressed(reply, payload, String(req.headers['accept-encoding'] ?? ''));
  });
}

type Packed = { br?: Buffer; gzip?: Buffer };
const accepts = (ae: string, enc: string) => new RegExp(`(^|,)\\s*${enc}\\s*(,|$|;(?!\\s*q=0(\\.0*)?\\s*(,|$)))`).test(ae);

/** The web UI's files at `/` (any other path: index.html, for the hash router). */
export function webStatic(app: FastifyInstance, webRoot: string): void {
  // file@mtime:size → its best-compressed forms, made once in the background (zlib's thread pool).
  const packed = new Map<string, Packed>();
  const pack = (file: string, key: string) => {
    if (packed.has(key)) return;
    const entry: Packed = {};
    packed.set(key, entry);
    fs.readFile(file, (err, buf) => {
      if (err || buf.length < 1024) return;
      zlib.brotliCompress(buf, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length } }, (e, out) => void (!e && (entry.br = out)));
      zlib.gzip(buf, { level: 9 }, (e, out) => void (!e && (entry.gzip = out)));
    });
  };
  app.get('/*', async (req, reply) => {
    const url = decodeURIComponent(req.url.split('?')[0]!);
    if (url.startsWith('/api/')) return reply.callNotFound();
    const rel = path.normalize(url).replace(/^(\.\.(\/|\\|$))+/, '');
    let file = path.join(webRoot, rel);
    if (!file.startsWith(webRoot) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(webRoot, 'index.html');
    if (!fs.existsSync(file)) {
      return reply.status(404).send({ code: 'NO_WEB_UI', message: `the web UI is not built (${webRoot})`, hint: 'npm run build (vite build --config web/vite.config.ts)' });
    }
    const hashed = HASHED.test(url) && file !== path.join(webRoot, 'index.html');
    const st = fs.statSync(file);
    reply.type(MIME[path.extname(file)] ?? 'application/octet-stream');
    if (hashed) reply.header('cache-control', 'public, max-age=31536000, immutable');
    else {
      const mod = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
      reply.header('cache-control', 'no-cache').header('last-modified', mod.toUTCString());
      const since = Date.parse(String(req.headers['if-modified-since'] ?? ''));
      if (Number.isFinite(since) && since >= mod.getTime()) return reply.status(304).send();
    }
    reply.header('vary', 'accept-encoding');
    const key = `${file}@${st.mtimeMs}:${st.size}`;
    const p = packed.get(key);
    const ae = String(req.headers['accept-encoding'] ?? '');
    for (const enc of ['br', 'gzip'] as const) {
      const buf = p?.[enc];
      if (buf && accepts(ae, enc)) return reply.header('content-encoding', enc).send(buf);
    }
    pack(file, key);
    return reply.send(fs.createReadStream(file));
  });
}
