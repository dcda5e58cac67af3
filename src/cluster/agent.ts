/**
 * `kvmctl agent`: one per host. Holds the host's etcd lease, converges this host's VMs on the
 * desired state in etcd, takes and releases VM ownership in transactions, restarts HA VMs of
 * hosts whose lease expired (after a safety margin), runs its side of live migrations, and
 * fences itself: when it cannot renew its lease in time it SIGKILLs its HA VMs before the lease
 * can expire — and a detached watchdog it keeps feeding does the same if the agent dies or hangs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Etcd3, Lease } from 'etcd3';
import { KvmError } from '../errors.js';
import { spawnDetached } from '../host/exec.js';
import type { Paths } from '../host/paths.js';
import { parseDefinitions } from '../definition/load.js';
import { listNames, writeDef } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { connect, getJson, keys, withTimeout, type ClusterConfig, type Desired, type HostInfo, type Keys, type Migration, type Observed } from './etcd.js';
import { localDisks, place, type Placed } from './placement.js';
import { writeFeed, fenceNow, type Feed } from './watchdog.js';
import type { MigrationCtx } from './agent-migrate.js';
import { recordEvent } from './events.js';

export type AgentOptions = {
  paths: Paths;
  etcd: string[];
  prefix: string;
  host: string;
  /** Address other hosts reach this one at (live migration streams come in here). */
  addr?: string;
  /** Memory this host offers to VMs (default: all of it). */
  memory?: number;
  log?: (msg: string) => void;
  /** Do not start the watchdog process (tests of the agent's own fencing). */
  noWatchdog?: boolean;
  /** Network namespace this host's VMs run in (their links, networks, QEMU): `agent --netns` / KVMCTL_NETNS. */
  netns?: string;
};

type Snapshot = {
  config: ClusterConfig;
  defs: Map<string, { text: string; spec?: VmSpec }>;
  desired: Map<string, Desired>;
  desiredRev: Map<string, string>;
  owner: Map<string, string>;
  hosts: Map<string, HostInfo>;
  migrations: Map<string, Migration>;
  netDefs: Map<string, string>;
};

const DEFAULT_CONFIG: ClusterConfig = { ttlSec: 5, marginMs: 1000, sharedStorage: [], createdAt: '' };

export class Agent {
  private c!: Etcd3;
  private k: Keys;
  private cfg: ClusterConfig = DEFAULT_CONFIG;
  private lease?: Lease;
  private leaseId?: string;
  /** When the last keepalive that etcd answered was sent: the lease lives at least TTL after it. */
  private lastRenewSent = 0;
  private fenced = false;
  private stopping = false;
  private tasks = new Map<string, Promise<void>>();
  private orphanSince = new Map<string, number>();
  private observedSent = new Map<string, string>();
  private haPids: Feed['ha'] = [];
  private timers: NodeJS.Timeout[] = [];
  private reconcileQueued = false;
  private reconciling?: Promise<void>;
  private feedFile: string;
  private log: (m: string) => void;
  private watcher?: { cancel(): Promise<void> };
  /** One client per etcd member, for lease renewals (see keepaliveAny). */
  private renewers: Etcd3[] = [];
  /** Network definitions in etcd (latest snapshot). */
  private netDefs = new Map<string, string>();

  constructor(private o: AgentOptions) {
    this.k = keys(o.prefix);
    this.log = o.log ?? ((m) => process.stderr.write(`${new Date().toISOString()} agent ${o.host}: ${m}\n`));
    this.feedFile = path.join(o.paths.run, 'cluster', 'watchdog.json');
  }

  /** The time by which the HA VMs must be gone: the lease's earliest expiry minus a lead. */
  fenceAt(): number {
    if (!this.leaseId || this.fenced) return 0;
    const ttl = this.cfg.ttlSec * 1000;
    // Lead: at least 1 s (the kill, the watchdog's 100 ms poll, a busy host), a quarter of longer TTLs, never over a third.
    return this.lastRenewSent + ttl - Math.min(ttl / 3, Math.max(1000, ttl / 4));
  }
  private safeToAct(): boolean {
    return !this.fenced && !!this.leaseId && Date.now() < this.fenceAt() - 300;
  }

  async start(): Promise<void> {
    this.c = await connect(this.o.etcd);
    // etcd may come up after the agent (host boot): wait for it rather than exit.
    let cfg: ClusterConfig | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        cfg = await getJson<ClusterConfig>(this.c, this.k.config, 5000);
        break;
      } catch (e) {
        if (attempt % 10 === 0) this.log(`waiting for etcd (${this.o.etcd.join(', ')}): ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (!cfg) throw new KvmError('NOT_IN_CLUSTER', `no kvmctl cluster under ${this.o.prefix} in etcd`, { exit: 2, hint: 'kvmctl cluster init --etcd URLS first' });
    this.cfg = cfg;
    fs.mkdirSync(path.dirname(this.feedFile), { recursive: true });
    this.feed();
    if (!this.o.noWatchdog) await this.startWatchdog();
    await this.renew();
    const ttl = this.cfg.ttlSec * 1000;
    // Often enough that a leader election (1–2 election timeouts) fits between two answers and the fence deadline.
    this.timers.push(setInterval(() => void this.renew(), Math.min(1000, Math.max(200, ttl / 4))));
    this.timers.push(setInterval(() => this.feed(), 200));
    this.timers.push(setInterval(() => this.kick(), 1000));
    const w = await this.c.watch().prefix(this.k.prefix).create();
    w.on('put', (kv) => {
      if (!kv.key.toString().startsWith(this.k.observedAll)) this.kick();
    });
    w.on('delete', () => this.kick());
    w.on('error', () => undefined);
    this.watcher = w;
    this.log(`up: lease TTL ${this.cfg.ttlSec} s, failover margin ${this.cfg.marginMs} ms, addr ${this.o.addr ?? '-'}`);
    this.kick();
  }

  private async startWatchdog(): Promise<void> {
    const logFile = path.join(path.dirname(this.feedFile), 'watchdog.log');
    const fd = fs.openSync(logFile, 'a');
    try {
      const main = process.argv[1];
      if (!main) throw new KvmError('INTERNAL', 'cannot find the kvmctl entry point to start the watchdog');
      const child = await spawnDetached([process.execPath, main, 'cluster', 'watchdog', this.feedFile], { stdio: ['ignore', fd, fd], env: { ...process.env } as Record<string, string> });
      this.log(`watchdog pid ${child.pid}`);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Write the watchdog's feed: the fence deadline and the HA QEMUs to kill. */
  private feed(): void {
    if (this.stopping) return;
    try {
      writeFeed(this.feedFile, { agentPid: process.pid, fenceAt: this.fenceAt() || Date.now() + 3_600_000 * (this.leaseId ? 0 : 1), ha: this.haPids, at: Date.now() });
    } catch (e) {
      this.log(`cannot feed the watchdog: ${(e as Error).message}`);
    }
    // The agent's own fence: the same deadline as the watchdog's.
    if (this.leaseId && !this.fenced && Date.now() >= this.fenceAt()) this.fence('lease not renewed in time');
  }

  private fence(why: string): void {
    this.fenced = true;
    this.log(`FENCE: ${why}: stopping HA VMs before the lease (${this.leaseId}) can expire`);
    fenceNow(this.haPids, this.log);
    this.haPids = [];
    this.lease?.release();
    this.lease = undefined;
    this.leaseId = undefined;
  }

  private renewing = false;
  private async renew(): Promise<void> {
    // One renewal (or grant) at a time: two overlapping grants would leave keys on a lease nobody renews.
    if (this.stopping || this.renewing) return;
    this.renewing = true;
    try {
      await this.renewOnce();
    } finally {
      this.renewing = false;
    }
  }

  private async renewOnce(): Promise<void> {
    try {
      if (!this.lease || !this.leaseId) {
        const lease = this.c.lease(this.cfg.ttlSec, { autoKeepAlive: false });
        lease.on('lost', () => undefined);
        const sent = Date.now();
        const id = await withTimeout(lease.grant(), 2000, 'lease grant');
        const info: HostInfo = {
          name: this.o.host,
          addr: this.o.addr,
          memTotal: this.o.memory ?? os.totalmem(),
          cpus: os.cpus().length,
          networks: listNames(this.o.paths, 'network'),
          storage: this.cfg.sharedStorage.filter((s) => fs.existsSync(s)),
          agentPid: process.pid,
          leaseId: id,
          at: new Date().toISOString(),
        };
        await withTimeout(this.c.put(this.k.host(this.o.host)).value(JSON.stringify(info)).lease(id).exec(), 2000, 'host registration');
        this.lease = lease;
        this.leaseId = id;
        this.lastRenewSent = sent;
        this.observedSent.clear();
        if (this.fenced) this.log(`new lease ${id}: back in the cluster`);
        else this.log(`lease ${id} granted`);
        this.fenced = false;
        this.kick();
        return;
      }
      const sent = Date.now();
      const ttl = await this.keepaliveAny(this.leaseId, Math.min(2000, this.cfg.ttlSec * 400));
      if (ttl <= 0) {
        this.fence(`etcd says lease ${this.leaseId} expired`);
        return;
      }
      this.lastRenewSent = sent;
    } catch (e) {
      if (!this.fenced) this.log(`lease renewal failed: ${(e as Error).message}`);
    }
  }

  /**
   * One keepalive sent to every etcd member at once through its own connection; the first answer
   * counts. A single client would keep retrying a member that just died for longer than the lease
   * leaves (measured: a stopped member fenced VMs), while any live member forwards to the leader.
   */
  private async keepaliveAny(id: string, ms: number): Promise<number> {
    if (!this.renewers.length) this.renewers = await Promise.all(this.o.etcd.map((u) => connect([u])));
    const one = async (c: Etcd3): Promise<number> => {
      const stream = await c.leaseClient.leaseKeepAlive();
      try {
        return await new Promise<number>((res, rej) => {
          stream.on('data', (r: { TTL?: string | number }) => res(Number(r.TTL)));
          stream.on('error', rej);
          stream.write({ ID: id });
        });
      } finally {
        stream.end();
      }
    };
    return withTimeout(Promise.any(this.renewers.map(one)), ms, 'lease keepalive');
  }

  /** Ask for a reconcile (coalesced). */
  private kick(): void {
    if (this.stopping) return;
    if (this.reconciling) {
      this.reconcileQueued = true;
      return;
    }
    this.reconciling = this.reconcile()
      .catch((e: unknown) => this.log(`reconcile: ${(e as Error).message}`))
      .finally(() => {
        this.reconciling = undefined;
        if (this.reconcileQueued) {
          this.reconcileQueued = false;
          setTimeout(() => this.kick(), 50);
        }
      });
  }

  private async snapshot(): Promise<Snapshot> {
    const all = await withTimeout(this.c.getAll().prefix(this.k.prefix).exec(), 2000, 'snapshot');
    const s: Snapshot = { config: this.cfg, defs: new Map(), desired: new Map(), desiredRev: new Map(), owner: new Map(), hosts: new Map(), migrations: new Map(), netDefs: new Map() };
    for (const kv of all.kvs) {
      const key = kv.key.toString().slice(this.k.prefix.length);
      const val = kv.value.toString();
      const [kind, ...rest] = key.split('/');
      const name = rest.join('/');
      if (kind === 'config') s.config = JSON.parse(val) as ClusterConfig;
      else if (kind === 'defs' && rest[0] === 'vm') {
        const doc = parseDefinitions(val, `etcd:${key}`)[0];
        s.defs.set(rest[1]!, { text: val, spec: doc && !doc.issues.length ? (doc.spec as VmSpec) : undefined });
      } else if (kind === 'defs' && rest[0] === 'network') s.netDefs.set(rest[1]!, val);
      else if (kind === 'desired') {
        s.desired.set(name, JSON.parse(val) as Desired);
        s.desiredRev.set(name, String(kv.mod_revision));
      } else if (kind === 'owner') s.owner.set(name, val);
      else if (kind === 'hosts') s.hosts.set(name, JSON.parse(val) as HostInfo);
      else if (kind === 'migrate') s.migrations.set(name, JSON.parse(val) as Migration);
    }
    return s;
  }

  private task(name: string, fn: () => Promise<void>): void {
    if (this.tasks.has(name)) return;
    const p = fn()
      .catch((e: unknown) => this.log(`${name}: ${(e as Error).message}`))
      .finally(() => {
        this.tasks.delete(name);
        this.kick();
      });
    this.tasks.set(name, p);
  }

  /** The cluster's definition of a VM, and of the networks its NICs use, into this host's config (startVm reads them there; it brings bridges up and makes the taps). */
  private syncDef(name: string, text: string): void {
    const put = (kind: 'vm' | 'network', n: string, t: string) => {
      let cur: string | undefined;
      try {
        cur = fs.readFileSync(path.join(kind === 'vm' ? this.o.paths.vmDefs : this.o.paths.netDefs, `${n}.yaml`), 'utf8');
      } catch {
        cur = undefined;
      }
      if (cur?.trimEnd() !== t.trimEnd()) writeDef(this.o.paths, kind, n, t);
    };
    put('vm', name, text);
    const spec = parseDefinitions(text)[0]?.spec as VmSpec | undefined;
    for (const nic of spec?.nics ?? []) {
      const t = nic.network ? this.netDefs.get(nic.network) : undefined;
      if (t) put('network', nic.network!, t);
    }
  }

  private async reconcile(): Promise<void> {
    if (this.stopping || this.fenced || !this.leaseId) return;
    const s = await this.snapshot();
    this.cfg = s.config;
    this.netDefs = s.netDefs;
    const me = this.o.host;
    const { vmStatus } = await import('../vm/status.js');
    const { procStat } = await import('../vm/proc.js');
    const names = new Set([...s.defs.keys(), ...listNames(this.o.paths, 'vm')]);
    const local = new Map<string, { state: string; pid?: number }>();
    for (const n of names) {
      if (this.tasks.has(n)) continue; // a start/stop/migration is changing it right now
      const st = await vmStatus(this.o.paths, n).catch(() => undefined);
      if (st) local.set(n, { state: st.state, pid: st.pid });
    }
    // The watchdog's list: every HA QEMU of this host, whoever owns it.
    this.haPids = [...names]
      .filter((n) => s.defs.get(n)?.spec?.ha)
      .map((n) => ({ n, st: local.get(n) }))
      .filter((x) => x.st?.pid && x.st.state !== 'stopped' && x.st.state !== 'crashed')
      .map((x): Feed['ha'][number] => ({ vm: x.n, pid: x.st!.pid!, starttime: procStat(x.st!.pid!)?.starttime }))
      .concat(this.haPids.filter((h) => this.tasks.has(h.vm)));
    this.feed();
    if (!this.safeToAct()) return;

    const placed: Placed[] = [...s.desired.entries()]
      .filter(([, d]) => d.state === 'running' && d.host)
      .map(([vm, d]) => ({ vm, host: d.host!, memory: s.defs.get(vm)?.spec?.memory ?? 0, antiAffinity: s.defs.get(vm)?.spec?.antiAffinity }));

    for (const n of names) {
      if (this.tasks.has(n)) continue;
      // VMs defined only on this host (kvmctl apply without the cluster) are not the cluster's business.
      if (!s.defs.has(n) && !s.desired.has(n) && !s.owner.has(n)) continue;
      const def = s.defs.get(n);
      const spec = def?.spec;
      const d = s.desired.get(n);
      const owner = s.owner.get(n);
      const m = s.migrations.get(n);
      const st = local.get(n);
      const runningHere = !!st && st.state !== 'stopped' && st.state !== 'crashed';

      // Live migration (src/cluster/agent-migrate.ts), destination side.
      const mig = await import('./agent-migrate.js');
      const inc = mig.readIncoming(this.o.paths, n);
      if (inc && !(m && m.id === inc.id && m.to === me && m.state !== 'failed' && m.state !== 'done')) {
        // What an incoming migration made here is either the VM's now or undone.
        if (owner === me) fs.rmSync(path.join(this.o.paths.data, 'vms', n, 'incoming.json'), { force: true });
        else {
          this.task(n, () => mig.cleanupIncoming(this.mctx(), n, m?.id === inc.id ? `migration ${m.state}` : 'the migration is gone'));
          continue;
        }
      }
      if (m && m.to === me && def && spec) {
        if (m.state === 'requested' && !runningHere && m.disks !== undefined) {
          this.task(n, () => mig.incoming(this.mctx(), n, def.text, spec, m));
          continue;
        }
        if ((m.state === 'listening' || m.state === 'migrating') && runningHere) {
          this.task(n, () => mig.takeOver(this.mctx(), n, spec, m));
          continue;
        }
        if (m.state === 'listening' || m.state === 'migrating' || m.state === 'requested') continue;
      }
      // Source side.
      if (m && m.from === me && owner === me && m.state === 'requested' && m.disks === undefined && runningHere && spec) {
        this.task(n, () => mig.describeDisks(this.mctx(), n, spec, m));
        continue;
      }
      if (m && m.from === me && owner === me && m.state === 'listening' && runningHere) {
        this.task(n, () => mig.migrateOut(this.mctx(), n, m));
        continue;
      }
      if (m && m.from === me && m.state === 'switched') {
        this.task(n, () => mig.finishSource(this.mctx(), n, spec, m, runningHere));
        continue;
      }

      if (owner === me) {
        if (!d || d.state !== 'running' || (d.host && d.host !== me)) {
          this.task(n, () => this.stopAndRelease(n, runningHere, spec));
        } else if (!runningHere && def) {
          this.task(n, () => this.startHere(n, def.text));
        }
      } else if (owner === undefined) {
        if (d?.state === 'running' && d.host === me && def) {
          this.task(n, () => this.claimAndStart(n, def.text, s.desiredRev.get(n)!, runningHere));
        } else if (d?.state === 'running' && d.host && d.host !== me && !s.hosts.has(d.host) && spec?.ha) {
          this.maybeFailOver(n, spec, d, s, placed);
        } else {
          this.orphanSince.delete(n);
          if (runningHere && !(m && m.to === me)) this.task(n, () => this.stopForeign(n, 'nobody owns it and it is not desired here'));
        }
      } else if (runningHere) {
        // Owned by another host: never two copies.
        this.task(n, () => this.stopForeign(n, `owned by ${owner}`));
      }
      if (owner === me) await this.observe(n, st);
    }
  }

  private async observe(n: string, st: { state: string; pid?: number } | undefined): Promise<void> {
    const o: Observed = { host: this.o.host, state: st?.state ?? 'stopped', pid: st?.pid, at: '' };
    const sig = JSON.stringify(o);
    if (this.observedSent.get(n) === sig || !this.leaseId) return;
    await withTimeout(this.c.put(this.k.observed(n)).value(JSON.stringify({ ...o, at: new Date().toISOString() })).lease(this.leaseId).exec(), 2000, 'observed');
    this.observedSent.set(n, sig);
  }

  private async claimAndStart(n: string, text: string, desiredRev: string, runningHere: boolean): Promise<void> {
    if (!this.safeToAct()) return;
    const r = await withTimeout(
      this.c
        .if(this.k.owner(n), 'Version', '==', 0)
        .and(this.k.desired(n), 'Mod', '==', Number(desiredRev))
        .then(this.c.put(this.k.owner(n)).value(this.o.host).lease(this.leaseId!))
        .commit(),
      2000,
      'claim',
    );
    if (!r.succeeded) return;
    this.log(`owns ${n}`);
    if (!runningHere) await this.startHere(n, text);
  }

  private async startHere(n: string, text: string): Promise<void> {
    if (!this.safeToAct()) return;
    this.syncDef(n, text);
    const { startVm } = await import('../vm/start.js');
    const r = await startVm(this.o.paths, n, { netns: this.o.netns, log: () => undefined });
    this.log(`started ${n} (pid ${r.pid})`);
  }

  private async stopAndRelease(n: string, runningHere: boolean, spec: VmSpec | undefined): Promise<void> {
    if (runningHere) {
      const { stopVm } = await import('../vm/stop.js');
      const r = await stopVm(this.o.paths, n, { timeoutSec: Math.min(spec?.stopTimeout ?? 30, 30) }).catch(async () => (await import('../vm/stop.js')).killVm(this.o.paths, n));
      this.log(`stopped ${n} (${r.how})`);
    }
    await withTimeout(
      this.c.if(this.k.owner(n), 'Value', '==', this.o.host).then(this.c.delete().key(this.k.owner(n)), this.c.delete().key(this.k.observed(n))).commit(),
      2000,
      'release',
    );
    this.log(`released ${n}`);
  }

  private async stopForeign(n: string, why: string): Promise<void> {
    const { killVm } = await import('../vm/stop.js');
    await killVm(this.o.paths, n).catch(() => undefined);
    this.log(`killed local copy of ${n}: ${why}`);
  }

  private maybeFailOver(n: string, spec: VmSpec, d: Desired, s: Snapshot, placed: Placed[]): void {
    const since = this.orphanSince.get(n) ?? Date.now();
    this.orphanSince.set(n, since);
    if (Date.now() - since < s.config.marginMs) {
      setTimeout(() => this.kick(), s.config.marginMs - (Date.now() - since) + 20);
      return;
    }
    const notShared = localDisks(spec, s.config.sharedStorage);
    if (notShared.length) {
      this.log(`cannot restart HA VM ${n}: disk ${notShared.join(', ')} is not on shared storage`);
      return;
    }
    let target: string;
    try {
      // A network defined in the cluster can be brought up on any host.
      const hosts = [...s.hosts.values()].map((x) => ({ ...x, networks: [...x.networks, ...s.netDefs.keys()] }));
      target = place(spec, hosts, placed, { exclude: [d.host!], sharedStorage: s.config.sharedStorage }).host;
    } catch (e) {
      this.log(`cannot restart HA VM ${n}: ${(e as Error).message}`);
      return;
    }
    if (target !== this.o.host) return; // the chosen host does it
    this.task(n, async () => {
      if (!this.safeToAct()) return;
      const nd: Desired = { state: 'running', host: this.o.host, placedBy: `failover from ${d.host}`, at: new Date().toISOString() };
      const r = await withTimeout(
        this.c
          .if(this.k.owner(n), 'Version', '==', 0)
          .and(this.k.desired(n), 'Mod', '==', Number(s.desiredRev.get(n)))
          .then(this.c.put(this.k.owner(n)).value(this.o.host).lease(this.leaseId!), this.c.put(this.k.desired(n)).value(JSON.stringify(nd)))
          .commit(),
        2000,
        'failover',
      );
      if (!r.succeeded) return;
      this.orphanSince.delete(n);
      this.log(`HA: restarting ${n} here (host ${d.host} lost its lease ${Date.now() - since} ms ago + margin)`);
      // For every serve of the cluster (src/cluster/events.ts); not awaited: the restart comes first.
      void recordEvent(this.c, this.k, { type: 'failover', vm: n, from: d.host!, to: this.o.host, at: nd.at, by: this.o.host, message: `host ${d.host} lost its lease; restarted on ${this.o.host}` }, this.log);
      // RBD volumes: break the dead owner's exclusive locks (and blocklist it) first (src/storage/fence.ts).
      if (spec.disks.some((x) => x.storage)) for (const l of await (await import('../storage/fence.js')).fenceVolumes(this.o.paths, spec, this.o.netns)) this.log(`HA: ${n}: ${l}`);
      await this.startHere(n, s.defs.get(n)!.text);
    });
  }

  /** What the migration steps (src/cluster/agent-migrate.ts) may use of this agent. */
  private mctx(): MigrationCtx {
    return {
      c: this.c,
      k: this.k,
      paths: this.o.paths,
      host: this.o.host,
      addr: this.o.addr,
      netns: this.o.netns,
      cfg: this.cfg,
      leaseId: () => this.leaseId,
      safeToAct: () => this.safeToAct(),
      log: this.log,
      syncDef: (n, t) => this.syncDef(n, t),
      trackHa: async (vm, pid) => void this.haPids.push({ vm, pid, starttime: (await import('../vm/proc.js')).procStat(pid)?.starttime }),
    };
  }

  /**
   * Clean stop (SIGTERM): non-HA VMs keep running (their ownership lapses with the lease and the
   * next agent on this host takes it back); HA VMs are quit first — nobody would hold the lock they
   * run under — then the lease is revoked so other hosts restart them without waiting for the TTL.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.allSettled([...this.tasks.values()]);
    const { killVm } = await import('../vm/stop.js');
    for (const h of this.haPids) {
      await killVm(this.o.paths, h.vm).catch(() => undefined);
      this.log(`stopped HA VM ${h.vm}: the agent is leaving`);
    }
    if (this.lease && !this.fenced) await withTimeout(this.lease.revoke(), 2000, 'lease revoke').catch(() => undefined);
    try {
      writeFeed(this.feedFile, { agentPid: process.pid, fenceAt: 0, ha: [], stop: true, at: Date.now() });
    } catch {
      /* nothing to tell */
    }
    await this.watcher?.cancel().catch(() => undefined);
    for (const r of this.renewers) r.close();
    this.c?.close();
  }
}

export async function runAgent(o: AgentOptions): Promise<void> {
  const a = new Agent(o);
  await a.start();
  await new Promise<void>((resolve) => {
    const done = () => void a.stop().then(resolve);
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
}
