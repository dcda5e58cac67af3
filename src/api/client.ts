/**
 * A small client of `kvmctl serve` for the CLI's --remote: node:http over the server's unix
 * socket (a path) or TCP (http(s)://HOST:PORT, with the token from KVMCTL_TOKEN or
 * <config>/token). Errors come back as the server's KvmError (code, message, hint).
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { routePath } from './contract.js';
import { tokenFile } from './token.js';

export type Remote = { socketPath?: string; url?: URL; token?: string };

export function parseRemote(target: string, paths: Paths, env: NodeJS.ProcessEnv = process.env): Remote {
  if (/^https?:\/\//.test(target)) {
    let token = env.KVMCTL_TOKEN;
    if (!token) {
      try {
        token = fs.readFileSync(tokenFile(paths), 'utf8').trim();
      } catch {
        /* the server answers 401 with a hint */
      }
    }
    return { url: new URL(target), token };
  }
  return { socketPath: target };
}

export async function request<T = unknown>(remote: Remote, method: string, path: string, body?: unknown, timeoutMs = 600_000): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  if (remote.token) headers.authorization = `Bearer ${remote.token}`;
  const where = remote.socketPath ?? remote.url!.origin;
  return new Promise<T>((resolve, reject) => {
    const opts: http.RequestOptions = remote.socketPath
      ? { socketPath: remote.socketPath, path, method, headers }
      : { host: remote.url!.hostname.replace(/^\[|\]$/g, ''), port: remote.url!.port || (remote.url!.protocol === 'https:' ? 443 : 80), path, method, headers };
    const mod = remote.url?.protocol === 'https:' ? https : http;
    const req = mod.request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let data: unknown;
        try {
          data = text ? JSON.parse(text) : undefined;
        } catch {
          data = text;
        }
        if ((res.statusCode ?? 500) < 400) return resolve(data as T);
        const e = (data ?? {}) as { code?: string; message?: string; hint?: string; issues?: { path: string; message: string }[] };
        const status = res.statusCode ?? 500;
        reject(new KvmError(e.code ?? `HTTP_${status}`, e.message ?? `${method} ${path}: HTTP ${status}`, { hint: e.hint, issues: e.issues, exit: status < 500 && status !== 409 && status !== 401 ? 2 : 1 }));
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new KvmError('REMOTE_UNREACHABLE', `cannot reach kvmctl serve at ${where}: ${err.code ?? err.message}`, { hint: 'is kvmctl serve running there? (kvmctl serve [--listen HOST:PORT])', cause: err })),
    );
    if (payload) req.write(payload);
    req.end();
  });
}

/** The calls the CLI makes through a server. */
export function remoteApi(remote: Remote) {
  const p = routePath;
  return {
    list: () => request<unknown[]>(remote, 'GET', '/api/vms'),
    get: (name: string) => request<{ status: unknown }>(remote, 'GET', p('/api/vms/:name', { name })),
    start: (name: string, body: { waitForGuest?: boolean | string; timeoutSec?: number }) => request(remote, 'POST', p('/api/vms/:name/start', { name }), body),
    stop: (name: string, body: { timeoutSec?: number; force?: boolean }) => request(remote, 'POST', p('/api/vms/:name/stop', { name }), body),
    kill: (name: string) => request(remote, 'POST', p('/api/vms/:name/kill', { name })),
    restart: (name: string, body: { timeoutSec?: number }) => request(remote, 'POST', p('/api/vms/:name/restart', { name }), body),
    control: (name: string, what: 'pause' | 'resume' | 'reset') => request(remote, 'POST', p(`/api/vms/:name/${what}`, { name })),
  };
}
