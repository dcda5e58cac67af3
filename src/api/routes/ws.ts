/**
 * WebSocket routes: the event stream, and the serial and VNC consoles bridged to the VM's unix
 * sockets (QEMU serves one client per socket: a second console waits until the first closes).
 */
import fs from 'node:fs';
import net from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { vmRuntimeFiles } from '../../host/paths.js';
import { readVm } from '../../spec/store.js';
import { observe } from '../../vm/state.js';
import { eventsQuerySchema, nameParam, routes as R, type ServerMessage } from '../contract.js';
import type { ServerCtx } from '../server.js';

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

/** Close codes: 4400 bad request, 4404 nothing to connect to. */
const CLOSE_BAD = 4400;
const CLOSE_GONE = 4404;
const HIGH_WATER = 4 * 1024 * 1024;

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
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    conn.write(isBinary ? buf : Buffer.from(buf.toString('utf8'), 'utf8'));
  });
  ws.on('close', () => end());
  ws.on('error', () => end());
}

export function wsRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths, bus } = ctx;

  app.get(R.events.path, { websocket: true }, (socket: unknown, req: FastifyRequest) => {
    const ws = socket as WebSocket;
    const q = eventsQuerySchema.safeParse(req.query);
    if (!q.success) {
      ws.close(CLOSE_BAD, 'since must be a whole number');
      return;
    }
    const send = (m: ServerMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
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
      bridge(ws, sock);
    });
  consoleRoute(R.serial.path, 'serial');
  consoleRoute(R.vnc.path, 'vnc');
}
