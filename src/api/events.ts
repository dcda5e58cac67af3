/**
 * The event bus of `kvmctl serve`: numbers every event (monotonic ids within one server
 * process), keeps the last `capacity` in a ring buffer so that a client that reconnects with
 * `?since=ID` gets what it missed, and fans events out to subscribers.
 */
import crypto from 'node:crypto';
import type { KvmEvent, KvmEventInput, ServerMessage } from './contract.js';

export class EventBus {
  /** Changes each time a server starts: ids from another server mean nothing here. */
  readonly serverId = crypto.randomBytes(6).toString('hex');
  private readonly ring: (KvmEvent | undefined)[];
  private next = 1;
  private readonly subs = new Set<(e: KvmEvent) => void>();

  constructor(readonly capacity = 1000) {
    this.ring = new Array(capacity);
  }

  get lastId(): number {
    return this.next - 1;
  }
  /** Oldest id still in the buffer (lastId + 1 when empty). */
  get oldestId(): number {
    return Math.max(1, this.next - this.capacity);
  }

  publish(input: KvmEventInput): KvmEvent {
    const e = { ...input, id: this.next++, at: new Date().toISOString() } as KvmEvent;
    this.ring[e.id % this.capacity] = e;
    for (const s of this.subs) {
      try {
        s(e);
      } catch {
        /* one broken subscriber does not stop the others */
      }
    }
    return e;
  }

  /** Events with id > since, oldest first; undefined when some of them are gone from the buffer. */
  since(since: number): KvmEvent[] | undefined {
    if (since >= this.lastId) return [];
    if (since + 1 < this.oldestId) return undefined;
    const out: KvmEvent[] = [];
    for (let id = since + 1; id <= this.lastId; id++) out.push(this.ring[id % this.capacity]!);
    return out;
  }

  subscribe(fn: (e: KvmEvent) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  /**
   * What a client connecting with `since` gets first: hello, then the missed events or a reset.
   * A `since` beyond lastId means the client saw another server (it restarted): reset too.
   */
  replay(since: number | undefined): ServerMessage[] {
    const hello: ServerMessage = { type: 'hello', serverId: this.serverId, lastId: this.lastId, oldestId: this.oldestId };
    if (since === undefined) return [hello];
    if (since > this.lastId) return [hello, { type: 'reset', reason: `event ${since} is unknown to this server (it restarted); reload the state`, lastId: this.lastId }];
    const missed = this.since(since);
    if (!missed) return [hello, { type: 'reset', reason: `events after ${since} are no longer buffered (oldest is ${this.oldestId}); reload the state`, lastId: this.lastId }];
    return [hello, ...missed.map((event) => ({ type: 'event' as const, event }))];
  }
}
