/**
 * Fencing of RBD volumes at an HA failover (issue #21): before the surviving host starts a VM whose
 * owner lost its lease, every exclusive lock still held on the VM's volumes is broken with
 * `rbd lock rm`, which also blocklists the old owner's client address in the cluster
 * (rbd_blocklist_on_break_lock, on by default): a cut-off host whose QEMU were still alive gets
 * EBLOCKLISTED on its next write instead of writing the image behind the new owner's back. Without
 * this the new QEMU would wait for the dead owner's watch to time out (osd_client_watch_timeout,
 * 30 s) before librbd breaks the lock itself. Only the failover path calls this — never a live
 * migration, where the source hands the lock over itself.
 */
import type { Paths } from '../host/paths.js';
import type { VmSpec } from '../definition/vm.js';
import { readRbdStorage } from './defs.js';
import { imageSpec, rbdRun } from './rbd.js';

export type Locker = { id: string; locker: string; address: string };

/** `rbd lock ls --format json`: a list in Pacific, an object keyed by lock id in older releases (pure). */
export function parseLocks(json: string): Locker[] {
  const v = JSON.parse(json || '[]') as unknown;
  if (Array.isArray(v)) return v.map((l: { id: string; locker: string; address: string }) => ({ id: l.id, locker: l.locker, address: l.address }));
  return Object.entries(v as Record<string, { locker: string; address: string }>).map(([id, l]) => ({ id, locker: l.locker, address: l.address }));
}

/** Break the locks on the VM's volumes; returns what was done, one line each, for the agent's log. */
export async function fenceVolumes(paths: Paths, vm: Pick<VmSpec, 'name' | 'disks'>, netns?: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of vm.disks) {
    if (d.storage === undefined || d.volume === undefined) continue;
    const s = await readRbdStorage(paths, d.storage);
    const t = { storage: s, netns };
    const spec = imageSpec(s, d.volume);
    for (const l of parseLocks(await rbdRun(t, ['lock', 'ls', '--format', 'json', spec], { timeoutMs: 30_000 }))) {
      await rbdRun(t, ['lock', 'rm', spec, l.id, l.locker], { timeoutMs: 30_000 });
      out.push(`broke the lock of ${l.locker} (${l.address}) on ${d.storage}/${d.volume}; that client is blocklisted`);
    }
  }
  return out;
}
