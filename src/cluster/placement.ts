/**
 * Placement, a pure function: among live hosts that pass the constraints (the definition's
 * `hosts` list, its anti-affinity group, the networks and shared storage it needs, enough
 * uncommitted memory), pick the one with the most free memory; ties go to the host with fewer
 * VMs, then by name. Every host that is left out gets a reason, so a refusal explains itself.
 * Named storages (RBD volume disks): a host must have reported (src/cluster/storage-reach.ts)
 * that it reaches every storage the VM's volumes live in (`storageProblem`, also used by
 * migrate and `start --on`).
 */
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { VmSpec } from '../definition/vm.js';
import type { HostInfo } from './etcd.js';

export type Placed = { vm: string; host: string; memory: number; antiAffinity?: string };
export type PlacementResult = { host: string; freeAfter: number; considered: { host: string; free: number; ok: boolean; why?: string }[] };

type ClusterVm = Pick<VmSpec, 'name' | 'memory' | 'nics' | 'disks'> & { hosts?: string[]; antiAffinity?: string };

/** Disks outside the shared storage dirs (relative paths live in each host's own images dir). Volume disks (RBD) are shared by nature. */
export function localDisks(vm: Pick<VmSpec, 'disks'>, shared: string[]): string[] {
  return vm.disks.flatMap((d) => (d.file === undefined ? [] : [d.file])).filter((f) => !path.isAbsolute(f) || !shared.some((s) => f === s || f.startsWith(`${s.replace(/\/$/, '')}/`)));
}

/** Why host `h` cannot reach the storages of the VM's volume disks, or undefined (pure). */
export function storageProblem(vm: Pick<VmSpec, 'disks'>, h: Pick<HostInfo, 'storages'>): string | undefined {
  const need = [...new Set(vm.disks.flatMap((d) => (d.storage !== undefined && d.volume !== undefined ? [d.storage] : [])))];
  if (!need.length) return undefined;
  if (!h.storages) return `has not reported which storages it reaches yet (needs ${need.join(', ')}; its agent checks at start and every 30 s)`;
  for (const n of need) {
    const r = h.storages.find((x) => x.name === n);
    if (!r) return `does not define storage ${n} (kvmctl storage define -f FILE on that host)`;
    if (!r.ok) return `cannot reach storage ${n}: ${r.why ?? 'check failed'}`;
  }
  return undefined;
}

export function place(vm: ClusterVm, hosts: HostInfo[], placed: Placed[], opts: { exclude?: string[]; sharedStorage?: string[] } = {}): PlacementResult {
  const considered: PlacementResult['considered'] = [];
  const others = placed.filter((p) => p.vm !== vm.name);
  for (const h of [...hosts].sort((a, b) => a.name.localeCompare(b.name))) {
    const mine = others.filter((p) => p.host === h.name);
    const free = h.memTotal - mine.reduce((s, p) => s + p.memory, 0);
    const why = (() => {
      if (opts.exclude?.includes(h.name)) return 'excluded';
      if (vm.hosts?.length && !vm.hosts.includes(h.name)) return `not in the definition's hosts list (${vm.hosts.join(', ')})`;
      if (vm.antiAffinity) {
        const clash = mine.find((p) => p.antiAffinity === vm.antiAffinity);
        if (clash) return `runs ${clash.vm} of anti-affinity group "${vm.antiAffinity}"`;
      }
      const nets = vm.nics.map((n) => n.network).filter((n): n is string => !!n);
      const missing = nets.filter((n) => !h.networks.includes(n));
      if (missing.length) return `lacks network ${missing.join(', ')}`;
      const shared = vm.disks.flatMap((d) => (d.file === undefined ? [] : [d.file])).filter((f) => path.isAbsolute(f));
      const noStorage = shared.filter((f) => (opts.sharedStorage ?? []).some((s) => f.startsWith(`${s.replace(/\/$/, '')}/`)) && !h.storage.some((s) => f.startsWith(`${s.replace(/\/$/, '')}/`)));
      if (noStorage.length) return `does not mount the shared storage of ${noStorage.join(', ')}`;
      const reach = storageProblem(vm, h);
      if (reach) return reach;
      if (free < vm.memory) return `only ${Math.floor(free / 2 ** 20)} MiB uncommitted, needs ${Math.floor(vm.memory / 2 ** 20)} MiB`;
      return undefined;
    })();
    considered.push({ host: h.name, free, ok: !why, why });
  }
  const count = (h: string) => others.filter((p) => p.host === h).length;
  const ok = considered.filter((c) => c.ok).sort((a, b) => b.free - a.free || count(a.host) - count(b.host) || a.host.localeCompare(b.host));
  const best = ok[0];
  if (!best) {
    throw new KvmError('NO_HOST', `no host can run VM "${vm.name}"${hosts.length ? '' : ': no agent is alive'}`, {
      hint: considered.map((c) => `${c.host}: ${c.why}`).join('; ') || 'start kvmctl agent on the hosts (kvmctl cluster status shows them)',
      details: { considered },
    });
  }
  return { host: best.host, freeAfter: best.free - vm.memory, considered };
}
