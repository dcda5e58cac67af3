/** A client of kvmctl serve's event stream over its unix socket, for tests: collect and wait. */
import WebSocket from 'ws';
import type { KvmEvent, ServerMessage } from '../../src/api/contract.js';

export class EventTap {
  readonly messages: ServerMessage[] = [];
  private waiters: { pred: (e: KvmEvent) => boolean; resolve: (e: KvmEvent) => void }[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as ServerMessage;
      this.messages.push(m);
      if (m.type !== 'event') return;
      this.waiters = this.waiters.filter((w) => (w.pred(m.event) ? (w.resolve(m.event), false) : true));
    });
  }

  static async open(sock: string, since?: number): Promise<EventTap> {
    const ws = new WebSocket(`ws+unix://${sock}:/api/events${since !== undefined ? `?since=${since}` : ''}`);
    const tap = new EventTap(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return tap;
  }

  get events(): KvmEvent[] {
    return this.messages.flatMap((m) => (m.type === 'event' ? [m.event] : []));
  }

  /** The first event (already received or coming) that matches. */
  wait(pred: (e: KvmEvent) => boolean, timeoutMs = 60_000, what = 'event'): Promise<KvmEvent> {
    const have = this.events.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; got: ${JSON.stringify(this.events.slice(-15))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
