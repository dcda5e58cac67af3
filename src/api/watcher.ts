/**
 * The server's view of every VM, kept current however the VM changes (the API, the CLI, the
 * guest powering off, a crash): fs.watch on the runtime and definition dirs plus a reconcile
 * every second, from files and /proc only (no QMP on the CLI's socket). For each running VM the
 * watcher holds one QMP connection on the VM's second socket, qmp-events.sock: QMP events go to
 * the event bus, STOP/RESUME give paused/running, and the metrics read query-blockstats over it.
 *
 * State changes are published as `state` events and handed to `onTransition` (the supervisor).
 */
import fs from 'node:fs';
import path from 'node:path';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { defPath, listNames } from '../definition/store.js';
import { isVmLocked } from '../vm/lock.js';
import { observe, type LastExit, type Observed } from '../vm/state.js';
import { vmStatus } from '../vm/status.js';
import type { VmStateName } from './contract.js';
import type { EventBus } from './events.js';

export type Transition = { name: string; previous: VmStateName | null; state: VmStateName; lastExit?: LastExit; pid?: number; initial: boolean };

type Entry = {
  state: VmStateName;
  pid?: number;
  sig: string;
  qmp?: QmpClient;
  qmpConnecting?: boolean;
  /** QEMU's run state as the events connection knows it. */
  paused?: boolean;
  nextQmpTry?: number;
  /** The files' and /proc's view at the last reconcile. */
  obs?: Observed;
};

export class VmWatcher {
  private readonly vms = new Map<string, Entry>();
  private timer?: NodeJS.Timeout;
  private watchers: fs.FSWatcher[] = [];
  private pending?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private defs = new Set<string>();
  private defStamps = new Map<string, string>();
  private first = true;

  constructor(
    private readonly paths: Paths,
    private readonly bus: EventBus,
    private readonly onTransition: (t: Transition) => void = () => undefined,
    private readonly intervalMs = 1000,
  ) {}

  /** First reconcile (adopts every running VM: connects its events socket), then keep watching. */
  async start(): Promise<void> {
    await this.reconcile();
    for (const dir of [path.join(this.paths.run, 'vms'), this.paths.vmDefs]) {
      fs.mkdirSync(dir, { recursive: true });
      try {
        // Not recursive: lock dirs (run/vms/NAME.lock) and VM dirs appear here when a start or stop
        // begins; what happens inside a VM's dir (the guest writing serial.log) is left to the reconcile.
        const w = fs.watch(dir, () => this.kick());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        /* the periodic reconcile still sees everything */
      }
    }
    this.timer = setInterval(() => this.kick(0), this.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.pending);
    for (const w of this.watchers) w.close();
    await this.running?.catch(() => undefined);
    await Promise.all([...this.vms.values()].map((e) => e.qmp?.close().catch(() => undefined)));
    this.vms.clear();
  }

  state(name: string): VmStateName | undefined {
    return this.vms.get(name)?.state;
  }

  /** What the last reconcile read from the VM's runtime files (the list serves it without re-reading). */
  observed(name: string): Observed | undefined {
    return this.vms.get(name)?.obs;
  }

  /** The events connection of a running VM (metrics use it for query-blockstats). */
  qmp(name: string): QmpClient | undefined {
    return this.vms.get(name)?.qmp;
  }

  /** Reconcile soon (debounced): something changed on disk. */
  kick(delayMs = 30): void {
    if (this.stopped) return;
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.reconcile();
    }, delayMs);
  }

  /** One pass over every VM; concurrent calls coalesce into one more pass. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch(() => undefined);
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const names = listNames(this.paths, 'vm');
    const nameSet = new Set(names);
    if (!this.first) {
      for (const n of names) if (!this.defs.has(n)) this.bus.publish({ kind: 'definition', vm: n, action: 'created' });
      for (const n of this.defs) if (!nameSet.has(n)) this.bus.publish({ kind: 'definition', vm: n, action: 'removed' });
    }
    // A definition edited in place (API PUT, an editor, `kvmctl apply`): 'updated'.
    const stamps = new Map<string, string>();
    for (const n of names) {
      try {
        const st = fs.statSync(defPath(this.paths, 'vm', n));
        stamps.set(n, `${st.mtimeMs}:${st.size}:${st.ino}`);
      } catch {
        /* removed meanwhile */
      }
      const was = this.defStamps.get(n);
      if (!this.first && was !== undefined && this.defs.has(n) && was !== stamps.get(n)) this.bus.publish({ kind: 'definition', vm: n, action: 'updated' });
    }
    this.defStamps = stamps;
    this.defs = nameSet;
    for (const [n, e] of this.vms) {
      if (!nameSet.has(n)) {
        await e.qmp?.close().catch(() => undefined);
        this.vms.delete(n);
      }
    }
    await Promise.all(names.map((n) => this.check(n).catch(() => undefined)));
    this.first = false;
  }

  private async check(name: string): Promise<void> {
    const o = observe(this.paths, name);
    const e = this.vms.get(name);
    if (e) e.obs = o;
    const sig = `${o.phase}|${o.pid ?? ''}|${o.run ? 1 : 0}|${o.run?.stoppingBy ?? ''}|${o.lastExit?.at ?? ''}|${e?.paused ? 'p' : ''}|${e?.qmp ? 'q' : ''}`;
    // Nothing moved and the state is final: skip the expensive parts.
    if (e && e.sig === sig && e.state !== 'starting' && e.state !== 'stopping') {
      if (o.phase === 'alive') this.ensureQmp(name, e);
      return;
    }
    let state: VmStateName;
    let lastExit = o.lastExit;
    if (o.phase === 'alive') {
      if (o.run?.stoppingBy) state = 'stopping';
      else if (!o.run) state = 'starting';
      else state = e?.paused ? 'paused' : 'running';
    } else if (await isVmLocked(this.paths, name)) {
      state = e?.state === 'stopping' || o.run?.stoppingBy ? 'stopping' : 'starting';
    } else if (o.phase === 'died' || o.phase === 'exited-clean') {
      // QEMU is gone and nobody holds the lock: let status decide (it cleans up and records how it ended).
      const s = await vmStatus(this.paths, name);
      state = s.state;
      lastExit = s.lastExit;
    } else {
      state = o.lastExit?.how === 'crashed' ? 'crashed' : 'stopped';
    }
    const entry: Entry = e ?? { state, sig };
    const previous = e ? e.state : null;
    entry.sig = sig;
    entry.obs = o;
    entry.pid = o.phase === 'alive' ? o.pid : undefined;
    this.vms.set(name, entry);
    if (o.phase === 'alive') this.ensureQmp(name, entry);
    else if (entry.qmp) {
      const q = entry.qmp;
      entry.qmp = undefined;
      entry.paused = undefined;
      void q.close().catch(() => undefined);
    }
    if (previous !== state || !e) {
      entry.state = state;
      // The first pass only learns what is there (the supervisor reports adoptions).
      if (previous !== state && !this.first) {
        this.bus.publish({ kind: 'state', vm: name, state, previous, pid: entry.pid, reason: state === 'crashed' ? lastExit?.reason : undefined });
      }
      this.onTransition({ name, previous, state, lastExit, pid: entry.pid, initial: !e && this.first });
    }
  }

  private ensureQmp(name: string, e: Entry): void {
    if (e.qmp || e.qmpConnecting || (e.nextQmpTry && Date.now() < e.nextQmpTry)) return;
    const sock = path.join(vmRuntimeFiles(this.paths, name).dir, 'qmp-events.sock');
    if (!fs.existsSync(sock)) return; // a VM started before kvmctl had the events socket
    e.qmpConnecting = true;
    void (async () => {
      try {
        const c = await QmpClient.connect(sock, { timeoutMs: 3000 });
        if (this.stopped || this.vms.get(name) !== e) {
          await c.close();
          return;
        }
        e.qmp = c;
        c.on('event', (ev) => {
          this.bus.publish({ kind: 'qmp', vm: name, event: ev.event, data: ev.data });
          if (ev.event === 'STOP') e.paused = true;
          if (ev.event === 'RESUME') e.paused = false;
          if (ev.event === 'STOP' || ev.event === 'RESUME' || ev.event === 'SHUTDOWN') this.kick(0);
        });
        c.on('close', () => {
          if (e.qmp === c) e.qmp = undefined;
          this.kick(0);
        });
        const st = (await c.execute('query-status', undefined, { timeoutMs: 3000 })) as { running: boolean; status: string };
        e.paused = !st.running && st.status === 'paused';
        this.kick(0);
      } catch {
        e.nextQmpTry = Date.now() + 2000;
      } finally {
        e.qmpConnecting = false;
      }
    })();
  }
}
