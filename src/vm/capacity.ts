/**
 * Capacity: a VM's vCPUs against the host's CPUs × the CPU overcommit ratio, its memory against
 * RAM + swap × the memory ratio (host.json `overcommit`, defaults 4 and 1). At apply the VM is
 * checked alone; at start together with every VM already running here. The numbers are in the
 * message. `capacityIssues` is pure; `hostCapacity` and `runningUsage` read the host.
 */
import fs from 'node:fs';
import os from 'node:os';
import { badInput, type ErrorIssue } from '../errors.js';
import { readHostConfig } from '../host/host-config.js';
import type { Paths } from '../host/paths.js';
import { formatSize } from '../definition/units.js';
import type { VmSpec } from '../definition/vm.js';
import { listNames, readVm } from '../definition/store.js';
import { observe } from './state.js';

export type HostCapacity = { cpus: number; ramBytes: number; swapBytes: number; overcommit: { cpu: number; memory: number } };
export type Usage = { vms: number; cpus: number; memBytes: number };

function meminfo(key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function hostCapacity(paths: Paths): HostCapacity {
  return { cpus: os.availableParallelism(), ramBytes: meminfo('MemTotal') || os.totalmem(), swapBytes: meminfo('SwapTotal'), overcommit: readHostConfig(paths).overcommit };
}

/** vCPUs and memory of the VMs whose QEMU is alive, except `except`. */
export function runningUsage(paths: Paths, except?: string): Usage {
  const u: Usage = { vms: 0, cpus: 0, memBytes: 0 };
  for (const n of listNames(paths, 'vm')) {
    if (n === except || observe(paths, n).phase !== 'alive') continue;
    try {
      const vm = readVm(paths, n);
      u.vms++;
      u.cpus += vm.cpu.count;
      u.memBytes += vm.memory;
    } catch {
      /* a broken definition of a running VM: status says why */
    }
  }
  return u;
}

export function capacityIssues(vm: Pick<VmSpec, 'cpu' | 'memory'>, host: HostCapacity, running: Usage = { vms: 0, cpus: 0, memBytes: 0 }): ErrorIssue[] {
  const issues: ErrorIssue[] = [];
  const others = running.vms ? ` + ${running.cpus} of ${running.vms} running VM${running.vms === 1 ? '' : 's'}` : '';
  const maxCpus = Math.floor(host.cpus * host.overcommit.cpu);
  if (vm.cpu.count + running.cpus > maxCpus) {
    issues.push({ path: 'cpu.count', message: `${vm.cpu.count} vCPUs${others} is more than this host allows: ${host.cpus} CPUs × overcommit ${host.overcommit.cpu} = ${maxCpus}` });
  }
  const maxMem = Math.floor((host.ramBytes + host.swapBytes) * host.overcommit.memory);
  if (vm.memory + running.memBytes > maxMem) {
    const mOthers = running.vms ? ` + ${formatSize(running.memBytes)} of running VMs` : '';
    issues.push({ path: 'memory', message: `${formatSize(vm.memory)}${mOthers} is more than this host has: RAM ${formatSize(host.ramBytes)} + swap ${formatSize(host.swapBytes)} × overcommit ${host.overcommit.memory} = ${formatSize(maxMem)}` });
  }
  return issues;
}

/** At start: refuse (exit 2, CAPACITY_EXCEEDED) when this VM does not fit next to the running ones. */
export function checkStartCapacity(paths: Paths, vm: VmSpec): void {
  const issues = capacityIssues(vm, hostCapacity(paths), runningUsage(paths, vm.name));
  if (issues.length) {
    throw badInput('CAPACITY_EXCEEDED', `VM "${vm.name}" does not fit on this host:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`, 'stop another VM, give this one fewer vCPUs or less memory, or raise overcommit in the host config (host.json)', issues);
  }
}
