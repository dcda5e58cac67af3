/**
 * Which storages each cluster host reaches (issue #21): placement, migration and HA failover
 * leave out hosts that cannot reach a VM's storage (src/cluster/placement.ts `storageProblem`).
 *
 * Every host checks the storages defined on it (src/storage/check.ts `reachStorages`: an rbd
 * storage answers `rbd ls POOL` from the host's VM namespace within 15 s, a dir storage is a root
 * there) when its agent starts and every 30 s, and publishes the result as `storages` inside its
 * own `hosts/HOST` record — the record the agent registers with its lease, so every reader that
 * sees the host alive (placement in the CLI, the agents' failover) sees its storages with it, and
 * the report goes away with the lease. The record is merged in a transaction on its revision (a
 * concurrent re-registration by the agent wins, and the report is merged into the new record on
 * the next 1 s tick), and written only when the report changed.
 */
import type { Etcd3 } from 'etcd3';
import type { Paths } from '../host/paths.js';
import type { StorageReach } from '../storage/check.js';
import { connect, keys, withTimeout, type HostInfo } from './etcd.js';

export type ReachOptions = { etcd: string[]; prefix: string; host: string; paths: Paths; netns?: string; everyMs?: number; log?: (m: string) => void };
export type ReachPublisher = { stop(): Promise<void>; /** The last report (tests, logs). */ last(): StorageReach[] | undefined };

/** The host record with the report merged in, or undefined when it already holds this report (pure). */
export function mergeReach(info: HostInfo, report: StorageReach[], at: string): HostInfo | undefined {
  const same = JSON.stringify(info.storages ?? null) === JSON.stringify(report);
  return same ? undefined : { ...info, storages: report, storagesAt: at };
}

export async function startStorageReach(o: ReachOptions): Promise<ReachPublisher> {
  const c: Etcd3 = await connect(o.etcd);
  const k = keys(o.prefix);
  const log = o.log ?? ((m: string) => process.stderr.write(`${new Date().toISOString()} storage-reach ${o.host}: ${m}\n`));
  let report: StorageReach[] | undefined;
  let stopped = false;
  let probing: Promise<void> | undefined;
  let merging = false;
  let lastError: string | undefined;

  const probe = async () => {
    const { reachStorages } = await import('../storage/check.js');
    const r = await reachStorages(o.paths, o.netns);
    const before = JSON.stringify(report);
    report = r;
    if (before !== JSON.stringify(r)) log(`storages: ${r.map((x) => `${x.name} ${x.ok ? 'ok' : `UNREACHABLE (${x.why})`}`).join(', ') || 'none defined'}`);
  };
  const merge = async () => {
    if (!report || merging || stopped) return;
    merging = true;
    try {
      const r = await withTimeout(c.get(k.host(o.host)).exec(), 2000, 'host record');
      const kv = r.kvs[0];
      if (!kv) return; // the agent has no lease right now: nothing to merge into
      const info = JSON.parse(kv.value.toString()) as HostInfo;
      const next = mergeReach(info, report, new Date().toISOString());
      if (!next) return;
      await withTimeout(c.if(k.host(o.host), 'Mod', '==', Number(kv.mod_revision)).then(c.put(k.host(o.host)).value(JSON.stringify(next)).lease(info.leaseId)).commit(), 2000, 'publish storages');
      lastError = undefined;
    } catch (e) {
      // Once per distinct error: etcd being down is retried every second and logged by the agent too.
      const m = (e as Error).message;
      if (m !== lastError) log(`cannot publish storages: ${m}`);
      lastError = m;
    } finally {
      merging = false;
    }
  };
  const tick = (fn: () => Promise<void>) => () => {
    if (stopped || probing) return;
    probing = fn().catch((e: unknown) => log(`storage check: ${(e as Error).message}`)).finally(() => (probing = undefined));
  };
  const runProbe = tick(async () => {
    await probe();
    await merge();
  });
  runProbe();
  const timers = [setInterval(runProbe, o.everyMs ?? 30_000), setInterval(() => void merge(), 1000)];
  return {
    last: () => report,
    stop: async () => {
      stopped = true;
      for (const t of timers) clearInterval(t);
      await probing?.catch(() => undefined);
      c.close();
    },
  };
}
