/**
 * Live migration, the QEMU side. The destination agent starts QEMU with the same definition and
 * `-incoming tcp:ADDR:PORT` (QMP says `inmigrate`); the source agent runs QMP `migrate` and polls
 * `query-migrate` for progress; the destination takes ownership in one etcd transaction once its
 * QEMU runs; the source then quits its paused copy (src/cluster/agent-migrate.ts drives the steps).
 * Local disks are copied alongside over NBD (src/cluster/migrate-disks.ts); the UEFI vars (pflash)
 * and the TPM state (tpm-emulator) travel inside the migration stream itself.
 */
import { KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { effectiveTpm } from '../definition/vm-effective.js';
import type { VmSpec } from '../definition/vm.js';
import type { MigDisk, Migration } from './etcd.js';
import { abortMirrors, completeMirrors, mirrorDisks } from './migrate-disks.js';

type QueryMigrate = {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  ram?: { transferred?: number; remaining?: number; total?: number };
  'error-desc'?: string;
};

/** What QEMU (or kvmctl) would refuse, said before anything is tried. */
export function migrationBlockers(vm: VmSpec, sharedStorage: string[]): string[] {
  const out: string[] = [];
  const p9 = vm.shares.filter((s) => s.driver === '9p');
  if (p9.length) out.push(`it has a 9p share (${p9.map((s) => `${s.tag} → ${s.path}`).join(', ')}): QEMU refuses with "Migration is disabled when VirtFS export path … is mounted"; remove the share or stop the VM and start it on the other host`);
  const vfs = vm.shares.filter((s) => s.driver === 'virtiofs');
  if (vfs.length) out.push(`it has a virtiofs share (${vfs.map((s) => s.tag).join(', ')}): QEMU 7.2 cannot migrate vhost-user-fs devices`);
  if (vm.cdroms.length) out.push(`it has CD-ROM ${vm.cdroms.map((c) => c.file).join(', ')}: eject it first (the destination may not have the ISO)`);
  // The UEFI vars travel in the stream (pflash) and land in a fresh vars file on the destination; the
  // TPM state likewise (swtpm's state blobs through QEMU's tpm-emulator). A TPM kept in one file of
  // the user's (tpm.state) has no fresh copy to receive it.
  const tpm = effectiveTpm(vm);
  if (tpm && typeof tpm === 'object' && 'state' in tpm && tpm.state) out.push(`its TPM state is the file ${String(tpm.state)}: a live migration moves TPM state only from kvmctl's own state dir; stop it and start it on the other host with that file there`);
  return out;
}

export type MigrateOutOptions = {
  timeoutMs?: number;
  /** Local disks to mirror into the destination's NBD exports first. */
  disks?: MigDisk[];
  nbd?: { host: string; port: number };
  /** Bytes/s for the memory stream and for each disk copy; unlimited when absent (QEMU's own default is 32 MiB/s). */
  bwlimit?: number;
  /** Who asked to cancel (a serve on any host, through etcd: src/cluster/events.ts), or undefined; polled with the progress. */
  cancelled?: () => string | undefined;
};

const UNLIMITED = 1e12; // bytes/s: what "no limit" means to QEMU's max-bandwidth (as libvirt does)

/**
 * Source side: mirror local disks (when any), migrate to `uri`, report progress about every 200 ms,
 * resolve with the numbers when QEMU says completed. With disks, the migration pauses before the
 * switch-over so the mirrors end in sync while the guest cannot write; any failure cancels the
 * migration and the mirrors, and the VM keeps running here on its own disks.
 */
export async function migrateOut(paths: Paths, name: string, uri: string, onProgress: (p: NonNullable<Migration['progress']>) => void, o: MigrateOutOptions = {}): Promise<NonNullable<Migration['stats']>> {
  const timeoutMs = o.timeoutMs ?? 600_000;
  const disks = o.disks ?? [];
  const c = await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 5000 });
  let started = false;
  let atSwitchover = false; // QEMU paused the guest for the mirrors to end
  try {
    let mirrorMs: number | undefined;
    if (disks.length) {
      if (!o.nbd) throw new KvmError('MIGRATION_FAILED', `VM "${name}": the destination named no NBD server for the disk copies`);
      const t0 = Date.now();
      await mirrorDisks(c, disks, o.nbd, {
        speed: o.bwlimit,
        cancelled: o.cancelled,
        timeoutMs,
        onProgress: (p) => onProgress({ status: 'mirroring', transferred: p.disks.reduce((a, d) => a + d.offset, 0), total: p.disks.reduce((a, d) => a + d.len, 0), disks: p.disks }),
      });
      mirrorMs = Date.now() - t0;
    }
    await c.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'pause-before-switchover', state: disks.length > 0 },
        // Copied disks take their dirty bitmaps along (the destination enabled it too: acceptBitmaps).
        { capability: 'dirty-bitmaps', state: disks.length > 0 },
      ],
    });
    await c.execute('migrate-set-parameters', { 'max-bandwidth': o.bwlimit ?? UNLIMITED });
    const cancelledBy = () => {
      const by = o.cancelled?.();
      return by ? new KvmError('MIGRATION_FAILED', `VM "${name}": migration to ${uri} cancelled (asked by ${by})`, { hint: 'the VM keeps running here' }) : undefined;
    };
    const early = cancelledBy();
    if (early) throw early;
    await c.execute('migrate', { uri }, { timeoutMs: 5000 });
    started = true;
    const end = Date.now() + timeoutMs;
    let last = 0;
    for (;;) {
      const q = await c.execute<QueryMigrate>('query-migrate', undefined, { timeoutMs: 5000 });
      const status = q.status ?? 'none';
      const cancel = status !== 'completed' ? cancelledBy() : undefined;
      if (cancel) throw cancel; // the catch below sends migrate_cancel
      if (Date.now() - last > 200 || status === 'completed') {
        onProgress({ status, transferred: q.ram?.transferred, remaining: q.ram?.remaining, total: q.ram?.total });
        last = Date.now();
      }
      // After migrate-continue, query-migrate can still say pre-switchover for a moment (the
      // migration thread moves on by itself): the mirrors are already ended and dismissed then.
      if (status === 'pre-switchover' && !atSwitchover) {
        atSwitchover = true;
        await completeMirrors(c, disks);
        await c.execute('migrate-continue', { state: 'pre-switchover' });
        continue;
      }
      if (status === 'completed') {
        return { totalTimeMs: q['total-time'], downtimeMs: q.downtime, setupTimeMs: q['setup-time'], transferredBytes: q.ram?.transferred, ...(disks.length ? { mirrorMs, diskBytes: disks.reduce((a, d) => a + d.size, 0) } : {}) };
      }
      if (status === 'failed' || status === 'cancelled') {
        throw new KvmError('MIGRATION_FAILED', `VM "${name}": migration to ${uri} ${status}${q['error-desc'] ? `: ${q['error-desc']}` : ''}`, { hint: 'the VM keeps running here; check that the destination agent is up and reachable' });
      }
      if (Date.now() > end) {
        throw new KvmError('MIGRATION_TIMEOUT', `VM "${name}": migration to ${uri} did not finish within ${timeoutMs / 1000} s (status ${status})`, { hint: 'a guest that dirties memory faster than the link copies it never converges; the VM keeps running here' });
      }
      await new Promise((r) => setTimeout(r, status === 'device' ? 10 : 100));
    }
  } catch (e) {
    if (started) await c.execute('migrate_cancel').catch(() => undefined);
    if (disks.length) await abortMirrors(c, disks);
    // Cancelled while QEMU held the guest at the switch-over: it runs on here (QEMU resumes a failed
    // migration itself; a guest a user paused stays paused).
    if (atSwitchover) {
      const st = await c.execute<{ status: string }>('query-status').catch(() => undefined);
      if (st && (st.status === 'paused' || st.status === 'finish-migrate')) await c.execute('cont').catch(() => undefined);
    }
    throw e;
  } finally {
    await c.close();
  }
}

/** Destination with copied disks: take the source's dirty bitmaps from the stream (both sides must enable it). */
export async function acceptBitmaps(paths: Paths, name: string): Promise<void> {
  const { qmpOnce } = await import('../vm/qmp-once.js');
  await qmpOnce(vmRuntimeFiles(paths, name).qmp, 'migrate-set-capabilities', { capabilities: [{ capability: 'dirty-bitmaps', state: true }] });
}

/** Whether QEMU left `inmigrate` and runs the guest (the destination may take ownership then). */
export async function qemuRunState(paths: Paths, name: string): Promise<string | undefined> {
  try {
    const c = await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 2000 });
    try {
      return (await c.execute<{ status: string }>('query-status', undefined, { timeoutMs: 2000 })).status;
    } finally {
      await c.close();
    }
  } catch {
    return undefined;
  }
}
