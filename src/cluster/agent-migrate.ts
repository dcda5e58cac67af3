/**
 * The agents' sides of a live migration (src/cluster/agent.ts calls these from its reconcile loop):
 *
 *   requested (disks unset) ── source describes the disks to copy ──▶ requested (disks set)
 *   requested ── destination: fresh images, stale NVRAM/TPM moved aside, QEMU -incoming, NBD ──▶ listening
 *   listening ── source: mirror disks, migrate memory, end mirrors at the switch-over ──▶ migrating
 *   destination: QEMU runs → NBD stopped, clock set by the agent, ownership in one transaction ──▶ switched
 *   source: quits its paused copy, renames its now-stale disks/NVRAM/TPM state (kept) ──▶ done
 *
 * A failure anywhere is `failed`, and the source VM runs on untouched. The destination keeps a
 * record of what it made (<data>/vms/NAME/incoming.json) so that whatever it created is removed
 * and whatever it moved aside is put back when the migration fails, is abandoned, or the agent
 * restarts half-way.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { KvmError } from '../errors.js';
import { vmStateDir, type Paths } from '../host/paths.js';
import type { VmSpec } from '../definition/vm.js';
import { effectiveAgent, effectiveTpm } from '../definition/vm-effective.js';
import { getJson, withTimeout, type ClusterConfig, type Desired, type Keys, type Migration } from './etcd.js';
import { localDisks } from './placement.js';
import { cancelKey, recordEvent } from './events.js';

export type MigrationCtx = {
  c: Etcd3;
  k: Keys;
  paths: Paths;
  host: string;
  addr?: string;
  netns?: string;
  cfg: ClusterConfig;
  leaseId: () => string | undefined;
  safeToAct: () => boolean;
  log: (m: string) => void;
  syncDef: (name: string, text: string) => void;
  /** An HA VM's QEMU started here (the watchdog fences it). */
  trackHa: (vm: string, pid: number) => Promise<void>;
};

/** What the destination made or moved for one incoming migration. */
export type IncomingRecord = { id: string; from: string; created: string[]; moved: { from: string; to: string }[] };

const recordFile = (paths: Paths, name: string) => path.join(vmStateDir(paths, name), 'incoming.json');

export function readIncoming(paths: Paths, name: string): IncomingRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(paths, name), 'utf8')) as IncomingRecord;
  } catch {
    return undefined;
  }
}
function writeIncoming(paths: Paths, name: string, r: IncomingRecord): void {
  fs.mkdirSync(vmStateDir(paths, name), { recursive: true, mode: 0o700 });
  const f = recordFile(paths, name);
  fs.writeFileSync(`${f}.tmp`, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(`${f}.tmp`, f);
}

async function putMigration(x: MigrationCtx, n: string, m: Migration): Promise<void> {
  await withTimeout(x.c.put(x.k.migrate(n)).value(JSON.stringify({ ...m, at: new Date().toISOString() })).exec(), 2000, 'migration update');
}

const onShared = (x: MigrationCtx, file: string) => localDisks({ disks: [{ file }] } as Pick<VmSpec, 'disks'>, x.cfg.sharedStorage).length === 0;

/** The per-VM state files that travel inside the stream: kvmctl's own NVRAM copy and TPM state dir (not ones on shared storage). */
async function stateFiles(x: MigrationCtx, spec: VmSpec): Promise<string[]> {
  const out: string[] = [];
  const { effectiveFirmware } = await import('../definition/vm-effective.js');
  if (effectiveFirmware(spec) !== 'bios') {
    const { nvramPath } = await import('../vm/runtime-paths.js');
    const f = nvramPath(x.paths, spec);
    if (!onShared(x, f)) out.push(f, `${f}.json`);
  }
  if (effectiveTpm(spec)) out.push((await import('../vm/swtpm.js')).tpmStateDir(x.paths, spec.name));
  out.push(path.join(vmStateDir(x.paths, spec.name), 'backup.json')); // which backup the (migrated) dirty bitmaps count from
  return out;
}

/** Source: say which disks must be copied (read from the running QEMU); refusals fail the migration before the destination does anything. */
export async function describeDisks(x: MigrationCtx, n: string, spec: VmSpec, m: Migration): Promise<void> {
  try {
    const { describeLocalDisks } = await import('./migrate-disks.js');
    const disks = await describeLocalDisks(x.paths, spec, x.cfg.sharedStorage);
    // Copied disks take their dirty bitmaps along (QMP dirty-bitmaps capability), and with them
    // the record of the backup they count from — unless a backup was cut short (then the next is full anyway).
    const { readBackupState } = await import('../backup/create.js');
    const b = disks.length ? readBackupState(x.paths, n) : undefined;
    const backupState = b && !b.inProgress && b.generation ? { format: 1 as const, repo: b.repo, last: b.last, generation: b.generation } : undefined;
    await putMigration(x, n, { ...m, disks, ...(backupState ? { backupState } : {}) });
  } catch (e) {
    await putMigration(x, n, { ...m, state: 'failed', error: (e as Error).message });
  }
}

/** Destination: images, state moved aside, QEMU waiting with -incoming and the disks served over NBD. */
export async function incoming(x: MigrationCtx, n: string, text: string, spec: VmSpec, m: Migration): Promise<void> {
  const rec: IncomingRecord = { id: m.id, from: m.from, created: [], moved: [] };
  try {
    if (!x.addr) throw new KvmError('NO_ADDR', `host ${x.host} has no address for incoming migrations`, { hint: 'start the agent with --addr IP' });
    x.syncDef(n, text);
    const disks = m.disks ?? [];
    writeIncoming(x.paths, n, rec); // before anything is made: a crash from here on is cleaned up
    if (disks.length) {
      const { createTargetImages } = await import('./migrate-disks.js');
      rec.created.push(...(await createTargetImages(disks, x.paths)));
      writeIncoming(x.paths, n, rec);
    }
    // A vars file or TPM state left here by an earlier stay is stale: move it aside (never overwrite
    // it); what this start creates fresh receives the state from the stream.
    for (const f of await stateFiles(x, spec)) {
      if (fs.existsSync(f)) {
        const to = `${f}.before-migration-${m.id}`;
        fs.renameSync(f, to);
        rec.moved.push({ from: f, to });
      }
      rec.created.push(f);
      writeIncoming(x.paths, n, rec);
    }
    const port = 49152 + Math.floor(Math.random() * 10000);
    const uri = `tcp:${x.addr}:${port}`;
    const { startVm } = await import('../vm/start.js');
    const r = await startVm(x.paths, n, { incoming: uri, netns: x.netns, log: () => undefined });
    if (spec.ha) await x.trackHa(n, r.pid);
    let nbd: Migration['nbd'];
    if (disks.length) {
      nbd = { host: x.addr, port: port + 1 };
      await (await import('./migrate-disks.js')).exportDisks(x.paths, n, disks, nbd.host, nbd.port);
      await (await import('./migrate.js')).acceptBitmaps(x.paths, n);
    }
    x.log(`${n}: waiting for the migration on ${uri}${nbd ? `, disks ${disks.map((d) => d.id).join(', ')} on nbd ${nbd.host}:${nbd.port}` : ''} (pid ${r.pid})`);
    await putMigration(x, n, { ...m, state: 'listening', uri, nbd });
  } catch (e) {
    await cleanupIncoming(x, n, `the incoming side failed: ${(e as Error).message}`);
    await putMigration(x, n, { ...m, state: 'failed', error: `destination ${x.host}: ${(e as Error).message}` });
    await recordEvent(x.c, x.k, { type: 'migration', vm: n, from: m.from, to: m.to, at: new Date().toISOString(), state: 'failed', message: `destination ${x.host}: ${(e as Error).message}`, by: x.host }, x.log);
  }
}

/**
 * Destination: undo an incoming migration that did not end with this host owning the VM — its
 * QEMU is ended, the images and state it created are removed, what it moved aside is put back.
 */
export async function cleanupIncoming(x: MigrationCtx, n: string, why: string): Promise<void> {
  const rec = readIncoming(x.paths, n);
  const { killVm } = await import('../vm/stop.js');
  await killVm(x.paths, n).catch(() => undefined);
  if (rec) {
    for (const f of rec.created) fs.rmSync(f, { recursive: true, force: true });
    for (const mv of rec.moved) if (!fs.existsSync(mv.from) && fs.existsSync(mv.to)) fs.renameSync(mv.to, mv.from);
    fs.rmSync(recordFile(x.paths, n), { force: true });
  }
  x.log(`${n}: incoming migration${rec ? ` ${rec.id}` : ''} undone (${why}): removed ${rec?.created.length ?? 0} file(s) it made, put back ${rec?.moved.length ?? 0}`);
}

/** Source: mirror the disks, migrate, report progress (in its own key: it never races the ownership switch). */
export async function migrateOut(x: MigrationCtx, n: string, m: Migration): Promise<void> {
  const { migrateOut: run } = await import('./migrate.js');
  await putMigration(x, n, { ...m, state: 'migrating' });
  let progress = m.progress;
  let lastPut = 0;
  // One write at a time, in order: a progress update still in flight must never land after the
  // final numbers (the CLI would read a result without stats).
  let chain: Promise<unknown> = Promise.resolve();
  const putProgress = (p: Pick<Migration, 'progress' | 'stats'>) =>
    (chain = chain.then(() => withTimeout(x.c.put(x.k.progress(n)).value(JSON.stringify({ id: m.id, ...p })).exec(), 2000, 'migration progress')).catch(() => undefined));
  // A cancel asked on any host's serve (src/cluster/events.ts cancelKey), read every 250 ms.
  let cancelledBy: string | undefined;
  const poll = setInterval(() => {
    void getJson<{ id: string; by: string }>(x.c, cancelKey(x.k, n), 1000).then(
      (r) => void (r?.id === m.id && !cancelledBy && (cancelledBy = r.by) && x.log(`${n}: cancel asked by ${r.by}`)),
      () => undefined,
    );
  }, 250);
  let stats: NonNullable<Migration['stats']>;
  try {
    stats = await run(
      x.paths,
      n,
      m.uri!,
      (p) => {
        progress = p;
        if (Date.now() - lastPut > 300) {
          lastPut = Date.now();
          void putProgress({ progress: p });
        }
      },
      { disks: m.disks, nbd: m.nbd, bwlimit: m.bwlimit, cancelled: () => cancelledBy },
    );
  } catch (e) {
    x.log(`${n}: migration failed: ${(e as Error).message}`);
    await chain;
    await putMigration(x, n, { ...m, state: 'failed', progress, error: (e as Error).message });
    await recordEvent(x.c, x.k, { type: 'migration', vm: n, from: m.from, to: m.to, at: new Date().toISOString(), state: 'failed', message: (e as Error).message, by: x.host }, x.log);
    return;
  } finally {
    clearInterval(poll);
  }
  // The guest runs on the destination now: a slow etcd must not turn this into "failed".
  x.log(`${n}: migrated to ${m.to} in ${stats.totalTimeMs} ms (downtime ${stats.downtimeMs} ms${stats.mirrorMs !== undefined ? `, disks copied in ${stats.mirrorMs} ms` : ''})`);
  finalStats.set(m.id, stats);
  await putProgress({ progress, stats });
}

/** The numbers of migrations this agent sent, for the `done` record (in case the progress key write was lost). */
const finalStats = new Map<string, NonNullable<Migration['stats']>>();

/** Destination: once QEMU runs the guest, the NBD server goes, the guest clock is set, ownership moves in one transaction. */
export async function takeOver(x: MigrationCtx, n: string, spec: VmSpec | undefined, m: Migration): Promise<void> {
  const { qemuRunState } = await import('./migrate.js');
  const status = await qemuRunState(x.paths, n);
  if (status !== 'running' || !x.safeToAct()) {
    await new Promise((r) => setTimeout(r, 100));
    return;
  }
  if (m.disks?.length) await (await import('./migrate-disks.js')).stopExports(x.paths, n);
  const cur = await getJson<Migration>(x.c, x.k.migrate(n));
  const nd: Desired = { state: 'running', host: x.host, placedBy: `migrated from ${m.from}`, at: new Date().toISOString() };
  const r = await withTimeout(
    x.c
      .if(x.k.owner(n), 'Value', '==', m.from)
      .then(
        x.c.put(x.k.owner(n)).value(x.host).lease(x.leaseId()!),
        x.c.put(x.k.desired(n)).value(JSON.stringify(nd)),
        x.c.put(x.k.migrate(n)).value(JSON.stringify({ ...(cur ?? m), state: 'switched', at: new Date().toISOString() })),
      )
      .commit(),
    2000,
    'ownership switch',
  );
  if (!r.succeeded) return;
  fs.rmSync(recordFile(x.paths, n), { force: true }); // the files are the VM's now
  if (cur?.backupState ?? m.backupState) (await import('../backup/create.js')).writeBackupState(x.paths, n, (cur?.backupState ?? m.backupState)!);
  x.log(`${n}: owns it now (migrated from ${m.from})`);
  // The guest's clock stood still while it was paused for the switch-over (virsh domtime --sync).
  if (spec && effectiveAgent(spec)) {
    const { agentSyncTime } = await import('../vm/guest-agent.js');
    await agentSyncTime(x.paths, n).then(
      (t) => x.log(`${n}: guest clock set by its agent (was ${((t.host - t.before) / 1e6).toFixed(0)} ms behind)`),
      (e: Error) => x.log(`${n}: guest clock not set (${e.message})`),
    );
  }
}

/**
 * Source: the guest runs on the destination; quit the paused copy here, and rename the files the
 * destination now holds the live copies of (disks, NVRAM, TPM state): a cold start here must not
 * boot stale data, and nothing is deleted.
 */
export async function finishSource(x: MigrationCtx, n: string, spec: VmSpec | undefined, m: Migration, runningHere: boolean): Promise<void> {
  if (runningHere) {
    const { killVm } = await import('../vm/stop.js');
    await killVm(x.paths, n);
  }
  const cur = (await getJson<Migration>(x.c, x.k.migrate(n))) ?? m;
  if (cur.id !== m.id || cur.state === 'done') return; // done already (a reconcile from an older snapshot)
  const leftBehind: string[] = [];
  const files = [...(m.disks ?? []).map((d) => path.resolve(x.paths.images, d.file)), ...(spec ? await stateFiles(x, spec) : [])];
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    const to = `${f}.migrated-to-${m.to}-${m.id}`;
    fs.renameSync(f, to);
    leftBehind.push(to);
  }
  const stats = finalStats.get(m.id);
  finalStats.delete(m.id);
  await putMigration(x, n, { ...cur, state: 'done', leftBehind, ...(stats ? { stats } : {}) });
  await recordEvent(x.c, x.k, { type: 'migration', vm: n, from: m.from, to: m.to, at: new Date().toISOString(), state: 'done', message: stats?.downtimeMs !== undefined ? `downtime ${stats.downtimeMs} ms, total ${stats.totalTimeMs} ms` : undefined, by: x.host }, x.log);
  x.log(`${n}: source copy cleaned up${leftBehind.length ? `; kept as ${leftBehind.join(', ')}` : ''}`);
}
