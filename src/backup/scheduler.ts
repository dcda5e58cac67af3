/**
 * The backup tasks of `kvmctl serve`: every VM whose definition has `backup.schedule` is backed up
 * when due (then pruned with `backup.keep`), one VM at a time, into the host's default repository.
 * The last run of each is kept in <data>/vms/VM/backup-schedule.json (so a restarted server knows
 * what is due; a run missed while it was down happens once when it is back). `tick(now)` does the
 * work and is what tests drive with a clock of their own; `start()` calls it every 30 s.
 */
import fs from 'node:fs';
import path from 'node:path';
import { vmStateDir, type Paths } from '../host/paths.js';
import { listNames } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { readJson, writeJson } from '../vm/state.js';
import { nextRun, parseSchedule } from './schedule.js';

export type LastRun = { at: string; ok: boolean; id?: string; kind?: string; reason?: string; error?: string; pruned?: number };
type ScheduleState = { format: 1; since: string; last?: LastRun };
export type BackupTask = { vm: string; schedule: string; next: string; running: boolean; last?: LastRun };

const stateFile = (paths: Paths, vm: string) => path.join(vmStateDir(paths, vm), 'backup-schedule.json');

export class BackupScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: string | undefined;
  private busy: Promise<void> | undefined;

  constructor(
    private readonly paths: Paths,
    private readonly spec: (name: string) => VmSpec | undefined,
    private readonly log: (line: string) => void = () => undefined,
    /** serve's network namespace: a stopped VM's RBD volumes are opened there. */
    private readonly netns?: string,
  ) {}

  start(intervalMs = 30_000): void {
    this.timer = setInterval(() => void this.tick(new Date()), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.busy;
  }

  private state(vm: string, now: Date): ScheduleState {
    const s = readJson<ScheduleState>(stateFile(this.paths, vm));
    if (s?.format === 1) return s;
    const fresh: ScheduleState = { format: 1, since: now.toISOString() };
    fs.mkdirSync(vmStateDir(this.paths, vm), { recursive: true });
    writeJson(stateFile(this.paths, vm), fresh);
    return fresh;
  }

  /** Every scheduled VM with its next run and its last result. */
  tasks(now = new Date()): BackupTask[] {
    const out: BackupTask[] = [];
    for (const vm of listNames(this.paths, 'vm')) {
      const spec = this.spec(vm);
      const s = spec?.backup && parseSchedule(spec.backup.schedule);
      if (!spec?.backup || !s || typeof s === 'string') continue;
      const st = this.state(vm, now);
      out.push({ vm, schedule: spec.backup.schedule, next: nextRun(s, new Date(st.last?.at ?? st.since)).toISOString(), running: this.running === vm, ...(st.last ? { last: st.last } : {}) });
    }
    return out;
  }

  /** Run what is due at `now` (one VM after the other); resolves when done. Overlapping ticks wait. */
  async tick(now: Date): Promise<LastRun[]> {
    if (this.busy) await this.busy;
    const done: LastRun[] = [];
    const work = (async () => {
      for (const t of this.tasks(now)) {
        if (new Date(t.next) > now) continue;
        this.running = t.vm;
        done.push(await this.runOne(t.vm, now));
        this.running = undefined;
      }
    })();
    this.busy = work.finally(() => (this.busy = undefined));
    await this.busy;
    return done;
  }

  private async runOne(vm: string, now: Date): Promise<LastRun> {
    const spec = this.spec(vm)!;
    let last: LastRun;
    try {
      const r = await (await import('./create.js')).createBackup(this.paths, vm, { noFreeze: spec.backup!.freeze === false, netns: this.netns });
      last = { at: now.toISOString(), ok: true, id: r.manifest.id, kind: r.manifest.kind, ...(r.reason && r.manifest.kind === 'full' ? { reason: r.reason } : {}) };
      const k = spec.backup!.keep;
      if (k && Object.values(k).some((n) => n)) {
        const p = await (await import('./verify-prune.js')).pruneBackups(this.paths, vm, k, { netns: this.netns });
        last.pruned = p.removed.length;
      }
      this.log(`backup: ${vm}@${last.id} (${last.kind})${last.pruned ? `, pruned ${last.pruned}` : ''}`);
    } catch (e) {
      last = { at: now.toISOString(), ok: false, error: (e as Error).message };
      this.log(`backup: ${vm} failed: ${last.error}`);
    }
    const st = readJson<ScheduleState>(stateFile(this.paths, vm)) ?? { format: 1, since: now.toISOString() };
    writeJson(stateFile(this.paths, vm), { ...st, last });
    return last;
  }
}
