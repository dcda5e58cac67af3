/**
 * CPU pinning of a running VM (`cpu.pin`): vCPU threads from QMP `query-cpus-fast`, I/O threads
 * from `query-iothreads`, and every other thread of the QEMU process is the emulator's. Node has
 * no sched_setaffinity, so each thread gets `taskset -p -c LIST TID` (util-linux) through the one
 * spawn site. `pinPlan` is pure; `applyPinning` runs after start (src/vm/start.ts).
 * `kvmctl cpu set` (src/vm/hotplug.ts) runs `applyPinning` again after a vCPU hotplug; a live
 * migration's target pins at its start like any start (src/cluster/migrate.ts may call
 * `applyPinning` again once the migration completed).
 */
import fs from 'node:fs';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import { formatCpuList } from '../definition/cpu-list.js';
import type { VmSpec } from '../definition/vm.js';
import { qmpOnce } from './qmp-once.js';

export type PinEntry = { tid: number; cpus: string; what: string };

export function pinPlan(pin: NonNullable<VmSpec['cpu']['pin']>, vcpus: { index: number; tid: number }[], iothreads: { id: string; tid: number }[], threads: number[]): PinEntry[] {
  const out: PinEntry[] = [];
  const special = new Set<number>([...vcpus.map((v) => v.tid), ...iothreads.map((t) => t.tid)]);
  for (const v of vcpus) {
    const l = pin.vcpus?.[v.index];
    if (l) out.push({ tid: v.tid, cpus: formatCpuList(l), what: `vCPU ${v.index}` });
  }
  if (pin.iothreads) for (const t of iothreads) out.push({ tid: t.tid, cpus: formatCpuList(pin.iothreads), what: `iothread ${t.id}` });
  if (pin.emulator) for (const tid of threads) if (!special.has(tid)) out.push({ tid, cpus: formatCpuList(pin.emulator), what: 'emulator' });
  return out;
}

export function processThreads(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).filter((n) => n > 0).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** Pin the threads of a running VM as its definition says. Returns what was pinned. */
export async function applyPinning(vm: VmSpec, pid: number, qmpSocket: string): Promise<PinEntry[]> {
  const pin = vm.cpu.pin;
  if (!pin) return [];
  const cpus = (await qmpOnce(qmpSocket, 'query-cpus-fast')) as { 'cpu-index': number; 'thread-id': number }[];
  const iots = (await qmpOnce(qmpSocket, 'query-iothreads')) as { id: string; 'thread-id': number }[];
  const plan = pinPlan(
    pin,
    cpus.map((c) => ({ index: c['cpu-index'], tid: c['thread-id'] })),
    iots.map((t) => ({ id: t.id, tid: t['thread-id'] })),
    processThreads(pid),
  );
  for (const p of plan) {
    const r = await run(['taskset', '-p', '-c', p.cpus, String(p.tid)], { allowFailure: true, timeoutMs: 10_000 });
    // A worker thread may end between the listing and taskset: only vCPU and iothread failures count.
    if (r.exitCode !== 0 && p.what !== 'emulator')
      throw new KvmError('PIN_FAILED', `VM "${vm.name}": could not pin ${p.what} (thread ${p.tid}) to CPUs ${p.cpus}: ${r.stderr.trim()}`, { hint: 'taskset is part of util-linux' });
  }
  return plan;
}
