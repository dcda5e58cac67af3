/**
 * Live migration, the QEMU side. The destination agent starts QEMU with the same definition and
 * `-incoming tcp:ADDR:PORT` (QMP says `inmigrate`); the source agent runs QMP `migrate` and polls
 * `query-migrate` for progress; the destination takes ownership in one etcd transaction once its
 * QEMU runs; the source then quits its paused copy (src/cluster/agent.ts drives the steps).
 */
import { KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { effectiveFirmware, effectiveTpm } from '../definition/vm-effective.js';
import type { VmSpec } from '../definition/vm.js';
import type { Migration } from './etcd.js';
import { localDisks } from './placement.js';

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
  const local = localDisks(vm, sharedStorage);
  if (local.length) out.push(`disk ${local.join(', ')} is not on shared storage (${sharedStorage.join(', ') || 'none declared: kvmctl cluster init --shared-storage DIR'}); copying disks (drive-mirror) is not supported`);
  if (vm.cdroms.length) out.push(`it has CD-ROM ${vm.cdroms.map((c) => c.file).join(', ')}: eject it first (the destination may not have the ISO)`);
  // Per-VM state files live in <data>/vms/NAME on each host: the destination would run on its own
  // fresh copies, and the VM's boot entries, enrolled keys or sealed TPM keys would be lost at its
  // next cold start there. Until kvmctl moves them with the VM, refuse rather than lose them.
  if (effectiveTpm(vm)) out.push('it has a TPM: moving the TPM state with a live migration is not supported yet (its sealed keys would stay on this host)');
  const fw = effectiveFirmware(vm);
  const vars = vm.firmware?.vars;
  if (fw !== 'bios' && !(vars && localDisks({ disks: [{ file: vars }] } as Pick<VmSpec, 'disks'>, sharedStorage).length === 0))
    out.push(`it boots UEFI with its NVRAM in this host's state dir: put it on shared storage (firmware.vars: a path under ${sharedStorage.join(', ') || 'the shared storage'}) to migrate it`);
  return out;
}

/** Source side: migrate to `uri`, report progress about every 100 ms, resolve with the numbers when QEMU says completed. */
export async function migrateOut(paths: Paths, name: string, uri: string, onProgress: (p: NonNullable<Migration['progress']>) => void, timeoutMs = 120_000): Promise<NonNullable<Migration['stats']>> {
  const c = await QmpClient.connect(vmRuntimeFiles(paths, name).qmp, { timeoutMs: 5000 });
  try {
    await c.execute('migrate', { uri }, { timeoutMs: 5000 });
    const end = Date.now() + timeoutMs;
    let last = 0;
    for (;;) {
      const q = await c.execute<QueryMigrate>('query-migrate', undefined, { timeoutMs: 5000 });
      const status = q.status ?? 'none';
      if (Date.now() - last > 200 || status === 'completed') {
        onProgress({ status, transferred: q.ram?.transferred, remaining: q.ram?.remaining, total: q.ram?.total });
        last = Date.now();
      }
      if (status === 'completed') {
        return { totalTimeMs: q['total-time'], downtimeMs: q.downtime, setupTimeMs: q['setup-time'], transferredBytes: q.ram?.transferred };
      }
      if (status === 'failed' || status === 'cancelled') {
        throw new KvmError('MIGRATION_FAILED', `VM "${name}": migration to ${uri} ${status}${q['error-desc'] ? `: ${q['error-desc']}` : ''}`, { hint: 'the VM keeps running here; check that the destination agent is up and reachable' });
      }
      if (Date.now() > end) {
        await c.execute('migrate_cancel').catch(() => undefined);
        throw new KvmError('MIGRATION_TIMEOUT', `VM "${name}": migration to ${uri} did not finish within ${timeoutMs / 1000} s (status ${status})`, { hint: 'a guest that dirties memory faster than the link copies it never converges; the VM keeps running here' });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.close();
  }
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
