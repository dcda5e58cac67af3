/**
 * The etcd side of cluster mode: the client (loaded lazily, outside the CLI bundle: etcd3 reads
 * its .proto files next to itself) and the key layout. Everything lives under one prefix:
 *   config                 {ttlSec, marginMs, sharedStorage}         (cluster init)
 *   members/HOST           {name, addr, joinedAt}                    (cluster join; persistent)
 *   hosts/HOST             {name, addr, memTotal, cpus, …, storages} (agent; bound to its lease; storages: storage-reach.ts)
 *   defs/vm/NAME, defs/network/NAME   definition YAML text
 *   desired/NAME           {state: running|stopped, host}            (CLI: start/stop/placement)
 *   owner/NAME             HOST                                      (bound to HOST's lease; moved only in transactions)
 *   observed/NAME          {host, state, pid, at}                    (agent; bound to its lease)
 *   migrate/NAME           {id, from, to, state, uri}                (migrate request and its steps)
 *   migprogress/NAME       {id, progress, stats}                     (source agent: query-migrate numbers)
 */
import type { Etcd3 } from 'etcd3';
import { KvmError } from '../errors.js';

export const DEFAULT_PREFIX = '/kvmctl/';

export type ClusterConfig = { ttlSec: number; marginMs: number; sharedStorage: string[]; createdAt: string };
export type Member = { name: string; addr?: string; joinedAt: string };
export type HostInfo = {
  name: string; addr?: string; memTotal: number; cpus: number; networks: string[]; storage: string[]; agentPid: number; leaseId: string; at: string;
  /** The storages defined on this host and whether it reaches them (merged in by src/cluster/storage-reach.ts; absent until the first report). */
  storages?: { name: string; type: string; ok: boolean; why?: string }[];
  storagesAt?: string;
};
export type Desired = { state: 'running' | 'stopped'; host?: string; placedBy?: string; at: string };
export type Observed = { host: string; state: string; pid?: number; at: string };
/** A local disk copied by a live migration (src/cluster/migrate-disks.ts); `file` as the definition names it (each host resolves it in its own images dir). */
export type MigDisk = { id: string; file: string; format: string; size: number; allocated?: number; clusterSize?: number };

export type Migration = {
  id: string;
  from: string;
  to: string;
  state: 'requested' | 'listening' | 'migrating' | 'switched' | 'done' | 'failed';
  uri?: string;
  /** Local disks to copy, filled in by the source agent before the destination prepares (undefined: not described yet). */
  disks?: MigDisk[];
  /** The destination's NBD server for the disk copies. */
  nbd?: { host: string; port: number };
  /** The source's record of which backup its disks' dirty bitmaps count from (src/backup/create.ts); the bitmaps migrate with the disks, so the next backup on the destination can be incremental. */
  backupState?: { format: 1; repo: string; last?: string; generation?: string };
  /** Bytes/s cap for the memory stream and each disk copy (kvmctl migrate --bwlimit). */
  bwlimit?: number;
  /** The source's files kept after the switch-over (renamed, never deleted): its now-stale disks, NVRAM and TPM state. */
  leftBehind?: string[];
  progress?: { status: string; transferred?: number; remaining?: number; total?: number; disks?: { id: string; offset: number; len: number; ready: boolean }[] };
  stats?: { totalTimeMs?: number; downtimeMs?: number; setupTimeMs?: number; transferredBytes?: number; mirrorMs?: number; diskBytes?: number };
  error?: string;
  at: string;
};

export const keys = (prefix = DEFAULT_PREFIX) => ({
  prefix,
  config: `${prefix}config`,
  member: (h: string) => `${prefix}members/${h}`,
  members: `${prefix}members/`,
  host: (h: string) => `${prefix}hosts/${h}`,
  hosts: `${prefix}hosts/`,
  def: (kind: 'vm' | 'network', n: string) => `${prefix}defs/${kind}/${n}`,
  defs: (kind: 'vm' | 'network') => `${prefix}defs/${kind}/`,
  desired: (n: string) => `${prefix}desired/${n}`,
  desiredAll: `${prefix}desired/`,
  owner: (n: string) => `${prefix}owner/${n}`,
  owners: `${prefix}owner/`,
  observed: (n: string) => `${prefix}observed/${n}`,
  observedAll: `${prefix}observed/`,
  migrate: (n: string) => `${prefix}migrate/${n}`,
  migrations: `${prefix}migrate/`,
  /** Migration progress and numbers, written by the source agent (apart from the state key, so they never race the ownership switch). */
  progress: (n: string) => `${prefix}migprogress/${n}`,
});
export type Keys = ReturnType<typeof keys>;

/** Per-call deadline: a call to an unreachable etcd fails fast instead of hanging the agent. */
export const CALL_TIMEOUT_MS = 1500;

export function parseUrls(v: string): string[] {
  const urls = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (!urls.length || urls.some((u) => !/^https?:\/\/[^/\s]+$/.test(u))) {
    throw new KvmError('BAD_ETCD_URL', `"${v}" is not a list of etcd client URLs`, { exit: 2, hint: 'give http://HOST:PORT[,http://HOST:PORT…], e.g. --etcd http://10.77.0.1:2379' });
  }
  return urls;
}

export async function connect(urls: string[]): Promise<Etcd3> {
  // A non-literal specifier keeps esbuild from bundling etcd3 (it loads its .proto files from its own directory).
  const spec = 'etcd3';
  const m = (await import(spec)) as typeof import('etcd3');
  return new m.Etcd3({
    hosts: urls,
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}

/** Race a call against a deadline (etcd3's retry policies can outlast the gRPC deadline). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)).catch((e: unknown) => {
      if (e instanceof KvmError) throw e;
      throw new KvmError('ETCD_UNAVAILABLE', `etcd: ${what}: ${(e as Error).message?.split('\n')[0] ?? String(e)}`, { hint: 'check that a quorum of etcd members is up and reachable (kvmctl cluster status --etcd URLS)', cause: e });
    }),
    new Promise<T>((_, rej) => {
      t = setTimeout(() => rej(new KvmError('ETCD_UNAVAILABLE', `etcd did not answer ${what} within ${ms} ms`, { hint: 'check that a quorum of etcd members is up and reachable (kvmctl cluster status)' })), ms);
    }),
  ]);
}

export async function getJson<T>(c: Etcd3, key: string, ms = 3000): Promise<T | undefined> {
  const s = await withTimeout(c.get(key).string(), ms, `get ${key}`);
  return s === null ? undefined : (JSON.parse(s) as T);
}

/** Every key under a prefix, with the prefix cut off. */
export async function listJson<T>(c: Etcd3, prefix: string, ms = 3000): Promise<Map<string, T>> {
  const all = await withTimeout(c.getAll().prefix(prefix).strings(), ms, `list ${prefix}`);
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(prefix.length), JSON.parse(v) as T]));
}

export async function listStrings(c: Etcd3, prefix: string, ms = 3000): Promise<Map<string, string>> {
  const all = await withTimeout(c.getAll().prefix(prefix).strings(), ms, `list ${prefix}`);
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(prefix.length), v]));
}
