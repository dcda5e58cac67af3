/**
 * Where `kvmctl serve` listens: its unix socket `<run>/kvmctl.sock` (mode 0660, group kvm when
 * that group exists; no token — the socket's mode is the guard), or TCP when asked
 * (`--listen HOST:PORT`), then with a bearer token, and TLS when given a cert and key.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { lookupGroup } from '../vm/preflight.js';
import { buildServer, type KvmServer, type ServerOptions } from './server.js';
import { fileTokenReader, loadToken } from './token.js';

export function defaultSocket(paths: Paths): string {
  return path.join(paths.run, 'kvmctl.sock');
}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+|):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw badInput('BAD_LISTEN', `--listen "${v}" is not HOST:PORT`, 'e.g. --listen 127.0.0.1:8006');
  return { host: (m[1] || '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

/** A socket file left by a server that is gone is removed; one that answers means a server runs. */
async function clearStaleSocket(sock: string): Promise<void> {
  if (!fs.existsSync(sock)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new KvmError('SERVER_RUNNING', `a server already listens on ${sock}`, { hint: 'stop it first, or use --socket to pick another path' });
  fs.rmSync(sock, { force: true });
}

export type ServeOptions = Omit<ServerOptions, 'token' | 'https'> & {
  socket?: string;
  listen?: string;
  cert?: string;
  key?: string;
};

export type Serving = KvmServer & { socket?: string; url?: string; token?: string; tokenSource?: string };

export async function serve(o: ServeOptions): Promise<Serving> {
  if (!!o.cert !== !!o.key) throw badInput('BAD_TLS', 'TLS needs both --cert and --key');
  const tcp = o.listen ? parseListen(o.listen) : undefined;
  if ((o.cert || o.key) && !tcp) throw badInput('BAD_TLS', '--cert/--key apply to TCP only (add --listen HOST:PORT)');
  const readPem = (f: string, what: string) => {
    try {
      return fs.readFileSync(f);
    } catch (e) {
      throw badInput('FILE_NOT_FOUND', `${what} ${f}: ${(e as Error).message}`);
    }
  };
  const https = o.cert && o.key ? { cert: readPem(o.cert, 'certificate'), key: readPem(o.key, 'key') } : undefined;
  const tok = tcp ? loadToken(o.paths) : undefined;
  const server = await buildServer({ ...o, token: tok && (tok.source === 'env' ? tok.token : fileTokenReader(tok.file, tok.token)), https });
  try {
    if (tcp) {
      await server.app.listen({ host: tcp.host, port: tcp.port });
      const addr = server.app.server.address() as net.AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      return { ...server, url: `${https ? 'https' : 'http'}://${host}:${addr.port}`, token: tok!.token, tokenSource: tok!.source };
    }
    const sock = o.socket ?? defaultSocket(o.paths);
    fs.mkdirSync(path.dirname(sock), { recursive: true });
    await clearStaleSocket(sock);
    await server.app.listen({ path: sock });
    fs.chmodSync(sock, 0o660);
    const kvm = lookupGroup('kvm');
    if (kvm !== undefined) {
      try {
        fs.chownSync(sock, process.getuid?.() ?? 0, kvm);
      } catch {
        /* not root: the socket keeps our group */
      }
    }
    return { ...server, socket: sock };
  } catch (e) {
    await server.close().catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new KvmError('ADDRESS_IN_USE', `${o.listen ?? o.socket}: address already in use`, { hint: 'another server listens there; pick another port' });
    throw e;
  }
}
