/**
 * What the CLI (and later the API) does in cluster mode: init/join/leave/status, definitions into
 * etcd, desired state with placement (start/stop), and migration requests. Agents do the rest.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { parseDefinitions } from '../definition/load.js';
import { defPath } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { connect, getJson, keys, listJson, listStrings, withTimeout, type ClusterConfig, type Desired, type HostInfo, type Keys, type Member, type Migration, type Observed } from './etcd.js';
import type { LocalCluster } from './local.js';
import { place, storageProblem, type Placed } from './placement.js';
import { cancelKey, recentEvents, type ClusterEvent } from './events.js';

export type Session = { c: Etcd3; k: Keys; close(): void };

export async function open(cl: LocalCluster): Promise<Session> {
  const c = await connect(cl.etcd);
  return { c, k: keys(cl.prefix), close: () => c.close() };
}

export async function initCluster(s: Session, cfg: Omit<ClusterConfig, 'createdAt'>): Promise<{ created: boolean; config: ClusterConfig }> {
  const config: ClusterConfig = { ...cfg, createdAt: new Date().toISOString() };
  const r = await withTimeout(s.c.if(s.k.config, 'Version', '==', 0).then(s.c.put(s.k.config).value(JSON.stringify(config))).commit(), 5000, 'cluster init');
  if (r.succeeded) return { created: true, config };
  return { created: false, config: (await getJson<ClusterConfig>(s.c, s.k.config))! };
}

export async function joinCluster(s: Session, host: string, addr?: string): Promise<Member> {
  const cfg = await getJson<ClusterConfig>(s.c, s.k.config, 5000);
  if (!cfg) throw badInput('NOT_IN_CLUSTER', `there is no kvmctl cluster under ${s.k.prefix} in this etcd`, 'run kvmctl cluster init --etcd URLS first');
  const m: Member = { name: host, addr, joinedAt: new Date().toISOString() };
  await withTimeout(s.c.put(s.k.member(host)).value(JSON.stringify(m)).exec(), 3000, 'join');
  return m;
}

export async function leaveCluster(s: Session, host: string, force: boolean): Promise<{ host: string; owned: string[] }> {
  const [owners, desired] = await Promise.all([listStrings(s.c, s.k.owners), listJson<Desired>(s.c, s.k.desiredAll)]);
  const owned = [...owners].filter(([, h]) => h === host).map(([n]) => n);
  const placedHere = [...desired].filter(([, d]) => d.state === 'running' && d.host === host).map(([n]) => n);
  const busy = [...new Set([...owned, ...placedHere])];
  if (busy.length && !force) throw badInput('HOST_BUSY', `host ${host} still runs ${busy.join(', ')}`, `migrate or stop them first (kvmctl migrate VM --to HOST), or --force`);
  await withTimeout(s.c.delete().key(s.k.member(host)).exec(), 3000, 'leave');
  return { host, owned };
}

export type VmRow = { name: string; desired?: Desired; owner?: string; observed?: Observed; ha: boolean; memory?: number; migration?: Migration };
export type HostRow = { name: string; alive: boolean; addr?: string; leaseId?: string; leaseTtlLeft?: number; memTotal?: number; memFree?: number; cpus?: number; vms: string[]; storages?: HostInfo['storages'] };
export type ClusterStatus = { prefix: string; config?: ClusterConfig; etcd: { endpoint: string; ok: boolean; leader?: boolean; version?: string; error?: string }[]; hosts: HostRow[]; vms: VmRow[]; /** Recent failovers and migrations, newest first (src/cluster/events.ts). */ events: ClusterEvent[] };

export async function clusterStatus(s: Session, urls: string[]): Promise<ClusterStatus> {
  const [config, members, hosts, desired, owners, observed, defs, migrations, events] = await Promise.all([
    getJson<ClusterConfig>(s.c, s.k.config),
    listJson<Member>(s.c, s.k.members),
    listJson<HostInfo>(s.c, s.k.hosts),
    listJson<Desired>(s.c, s.k.desiredAll),
    listStrings(s.c, s.k.owners),
    listJson<Observed>(s.c, s.k.observedAll),
    listStrings(s.c, s.k.defs('vm')),
    listJson<Migration>(s.c, s.k.migrations),
    recentEvents(s.c, s.k).catch(() => [] as ClusterEvent[]),
  ]);
  const specs = new Map([...defs].map(([n, t]) => [n, parseDefinitions(t)[0]?.spec as VmSpec | undefined]));
  const names = [...new Set([...members.keys(), ...hosts.keys()])].sort();
  const rows: HostRow[] = [];
  for (const h of names) {
    const info = hosts.get(h);
    let ttl: number | undefined;
    if (info) ttl = await withTimeout(leaseTtl(s.c, info.leaseId), 2000, 'lease ttl').catch(() => undefined);
    const here = [...desired].filter(([, d]) => d.state === 'running' && d.host === h).map(([n]) => n);
    const committed = here.reduce((sum, n) => sum + (specs.get(n)?.memory ?? 0), 0);
    rows.push({ name: h, alive: !!info, addr: info?.addr ?? members.get(h)?.addr, leaseId: info?.leaseId, leaseTtlLeft: ttl, memTotal: info?.memTotal, memFree: info ? info.memTotal - committed : undefined, cpus: info?.cpus, vms: here.sort(), ...(info?.storages ? { storages: info.storages } : {}) });
  }
  const etcd = await Promise.all(
    urls.map(async (endpoint) => {
      const one = await connect([endpoint]);
      try {
        const st = await withTimeout(one.maintenance.status(), 2000, `status of ${endpoint}`);
        return { endpoint, ok: true, version: st.version, leader: st.leader === st.header?.member_id };
      } catch (e) {
        return { endpoint, ok: false, error: (e as Error).message };
      } finally {
        one.close();
      }
    }),
  );
  const vms: VmRow[] = [...new Set([...defs.keys(), ...desired.keys()])].sort().map((n) => ({
    name: n,
    desired: desired.get(n),
    owner: owners.get(n),
    observed: observed.get(n),
    ha: !!specs.get(n)?.ha,
    memory: specs.get(n)?.memory,
    migration: migrations.get(n),
  }));
  return { prefix: s.k.prefix, config, etcd, hosts: rows, vms, events };
}

async function leaseTtl(c: Etcd3, id: string): Promise<number | undefined> {
  const r = await c.leaseClient.leaseTimeToLive({ ID: id });
  const n = Number(r.TTL);
  return n >= 0 ? n : undefined;
}

/** Put VM and network definitions (YAML text, one per document) into etcd. */
export async function applyToCluster(s: Session, texts: { kind: 'vm' | 'network'; name: string; text: string }[]): Promise<{ kind: string; name: string; action: 'created' | 'configured' | 'unchanged' }[]> {
  const out: { kind: string; name: string; action: 'created' | 'configured' | 'unchanged' }[] = [];
  for (const d of texts) {
    const key = s.k.def(d.kind, d.name);
    const cur = await withTimeout(s.c.get(key).string(), 3000, 'get definition');
    if (cur === d.text) {
      out.push({ kind: d.kind, name: d.name, action: 'unchanged' });
      continue;
    }
    await withTimeout(s.c.put(key).value(d.text).exec(), 3000, 'put definition');
    out.push({ kind: d.kind, name: d.name, action: cur === null ? 'created' : 'configured' });
  }
  return out;
}

async function vmDef(s: Session, paths: Paths, name: string): Promise<{ spec: VmSpec; text: string }> {
  let text = await withTimeout(s.c.get(s.k.def('vm', name)).string(), 3000, 'get definition');
  if (text === null) {
    // Not in the cluster yet: the local definition (kvmctl apply) is pushed on first start.
    try {
      text = fs.readFileSync(defPath(paths, 'vm', name), 'utf8');
    } catch {
      throw badInput('VM_NOT_FOUND', `no VM named "${name}" in the cluster or on this host`, 'kvmctl cluster apply -f FILE puts definitions into the cluster');
    }
    await withTimeout(s.c.put(s.k.def('vm', name)).value(text).exec(), 3000, 'put definition');
  }
  const doc = parseDefinitions(text, `cluster:${name}`)[0];
  if (!doc || doc.issues.length || doc.kind !== 'vm') throw new KvmError('DEFINITION_CORRUPT', `the cluster's definition of VM "${name}" does not validate`, { hint: 'kvmctl cluster apply -f FILE with a fixed definition' });
  return { spec: doc.spec as VmSpec, text };
}

export type StartResultCluster = { name: string; host: string; how: 'placed' | 'pinned' | 'already'; considered?: ReturnType<typeof place>['considered']; pid?: number; waitedMs?: number };

export async function clusterStart(s: Session, paths: Paths, name: string, opts: { on?: string; wait?: boolean; timeoutMs?: number } = {}): Promise<StartResultCluster> {
  const { spec } = await vmDef(s, paths, name);
  const [hosts, desired, defs] = await Promise.all([listJson<HostInfo>(s.c, s.k.hosts), listJson<Desired>(s.c, s.k.desiredAll), listStrings(s.c, s.k.defs('vm'))]);
  const cur = desired.get(name);
  if (cur?.state === 'running' && cur.host) {
    if (opts.on && opts.on !== cur.host) throw badInput('VM_RUNNING', `VM "${name}" already runs on ${cur.host}`, `kvmctl migrate ${name} --to ${opts.on} (live), or kvmctl stop ${name} first`);
    return { name, host: cur.host, how: 'already' };
  }
  const cfg = await getJson<ClusterConfig>(s.c, s.k.config);
  let host: string;
  let considered: StartResultCluster['considered'];
  if (opts.on) {
    if (!hosts.has(opts.on)) throw badInput('HOST_DOWN', `host "${opts.on}" has no live agent`, `live hosts: ${[...hosts.keys()].join(', ') || 'none'}`);
    const reach = storageProblem(spec, hosts.get(opts.on)!);
    if (reach) throw badInput('STORAGE_UNREACHABLE_THERE', `VM "${name}" cannot run on ${opts.on}: it ${reach}`, 'kvmctl cluster status shows what each host reaches; kvmctl storage check NAME on that host says why');
    host = opts.on;
  } else {
    const placed: Placed[] = [...desired]
      .filter(([, d]) => d.state === 'running' && d.host)
      .map(([vm, d]) => {
        const sp = defs.get(vm) ? (parseDefinitions(defs.get(vm)!)[0]?.spec as VmSpec | undefined) : undefined;
        return { vm, host: d.host!, memory: sp?.memory ?? 0, antiAffinity: sp?.antiAffinity };
      });
    // A network defined in the cluster can be brought up on any host (the agent syncs it before the start).
    const nets = [...(await listStrings(s.c, s.k.defs('network'))).keys()];
    const r = place(spec, [...hosts.values()].map((x) => ({ ...x, networks: [...x.networks, ...nets] })), placed, { sharedStorage: cfg?.sharedStorage });
    host = r.host;
    considered = r.considered;
  }
  const d: Desired = { state: 'running', host, placedBy: opts.on ? 'pinned (--on)' : 'placement', at: new Date().toISOString() };
  const key = s.k.desired(name);
  const rev = cur ? undefined : 0;
  const txn = rev === 0 ? s.c.if(key, 'Version', '==', 0) : s.c.if(key, 'Value', '==', JSON.stringify(cur));
  const r = await withTimeout(txn.then(s.c.put(key).value(JSON.stringify(d))).commit(), 3000, 'write desired state');
  if (!r.succeeded) throw new KvmError('CONFLICT', `VM "${name}" was changed by someone else while placing it`, { hint: 'run the command again' });
  const out: StartResultCluster = { name, host, how: opts.on ? 'pinned' : 'placed', considered };
  if (opts.wait !== false) {
    const t0 = Date.now();
    const o = await waitFor(s, name, (ob) => ob?.host === host && ob.state === 'running', opts.timeoutMs ?? 60_000);
    out.pid = o?.pid;
    out.waitedMs = Date.now() - t0;
  }
  return out;
}

export async function clusterStop(s: Session, name: string, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<{ name: string; was?: string }> {
  const cur = await getJson<Desired>(s.c, s.k.desired(name));
  if (!cur || cur.state !== 'running') throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running in the cluster`, 'kvmctl cluster status shows what runs where');
  await withTimeout(s.c.put(s.k.desired(name)).value(JSON.stringify({ ...cur, state: 'stopped', at: new Date().toISOString() })).exec(), 3000, 'write desired state');
  if (opts.wait !== false) {
    const end = Date.now() + (opts.timeoutMs ?? 90_000);
    while (Date.now() < end) {
      if ((await withTimeout(s.c.get(s.k.owner(name)).string(), 3000, 'owner')) === null) return { name, was: cur.host };
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new KvmError('TIMEOUT', `VM "${name}" was not stopped by its host ${cur.host} in time`, { hint: 'is its agent running? kvmctl cluster status' });
  }
  return { name, was: cur.host };
}

async function waitFor(s: Session, name: string, ok: (o: Observed | undefined) => boolean, timeoutMs: number): Promise<Observed | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const o = await getJson<Observed>(s.c, s.k.observed(name)).catch(() => undefined);
    if (ok(o)) return o;
    if (Date.now() > end) throw new KvmError('TIMEOUT', `VM "${name}" did not come up within ${Math.round(timeoutMs / 1000)} s`, { hint: 'kvmctl cluster status; the agent logs of the chosen host say why' });
    await new Promise((r) => setTimeout(r, 200));
  }
}

export type MigrateResult = { name: string; from: string; to: string; totalMs: number; stats?: Migration['stats']; state: Migration['state']; disks?: string[]; leftBehind?: string[] };

/** Ask for a live migration and follow it until done or failed. */
export async function clusterMigrate(s: Session, name: string, to: string, opts: { onProgress?: (m: Migration) => void; timeoutMs?: number; bwlimit?: number } = {}): Promise<MigrateResult> {
  const [spec, owner, hosts, cfg, existing] = await Promise.all([
    withTimeout(s.c.get(s.k.def('vm', name)).string(), 3000, 'definition').then((t) => (t === null ? undefined : (parseDefinitions(t)[0]?.spec as VmSpec | undefined))),
    withTimeout(s.c.get(s.k.owner(name)).string(), 3000, 'owner'),
    listJson<HostInfo>(s.c, s.k.hosts),
    getJson<ClusterConfig>(s.c, s.k.config),
    getJson<Migration>(s.c, s.k.migrate(name)),
  ]);
  if (!spec) throw badInput('VM_NOT_FOUND', `no VM named "${name}" in the cluster`, 'kvmctl cluster status lists the VMs');
  const { migrationBlockers } = await import('./migrate.js');
  const blockers = migrationBlockers(spec, cfg?.sharedStorage ?? []);
  if (blockers.length) throw new KvmError('MIGRATION_REFUSED', `VM "${name}" cannot be live-migrated: ${blockers.join('; ')}`, { exit: 2, hint: 'stop it and start it on the other host instead (kvmctl stop, kvmctl start --on HOST)' });
  if (!owner) throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running on any host`, `kvmctl start ${name} --on ${to}`);
  if (owner === to) throw badInput('ALREADY_THERE', `VM "${name}" already runs on ${to}`);
  const dest = hosts.get(to);
  if (!dest) throw badInput('HOST_DOWN', `host "${to}" has no live agent`, `live hosts: ${[...hosts.keys()].join(', ') || 'none'}`);
  const reach = storageProblem(spec, dest);
  if (reach) throw badInput('STORAGE_UNREACHABLE_THERE', `VM "${name}" cannot run on ${to}: it ${reach}`, 'kvmctl cluster status shows what each host reaches; kvmctl storage check NAME on that host says why');
  if (!dest.addr) throw badInput('NO_ADDR', `host "${to}" has no address for incoming migrations`, 'restart its agent with --addr IP');
  if (spec.hosts?.length && !spec.hosts.includes(to)) throw badInput('NOT_ALLOWED', `VM "${name}" may run only on ${spec.hosts.join(', ')}`);
  if (existing && !['done', 'failed'].includes(existing.state) && Date.now() - Date.parse(existing.at) < 120_000) throw badInput('MIGRATION_BUSY', `VM "${name}" is already being migrated (${existing.from} → ${existing.to}, ${existing.state})`);
  if (opts.bwlimit !== undefined && !(opts.bwlimit >= 1024 * 1024)) throw badInput('BAD_BWLIMIT', `--bwlimit ${opts.bwlimit} is below 1 MiB/s`, 'give a rate in bytes per second with a unit, e.g. --bwlimit 100M');
  const m: Migration = { id: randomBytes(4).toString('hex'), from: owner, to, state: 'requested', at: new Date().toISOString(), ...(opts.bwlimit ? { bwlimit: opts.bwlimit } : {}) };
  const key = s.k.migrate(name);
  const r = await withTimeout(s.c.if(s.k.owner(name), 'Value', '==', owner).then(s.c.put(key).value(JSON.stringify(m))).commit(), 3000, 'migration request');
  if (!r.succeeded) throw new KvmError('CONFLICT', `VM "${name}" changed hosts while asking to migrate it`, { hint: 'run the command again' });
  const t0 = Date.now();
  const end = t0 + (opts.timeoutMs ?? 600_000); // local disks are copied first: minutes for big ones
  let last: Migration = m;
  try {
    for (;;) {
      const cur = await getJson<Migration>(s.c, key).catch(() => undefined);
      if (cur && cur.id === m.id) {
        last = cur;
        const p = await getJson<Pick<Migration, 'id' | 'progress' | 'stats'>>(s.c, s.k.progress(name)).catch(() => undefined);
        if (p?.id === m.id) Object.assign(cur, { progress: p.progress ?? cur.progress, stats: p.stats ?? cur.stats });
        opts.onProgress?.(cur);
        if (cur.state === 'done') break;
        if (cur.state === 'failed') throw new KvmError('MIGRATION_FAILED', `VM "${name}": ${cur.error ?? 'migration failed'}`, { hint: `it keeps running on ${owner}` });
      }
      if (Date.now() > end) throw new KvmError('MIGRATION_TIMEOUT', `VM "${name}": migration ${owner} → ${to} not done after ${Math.round((end - t0) / 1000)} s (state ${last.state})`, { hint: 'kvmctl cluster status; the agents log each step' });
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await withTimeout(s.c.if(key, 'Mod', '<', Number.MAX_SAFE_INTEGER).then(s.c.delete().key(key), s.c.delete().key(s.k.progress(name)), s.c.delete().key(cancelKey(s.k, name))).commit(), 3000, 'migration cleanup').catch(() => undefined);
  }
  return { name, from: owner, to, totalMs: Date.now() - t0, stats: last.stats, state: last.state, ...(last.disks?.length ? { disks: last.disks.map((d) => d.id) } : {}), ...(last.leftBehind?.length ? { leftBehind: last.leftBehind } : {}) };
}

/**
 * Ask the source agent to cancel VM `name`'s migration in progress, from any host: a record under
 * migcancel/NAME that the source reads while it migrates (src/cluster/agent-migrate.ts migrateOut).
 * The migration then fails and the VM keeps running on its source.
 */
export async function requestMigrationCancel(s: Session, name: string, by: string): Promise<{ name: string; id: string; from: string; to: string }> {
  const m = await getJson<Migration>(s.c, s.k.migrate(name));
  if (!m || m.state === 'done' || m.state === 'failed' || m.state === 'switched') throw badInput('NO_MIGRATION', `VM "${name}" has no migration in progress${m ? ` (the last one is ${m.state})` : ''}`, 'kvmctl cluster status shows the migrations');
  await withTimeout(s.c.put(cancelKey(s.k, name)).value(JSON.stringify({ id: m.id, by, at: new Date().toISOString() })).exec(), 3000, 'migration cancel');
  return { name, id: m.id, from: m.from, to: m.to };
}
