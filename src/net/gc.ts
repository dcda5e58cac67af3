/**
 * Leftovers after a crash: taps and macvtaps marked `kvmctl:vm=NAME,…` whose VM is not running
 * and not being started or stopped (its lock held) are removed. Interfaces without a kvmctl mark
 * are never touched. (Without the lock check, one VM's start removed the taps another VM's
 * concurrent start had just made, before its QEMU wrote a pidfile: QEMU then made a bare tap of
 * the same name, on no bridge.)
 */
import fs from 'node:fs';
import type { Paths } from '../host/paths.js';
import { vmRuntimeFiles } from '../host/paths.js';
import { isVmLocked } from '../host/vm-lock-state.js';
import { deleteLink, listLinks, parseOwner, type IpOpts } from './ip.js';

/**
 * A VM runs when `<run>/vms/NAME/qemu.pid` holds the PID of a live process that is not a zombie.
 * (The lifecycle may pass its own, stricter `isRunning` to gc.)
 */
export function vmIsRunning(paths: Paths, name: string): boolean {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(vmRuntimeFiles(paths, name).pidfile, 'utf8').trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return true;
  }
}

export type GcResult = { removed: { ifname: string; vm: string; nic: string }[]; kept: { ifname: string; vm: string }[] };

export async function gcLinks(o: IpOpts & { paths: Paths; isRunning?: (vm: string) => boolean | Promise<boolean>; onlyVm?: string }): Promise<GcResult> {
  const isRunning = o.isRunning ?? (async (vm: string) => vmIsRunning(o.paths, vm) || (await isVmLocked(o.paths, vm)));
  const out: GcResult = { removed: [], kept: [] };
  const opts: IpOpts = { netns: o.netns };
  for (const l of await listLinks(opts)) {
    const owner = parseOwner(l.ifalias);
    if (owner?.kind !== 'vm') continue;
    if (o.onlyVm !== undefined && owner.vm !== o.onlyVm) continue;
    if (await isRunning(owner.vm)) {
      out.kept.push({ ifname: l.ifname, vm: owner.vm });
      continue;
    }
    if (await deleteLink(l.ifname, opts)) out.removed.push({ ifname: l.ifname, vm: owner.vm, nic: owner.nic });
  }
  return out;
}
