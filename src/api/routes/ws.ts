/**
 * WebSocket routes: the event stream, and the serial and VNC consoles bridged to the VM's unix
 * sockets. QEMU's serial chardev serves one client at a time (a second one waits, silently, until
 * the first closes), so the server holds one connection per VM's serial socket and fans it out:
 * every viewer gets the output, input from any viewer goes to the guest, and a viewer that reads
 * slower than the guest writes loses output past its own bounded buffer (told how much) instead
 * of holding up the others. The connection is closed with its last viewer (then `kvmctl console`
 * can have the socket). Each VNC viewer has a connection of its own.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { vmRuntimeFiles } from '../../host/paths.js';
import { readVm } from '../../definition/store.js';
import { observe } from '../../vm/state.js';
import { eventsQuerySchema, nameParam, routes as R, type ServerMessage } from '../contract.js';
import type { ServerCtx } from '../context.js';
import { eventInScope } from '../users.js';

/** The part of a `ws` WebSocket used here (no @types/ws in the project). */
type WebSocket = {
  readonly OPEN: number;
  readonly CONNECTING: number;
  readyState: number;
  bufferedAmount: number;
  send(data: string | Buffer, opts?: { binary?: boolean }): void;
  close(code?: number, reason?: string): void;
  ping(): void;
  on(ev: 'message', fn: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): void;
  on(ev: 'close' | 'error', fn: () => void): void;
};

/** Close codes: 4400 bad request, 4401 the token no longer holds, 4404 nothing to connect to. */
const CLOSE_BAD = 4400;
const CLOSE_REVOKED = 4401;
const CLOSE_GONE = 4404;
/** How often an open WebSocket re-checks its token (revoked or rotated: closed). */
export const REAUTH_MS = 5000;
const HIGH_WATER = 4 * 1024 * 1024;
/** What one serial viewer may have unsent before its output is dropped (exported for tests). */
export const SERIAL_VIEWER_BUFFER = 256 * 1024;

const toBuffer = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): Buffer => {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
  return isBinary ? buf : Buffer.from(buf.toString('utf8'), 'utf8');
};

type Viewer = { ws: WebSocket; dropped: number };

/** One VM's serial socket shared by its viewers. */
export class SerialHub {
  private readonly viewers = new Set<Viewer>();
  private readonly conn: net.Socket;
  private closed = false;

  constructor(
    sockPath: string,
    private readonly onEmpty: () => void,
    private readonly limit = SERIAL_VIEWER_BUFFER,
  ) {
    this.conn = net.connect(sockPath);
    this.conn.on('data', (d) => this.fanOut(d));
    this.conn.on('error', (e) => this.end(1011, `console socket: ${e.message}`));
    this.conn.on('close', () => this.end(1000, 'the VM closed the console'));
  }

  add(ws: WebSocket): void {
    const v: Viewer = { ws, dropped: 0 };
    this.viewers.add(v);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (!this.closed) this.conn.write(toBuffer(data, isBinary));
    });
    const leave = () => {
      if (!this.viewers.delete(v) || this.viewers.size > 0) return;
      this.end();
    };
    ws.on('close', leave);
    ws.on('error', leave);
  }

  private fanOut(d: Buffer): void {
    for (const v of this.viewers) {
      if (v.ws.readyState !== v.ws.OPEN) continue;
      if (v.ws.bufferedAmount + d.length > this.limit) {
        v.dropped += d.length;
        continue;
      }
      if (v.dropped > 0) {
        v.ws.send(Buffer.from(`\r\n[kvmctl: ${v.dropped} bytes of console output dropped: this viewer read too slowly]\r\n`), { binary: true });
        v.dropped = 0;
      }
      v.ws.send(d, { binary: true });
    }
  }

  private end(code = 1000, why = ''): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.destroy();
    this.onEmpty();
    for (const { ws } of this.viewers) if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, why.slice(0, 120));
    this.viewers.clear();
  }
}

function bridge(ws: WebSocket, sockPath: string): void {
  const conn = net.connect(sockPath);
  let closed = false;
  const end = (code = 1000, why = '') => {
    if (closed) return;
    closed = true;
    conn.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, why.slice(0, 120));
  };
  conn.on('data', (d) => {
    ws.send(d, { binary: true });
    // The browser is slower than QEMU (a VNC full update): wait until it caught up.
    if (ws.bufferedAmount > HIGH_WATER) {
      conn.pause();
      const t = setInterval(() => {
        if (closed || ws.bufferedAmount < HIGH_WATER / 4) {
          clearInterval(t);
          conn.resume();
        }
      }, 20);
    }
  });
  conn.on('error', (e) => end(1011, `console socket: ${e.message}`));
  conn.on('close', () => end(1000, 'the VM closed the console'));
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => conn.write(toBuffer(data, isBinary)));
  ws.on('close', () => end());
  ws.on('error', () => end());
}

/**
 * Close the socket once the token it was opened with is revoked, rotated or changes role/scope:
 * the check at the upgrade (src/api/auth.ts) alone would leave a console or event stream open
 * to a token an admin removed. Returns the check, for the event stream to run before each send.
 */
function guardRevocation(ws: WebSocket, req: FastifyRequest): () => boolean {
  const ok = () => {
    if (req.stillAuthorized?.() ?? true) return true;
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(CLOSE_REVOKED, 'the token was revoked or changed');
    return false;
  };
  const t = setInterval(() => ok() || clearInterval(t), REAUTH_MS);
  t.unref();
  ws.on('close', () => clearInterval(t));
  return ok;
}

export function wsRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths, bus } = ctx;
  const serialHubs = new Map<string, SerialHub>();

  app.get(R.events.path, { websocket: true }, (socket: unknown, req: FastifyRequest) => {
    const ws = socket as WebSocket;
    const q = eventsQuerySchema.safeParse(req.query);
    if (!q.success) {
      ws.close(CLOSE_BAD, 'since must be a whole number');
      return;
    }
    const authorized = guardRevocation(ws, req);
    // A scoped token gets the events of its VMs only, replayed ones included (src/api/users.ts eventInScope).
    const send = (m: ServerMessage) => {
      if (m.type === 'event' && !eventInScope(req.identity, m.event)) return;
      if (ws.readyState === ws.OPEN && authorized()) ws.send(JSON.stringify(m));
    };
    for (const m of bus.replay(q.data.since)) send(m);
    const unsub = bus.subscribe((event) => send({ type: 'event', event }));
    const ping = setInterval(() => ws.readyState === ws.OPEN && ws.ping(), 30_000);
    ping.unref();
    ws.on('close', () => {
      unsub();
      clearInterval(ping);
    });
    ws.on('error', () => unsub());
  });

  const consoleRoute = (path: string, which: 'serial' | 'vnc') =>
    app.get(path, { websocket: true }, (socket: unknown, req: FastifyRequest) => {
      const ws = socket as WebSocket;
      const p = nameParam.safeParse(req.params);
      if (!p.success) {
        ws.close(CLOSE_BAD, 'bad VM name');
        return;
      }
      const name = p.data.name;
      let sock: string;
      try {
        const spec = readVm(paths, name);
        const f = vmRuntimeFiles(paths, name);
        sock = which === 'serial' ? f.serial : (spec.display.vnc?.socket ?? f.vnc);
        if (which === 'vnc' && spec.display.type !== 'vnc') {
          ws.close(CLOSE_GONE, `VM "${name}" has no VNC display (display: vnc)`);
          return;
        }
        if (which === 'serial' && spec.serial !== 'socket') {
          ws.close(CLOSE_GONE, `VM "${name}" has no serial socket (serial: socket)`);
          return;
        }
      } catch (e) {
        ws.close(CLOSE_GONE, (e as Error).message.slice(0, 120));
        return;
      }
      if (observe(paths, name).phase !== 'alive' || !fs.existsSync(sock)) {
        ws.close(CLOSE_GONE, `VM "${name}" is not running`);
        return;
      }
      guardRevocation(ws, req);
      if (which === 'vnc') return bridge(ws, sock);
      let hub = serialHubs.get(sock);
      if (!hub) {
        const h: SerialHub = new SerialHub(sock, () => serialHubs.get(sock) === h && serialHubs.delete(sock));
        serialHubs.set(sock, (hub = h));
      }
      hub.add(ws);
    });
  consoleRoute(R.serial.path, 'serial');
  consoleRoute(R.vnc.path, 'vnc');
}
