/**
 * Cluster events (issue #17 item 4): what the agents did that a user wants to see on any host —
 * an HA failover, a live migration that ended — as records in etcd under `events/`, so every
 * `kvmctl serve` of the cluster sees them (it watches the prefix: ClusterEventFeed, which puts
 * them on its own event bus), not only the one on the host that acted. The writer keeps the last
 * KEEP records; a key is `events/<ms since epoch, 13 digits>-<vm>-<random>` so that keys sort by
 * time. Migration cancel requests from another host's serve live here too (`migcancel/NAME`,
 * read by the source agent while it migrates: src/cluster/agent-migrate.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3, Watcher } from 'etcd3';
import { connect, withTimeout, type Keys } from './etcd.js';
import type { LocalCluster } from './local.js';

export type ClusterEvent = {
  type: 'failover' | 'migration';
  vm: string;
  from: string;
  to: string;
  /** When the agent acted (ISO). */
  at: string;
  /** migration: done | failed (a cancel is a failure whose error says so). */
  state?: string;
  message?: string;
  /** The host whose agent wrote it. */
  by: string;
};

export const KEEP = 100;
export const eventsPrefix = (k: Keys) => `${k.prefix}events/`;
export const cancelKey = (k: Keys, vm: string) => `${k.prefix}migcancel/${vm}`;

/** An agent records what it did; never throws (an event lost to a slow etcd must not fail the failover). */
export async function recordEvent(c: Etcd3, k: Keys, e: ClusterEvent, log: (m: string) => void = () => undefined): Promise<void> {
  try {
    const key = `${eventsPrefix(k)}${String(Date.parse(e.at)).padStart(13, '0')}-${e.vm}-${randomBytes(3).toString('hex')}`;
    await withTimeout(c.put(key).value(JSON.stringify(e)).exec(), 2000, 'event');
    const all = await withTimeout(c.getAll().prefix(eventsPrefix(k)).keys(), 2000, 'events');
    const old = all.sort().slice(0, Math.max(0, all.length - KEEP));
    for (const o of old) await withTimeout(c.delete().key(o).exec(), 2000, 'old event');
  } catch (err) {
    log(`event ${e.type} ${e.vm} not recorded: ${(err as Error).message}`);
  }
}

/** The last `n` events, newest first. */
export async function recentEvents(c: Etcd3, k: Keys, n = 20): Promise<ClusterEvent[]> {
  const all = await withTimeout(c.getAll().prefix(eventsPrefix(k)).strings(), 3000, 'events');
  return Object.keys(all)
    .sort()
    .reverse()
    .slice(0, n)
    .flatMap((key) => {
      try {
        return [JSON.parse(all[key]!) as ClusterEvent];
      } catch {
        return [];
      }
    });
}

/**
 * `kvmctl serve` in a cluster: watch `events/` and hand each new record to `publish`. Connects in
 * the background and retries every `retryMs` while etcd is unreachable (serve works without it).
 */
export class ClusterEventFeed {
  private c?: Etcd3;
  private w?: Watcher;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly cl: LocalCluster,
    private readonly k: Keys,
    private readonly publish: (e: ClusterEvent) => void,
    private readonly log: (m: string) => void = () => undefined,
    private readonly retryMs = 5000,
  ) {}

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    try {
      this.c ??= await connect(this.cl.etcd);
      const w = await withTimeout(this.c.watch().prefix(eventsPrefix(this.k)).create(), 5000, 'watch events');
      if (this.closed) return void w.cancel().catch(() => undefined);
      w.on('put', (kv) => {
        try {
          this.publish(JSON.parse(kv.value.toString()) as ClusterEvent);
        } catch {
          /* not ours */
        }
      });
      w.on('error', () => undefined);
      this.w = w;
    } catch (e) {
      this.log(`cluster events: ${(e as Error).message}; retrying in ${this.retryMs / 1000} s`);
      this.timer = setTimeout(() => void this.connect(), this.retryMs);
      this.timer.unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.w?.cancel().catch(() => undefined);
    this.c?.close();
  }
}
