/**
 * What a VM's tuned hardware is now, for GET routes and the web UI's Hardware card (docs/tuning.md
 * "HTTP API and web UI"): vCPUs present against cpu.count/cpu.maxCount, the pinning each QEMU
 * thread really has (Cpus_allowed_list in /proc/PID/task/TID/status, next to what cpu.pin asks
 * for), the usb-host devices plugged in (with their qom properties) and the definition's PCI
 * devices with the host driver holding each now. Changes go through src/vm/hotplug.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatCpuList, parseCpuList } from '../definition/cpu-list.js';
import { readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { sysfsRoot } from '../host/tuning-facts.js';
import { vfioRecordFile, type VfioRecord } from '../host/vfio-bind.js';
import { QmpClient } from '../qmp/client.js';
import { requireRunning } from './control.js';
import { pinPlan, processThreads } from './pin.js';
import { qmpOnce } from './qmp-once.js';
import { observe, readJson } from './state.js';
import { vmStatus } from './status.js';

export type CpuInfo = { name: string; running: boolean; boot: number; max: number; present?: number };

export async function cpuInfo(paths: Paths, name: string): Promise<CpuInfo> {
  const vm = readVm(paths, name);
  const base = { name, boot: vm.cpu.count, max: vm.cpu.maxCount ?? vm.cpu.count };
  const st = await vmStatus(paths, name);
  if (st.state !== 'running' && st.state !== 'paused') return { ...base, running: false };
  const present = ((await qmpOnce(vmRuntimeFiles(paths, name).qmp, 'query-cpus-fast')) as unknown[]).length;
  return { ...base, running: true, present };
}

// ---- pinning, read back ----

export type ThreadPin = { tid: number; what: string; wanted?: string; actual?: string; matches: boolean };

/** "0-1" ≡ "0,1": both through the one formatter. */
const norm = (l: string | undefined) => (l === undefined ? undefined : (() => {
  const p = parseCpuList(l);
  return p ? formatCpuList(p) : l;
})());

/**
 * Every thread of the QEMU process with what cpu.pin wants for it (none: no entry for it) and
 * what it has (`allowed(tid)`, undefined when the thread ended meanwhile). vCPUs first, then I/O
 * threads, then the emulator's. Pure.
 */
export function pinningRows(
  pin: VmSpec['cpu']['pin'],
  vcpus: { index: number; tid: number }[],
  iothreads: { id: string; tid: number }[],
  threads: number[],
  allowed: (tid: number) => string | undefined,
): ThreadPin[] {
  const wanted = new Map((pin ? pinPlan(pin, vcpus, iothreads, threads) : []).map((p) => [p.tid, p.cpus]));
  const row = (tid: number, what: string): ThreadPin => {
    const w = norm(wanted.get(tid));
    const a = norm(allowed(tid));
    return { tid, what, ...(w !== undefined ? { wanted: w } : {}), ...(a !== undefined ? { actual: a } : {}), matches: w === undefined || w === a };
  };
  const special = new Set([...vcpus.map((v) => v.tid), ...iothreads.map((t) => t.tid)]);
  return [
    ...[...vcpus].sort((a, b) => a.index - b.index).map((v) => row(v.tid, `vCPU ${v.index}`)),
    ...iothreads.map((t) => row(t.tid, `iothread ${t.id}`)),
    ...threads.filter((t) => !special.has(t)).map((t) => row(t, 'emulator')),
  ];
}

export function cpusAllowed(pid: number, tid: number): string | undefined {
  try {
    return /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

export type PinningReport = { name: string; pid: number; pinned: boolean; threads: ThreadPin[] };

/** The affinity of a running VM's threads as the kernel has it, against cpu.pin. */
export async function pinningReport(paths: Paths, name: string): Promise<PinningReport> {
  const vm = readVm(paths, name);
  const qmp = await requireRunning(paths, name);
  const pid = observe(paths, name).pid!;
  const c = await QmpClient.connect(qmp, { timeoutMs: 5000 });
  let cpus: { 'cpu-index': number; 'thread-id': number }[];
  let iots: { id: string; 'thread-id': number }[];
  try {
    cpus = (await c.execute('query-cpus-fast', undefined, { timeoutMs: 5000 })) as typeof cpus;
    iots = (await c.execute('query-iothreads', undefined, { timeoutMs: 5000 })) as typeof iots;
  } finally {
    await c.close();
  }
  const threads = pinningRows(
    vm.cpu.pin,
    cpus.map((x) => ({ index: x['cpu-index'], tid: x['thread-id'] })),
    iots.map((t) => ({ id: t.id, tid: t['thread-id'] })),
    processThreads(pid),
    (tid) => cpusAllowed(pid, tid),
  );
  return { name, pid, pinned: !!vm.cpu.pin, threads };
}

// ---- USB devices plugged in ----

export type UsbPlugged = { id: string; vendor?: string; product?: string; bus?: number; port?: string };

/** The usb-host devices of a running VM with what each selects (qom-get of vendorid/productid/hostbus/hostport). */
export async function usbPlugged(paths: Paths, name: string): Promise<UsbPlugged[]> {
  readVm(paths, name);
  const c = await QmpClient.connect(await requireRunning(paths, name), { timeoutMs: 5000 });
  try {
    const q = (cmd: string, args: Record<string, unknown>) => c.execute(cmd, args, { timeoutMs: 5000 });
    const devs = ((await q('qom-list', { path: '/machine/peripheral' })) as { name: string; type: string }[]).filter((p) => p.type === 'child<usb-host>');
    const out: UsbPlugged[] = [];
    for (const d of devs.sort((a, b) => a.name.localeCompare(b.name))) {
      const get = (property: string) => q('qom-get', { path: `/machine/peripheral/${d.name}`, property }).catch(() => undefined);
      const [vid, pidv, bus, port] = [await get('vendorid'), await get('productid'), await get('hostbus'), await get('hostport')];
      const hex = (n: unknown) => (typeof n === 'number' && n > 0 ? n.toString(16).padStart(4, '0') : undefined);
      out.push({
        id: d.name,
        ...(hex(vid) ? { vendor: hex(vid), product: hex(pidv) ?? '0000' } : {}),
        ...(typeof bus === 'number' && bus > 0 ? { bus } : {}),
        ...(typeof port === 'string' && port ? { port } : {}),
      });
    }
    return out;
  } finally {
    await c.close();
  }
}

// ---- PCI passthrough devices ----

export type PciState = { host: string; managed: boolean; multifunction?: boolean; rom?: string; driver?: string; iommuGroup?: number; takenByKvmctl: boolean };

/** The definition's pci: devices, the driver each has on the host now and whether this VM's start moved it to vfio-pci. */
export function pciDevices(paths: Paths, name: string, sysRoot = sysfsRoot()): PciState[] {
  const vm = readVm(paths, name);
  const rec = readJson<VfioRecord>(vfioRecordFile(vmRuntimeFiles(paths, name).dir));
  const taken = new Set((rec?.taken ?? []).map((t) => t.address));
  const link = (addr: string, what: string) => {
    try {
      return path.basename(fs.readlinkSync(path.join(sysRoot, 'bus/pci/devices', addr, what)));
    } catch {
      return undefined;
    }
  };
  return (vm.pci ?? []).map((p) => {
    const driver = link(p.host, 'driver');
    const group = link(p.host, 'iommu_group');
    return {
      host: p.host,
      managed: p.managed !== false,
      ...(p.multifunction !== undefined ? { multifunction: p.multifunction } : {}),
      ...(p.rom !== undefined ? { rom: typeof p.rom === 'boolean' ? (p.rom ? 'on' : 'off') : p.rom.file } : {}),
      ...(driver ? { driver } : {}),
      ...(group !== undefined && /^\d+$/.test(group) ? { iommuGroup: Number(group) } : {}),
      takenByKvmctl: taken.has(p.host),
    };
  });
}
