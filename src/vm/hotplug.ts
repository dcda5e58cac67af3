/**
 * Changes to a running VM over QMP (docs/tuning.md): the memory balloon (`kvmctl memory set|show`,
 * `memory.balloon`), vCPU hotplug up to `cpu.maxCount` with cpu.pin applied to the new threads
 * (`kvmctl cpu set`), and usb-host devices (`kvmctl usb attach|detach`, on the xHCI controller of a
 * VM with `usb:` entries or `usbController: true`). The QMP arguments are built by pure functions
 * (unit-tested as golden commands); nothing here is remembered across a restart: the definition is
 * what the next start uses.
 */
import fs from 'node:fs';
import { badInput, KvmError } from '../errors.js';
import { readVm } from '../definition/store.js';
import { formatSize, parseSize } from '../definition/units.js';
import type { UsbSpec } from '../definition/tuning.js';
import type { VmSpec } from '../definition/vm.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { requireRunning } from './control.js';
import { qmpOnce } from './qmp-once.js';
import { observe } from './state.js';

const MiB = 1024 * 1024;

// ---- balloon ----

export type BalloonInfo = { name: string; memory: number; actual: number; target?: number };

/** The guest memory a balloon target means, checked against the definition. Pure. */
export function balloonTarget(vm: Pick<VmSpec, 'name' | 'memory' | 'balloon'>, size: string): number {
  if (!vm.balloon) throw badInput('NO_BALLOON', `VM "${vm.name}" has no memory balloon`, `add memory: {size: ${formatSize(vm.memory)}, balloon: true} to its definition and restart it`);
  const bytes = parseSize(size);
  if (bytes === undefined) throw badInput('BAD_SIZE', `"${size}" is not a size`, 'e.g. 512M or 2G');
  if (bytes < 64 * MiB || bytes > vm.memory)
    throw badInput('BAD_SIZE', `a balloon target of ${formatSize(bytes)} is outside 64M–${formatSize(vm.memory)} (the VM's memory)`, `kvmctl memory set ${vm.name} ${formatSize(vm.memory)} gives the guest all its memory back`);
  return bytes;
}

export async function balloonInfo(paths: Paths, name: string): Promise<BalloonInfo> {
  const vm = readVm(paths, name);
  if (!vm.balloon) throw badInput('NO_BALLOON', `VM "${name}" has no memory balloon`, `add memory: {size: ${formatSize(vm.memory)}, balloon: true} to its definition and restart it`);
  const q = (await qmpOnce(await requireRunning(paths, name), 'query-balloon')) as { actual: number };
  return { name, memory: vm.memory, actual: q.actual };
}

/** QMP `balloon`: the guest's driver inflates or deflates towards the target (it needs virtio_balloon). */
export async function setBalloon(paths: Paths, name: string, size: string): Promise<BalloonInfo> {
  const vm = readVm(paths, name);
  const target = balloonTarget(vm, size);
  const qmp = await requireRunning(paths, name);
  await qmpOnce(qmp, 'balloon', { value: target });
  const q = (await qmpOnce(qmp, 'query-balloon')) as { actual: number };
  return { name, memory: vm.memory, actual: q.actual, target };
}

// ---- vCPU hotplug ----

export type HotpluggableCpu = { type: string; 'vcpus-count': number; props: Record<string, number>; 'qom-path'?: string };

/**
 * The `device_add` arguments that bring a VM from `present` to `want` vCPUs: the free slots of
 * `query-hotpluggable-cpus` in topology order (QEMU lists them highest first). Pure.
 */
export function cpuAddCommands(slots: HotpluggableCpu[], present: number, want: number): Record<string, unknown>[] {
  const order = (p: Record<string, number>) => [p['socket-id'] ?? 0, p['die-id'] ?? 0, p['core-id'] ?? 0, p['thread-id'] ?? 0];
  const free = slots
    .filter((s) => !s['qom-path'])
    .sort((a, b) => {
      const x = order(a.props);
      const y = order(b.props);
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
      return 0;
    });
  const out: Record<string, unknown>[] = [];
  for (let n = present, i = 0; n < want && i < free.length; i++) {
    const s = free[i]!;
    out.push({ driver: s.type, id: `vcpu${n}`, ...s.props });
    n += s['vcpus-count'] || 1;
  }
  return out;
}

export type CpuSetResult = { name: string; before: number; after: number; added: string[]; removed?: string[]; pinned?: { tid: number; cpus: string; what: string }[] };

/** `kvmctl cpu set VM N`: hotplug vCPUs up to N (≤ cpu.maxCount) and pin them as cpu.pin says, or unplug hotplugged ones down to N. */
export async function setCpus(paths: Paths, name: string, want: number): Promise<CpuSetResult> {
  const vm = readVm(paths, name);
  const max = vm.cpu.maxCount ?? vm.cpu.count;
  if (!Number.isInteger(want) || want < 1) throw badInput('BAD_CPU_COUNT', `"${want}" is not a vCPU count`, 'a whole number, at least 1');
  if (want > max)
    throw badInput('BAD_CPU_COUNT', `VM "${name}" can have at most ${max} vCPU${max === 1 ? '' : 's'} (cpu.maxCount${vm.cpu.maxCount === undefined ? ' is not set' : ` is ${max}`})`, `set cpu.maxCount in its definition and restart it: vCPU slots are made at start`);
  const qmp = await requireRunning(paths, name);
  const present = ((await qmpOnce(qmp, 'query-cpus-fast')) as unknown[]).length;
  const o = observe(paths, name);
  // QEMU 7.2 under TCG crashed (both times it was tried here) when a vCPU was plugged after one had been
  // unplugged: after an unplug, a TCG guest gets no more vCPUs until it is restarted.
  const unplugged = `${vmRuntimeFiles(paths, name).dir}/vcpu-unplugged`;
  if (want < present) return unplugCpus(vm, qmp, present, want, o.run?.accel === 'tcg' ? unplugged : undefined);
  if (want > present && o.run?.accel === 'tcg' && fs.existsSync(unplugged))
    throw badInput('CPU_REPLUG_TCG', `VM "${name}" runs under TCG and had a vCPU unplugged: QEMU under TCG crashes when a vCPU is plugged again after that`, `restart it (kvmctl restart ${name}) to get ${want} vCPUs, or set cpu.count`);
  const cmds = cpuAddCommands((await qmpOnce(qmp, 'query-hotpluggable-cpus')) as HotpluggableCpu[], present, want);
  for (const c of cmds) await qmpOnce(qmp, 'device_add', c, 10_000);
  const after = ((await qmpOnce(qmp, 'query-cpus-fast')) as unknown[]).length;
  if (after < want) throw new KvmError('CPU_HOTPLUG_FAILED', `VM "${name}" has ${after} vCPUs after the hotplug, not ${want}`, { hint: 'see kvmctl qmp VM \'{"execute":"query-hotpluggable-cpus"}\'' });
  // cpu.pin names every vCPU up to maxCount: the new threads get theirs now (emulator threads again too).
  const pid = o.pid;
  const pinned = vm.cpu.pin && pid ? await (await import('./pin.js')).applyPinning(vm, pid, qmp) : undefined;
  return { name, before: present, after, added: cmds.map((c) => String(c.id)), ...(pinned ? { pinned } : {}) };
}

/**
 * Fewer vCPUs: `device_del` of hotplugged vCPUs (the ones with a device id; the cpu.count vCPUs
 * made at start have none and stay), the newest first. The guest must eject each (ACPI): this
 * waits until QEMU reports the lower count, or says that the guest did not.
 */
async function unplugCpus(vm: VmSpec, qmp: string, present: number, want: number, marker: string | undefined, timeoutMs = 30_000): Promise<CpuSetResult> {
  if (want < vm.cpu.count)
    throw badInput('CPU_UNPLUG', `VM "${vm.name}" cannot go below its ${vm.cpu.count} boot vCPU${vm.cpu.count === 1 ? '' : 's'} (cpu.count); only hotplugged vCPUs can be removed`, `restart it with cpu.count: ${want}`);
  const cpus = (await qmpOnce(qmp, 'query-cpus-fast')) as { 'cpu-index': number; 'qom-path': string }[];
  const ids = cpus
    .map((c) => /^\/machine\/peripheral\/([^/]+)$/.exec(c['qom-path'])?.[1])
    .filter((x): x is string => !!x)
    .sort((a, b) => Number(b.replace(/\D/g, '')) - Number(a.replace(/\D/g, '')))
    .slice(0, present - want);
  if (marker && ids.length) fs.writeFileSync(marker, `${new Date().toISOString()} ${ids.join(' ')}\n`);
  for (const id of ids) await qmpOnce(qmp, 'device_del', { id }, 10_000);
  const end = Date.now() + timeoutMs;
  let after = present;
  while (Date.now() < end) {
    after = ((await qmpOnce(qmp, 'query-cpus-fast')) as unknown[]).length;
    if (after <= want) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (after > want)
    throw new KvmError('CPU_UNPLUG_TIMEOUT', `VM "${vm.name}": the guest did not eject ${after - want} of the vCPUs asked to go in ${timeoutMs / 1000} s (it has ${after})`, { hint: 'the guest needs ACPI CPU hotplug (CONFIG_ACPI_HOTPLUG_CPU) and must not have the vCPU busy; it may still eject it later' });
  return { name: vm.name, before: present, after, added: [], removed: ids };
}

// ---- USB hotplug ----

/** Whether the VM has the xHCI controller (usb0) a usb-host device plugs into. */
export const hasUsbController = (vm: Pick<VmSpec, 'usb' | 'usbController'>) => (vm.usb?.length ?? 0) > 0 || vm.usbController === true;

/** `046d:c52b` → {vendor, product}; `1-1.4` (bus-port, as lsusb -t and sysfs name it) → {bus, port}. Pure. */
export function parseUsbSelector(s: string): UsbSpec {
  let m = /^(?:0x)?([0-9a-fA-F]{4}):(?:0x)?([0-9a-fA-F]{4})$/.exec(s);
  if (m) return { vendor: m[1]!.toLowerCase(), product: m[2]!.toLowerCase() };
  m = /^(\d{1,3})-(\d+(?:\.\d+)*)$/.exec(s);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 255) return { bus: Number(m[1]), port: m[2]! };
  throw badInput('BAD_USB', `"${s}" is not a USB device`, 'VENDOR:PRODUCT in hex (046d:c52b, as lsusb shows it) or BUS-PORT (1-1.4)');
}

/** QMP `device_add` arguments for a usb-host device on usb0 (the same properties as the argv's usb-host). Pure. */
export function usbDeviceAdd(u: UsbSpec, id: string): Record<string, unknown> {
  const sel = 'vendor' in u ? { vendorid: Number.parseInt(u.vendor, 16), productid: Number.parseInt(u.product, 16) } : { hostbus: u.bus, hostport: u.port };
  return { driver: 'usb-host', id, bus: 'usb0.0', ...sel };
}

const USB_ID_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

export async function usbAttach(paths: Paths, name: string, selector: string, id?: string): Promise<{ name: string; id: string; device: UsbSpec }> {
  const vm = readVm(paths, name);
  const u = parseUsbSelector(selector);
  if (!hasUsbController(vm)) throw badInput('NO_USB_CONTROLLER', `VM "${name}" has no USB controller to plug into`, 'add usbController: true (or a usb: entry) to its definition and restart it');
  if (id !== undefined && !USB_ID_RE.test(id)) throw badInput('BAD_USB', `"${id}" is not a device id`, 'a letter, then letters, digits, "_" or "-" (at most 32)');
  const qmp = await requireRunning(paths, name);
  const taken = new Set(((await qmpOnce(qmp, 'qom-list', { path: '/machine/peripheral' })) as { name: string }[]).map((p) => p.name));
  let devId = id;
  if (devId === undefined) for (let i = 0; devId === undefined || taken.has(devId); i++) devId = `usbhot${i}`;
  else if (taken.has(devId)) throw badInput('USB_ID_TAKEN', `VM "${name}" already has a device "${devId}"`, `kvmctl usb detach ${name} ${devId}, or pick another --id`);
  await qmpOnce(qmp, 'device_add', usbDeviceAdd(u, devId), 10_000);
  return { name, id: devId, device: u };
}

export async function usbDetach(paths: Paths, name: string, id: string): Promise<{ name: string; id: string }> {
  readVm(paths, name);
  const qmp = await requireRunning(paths, name);
  const peripherals = (await qmpOnce(qmp, 'qom-list', { path: '/machine/peripheral' })) as { name: string; type: string }[];
  const dev = peripherals.find((p) => p.name === id);
  if (!dev) throw badInput('USB_NOT_FOUND', `VM "${name}" has no device "${id}"`, `kvmctl usb list ${name}`);
  if (dev.type !== 'child<usb-host>') throw badInput('USB_NOT_FOUND', `device "${id}" of VM "${name}" is a ${dev.type.replace(/^child<|>$/g, '')}, not a usb-host device`);
  await qmpOnce(qmp, 'device_del', { id }, 10_000);
  return { name, id };
}

/** The usb-host devices of a running VM (from the argv and hotplugged). */
export async function usbList(paths: Paths, name: string): Promise<{ id: string }[]> {
  readVm(paths, name);
  const qmp = await requireRunning(paths, name);
  const peripherals = (await qmpOnce(qmp, 'qom-list', { path: '/machine/peripheral' })) as { name: string; type: string }[];
  return peripherals.filter((p) => p.type === 'child<usb-host>').map((p) => ({ id: p.name })).sort((a, b) => a.id.localeCompare(b.id));
}
