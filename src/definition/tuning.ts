/**
 * Production tuning in a VM definition (docs/tuning.md): CPU pinning, hugepage-backed and NUMA
 * memory, memory locking, I/O threads and queue counts, PCI (vfio) and USB passthrough.
 * Schemas here are imported by src/definition/vm.ts; `tuningIssues` is the cross-field check, pure and
 * tolerant of partly invalid input, so every problem is reported in the same run with its path.
 */
import { z } from 'zod';
import { NAME_RE, NAME_RULE } from './names.js';
import { parseSize } from './units.js';

export { formatCpuList, parseCpuList, HUGEPAGE_BYTES } from './cpu-list.js';
import { HUGEPAGE_BYTES, parseCpuList, formatCpuList } from './cpu-list.js';

const cpuList = (what: string) =>
  z.union([z.string(), z.number(), z.array(z.number())], { error: `${what} must be a CPU list such as 2, "0-3,6" or [0, 1]` }).transform((v, ctx) => {
    const r = parseCpuList(v);
    if (!r) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a ${what} (numbers, ranges such as "0-3", separated by commas)` });
      return z.NEVER;
    }
    return r;
  });

export const cpuPinSchema = z.strictObject({
  /** One entry per vCPU: vCPU i runs on the host CPUs of vcpus[i]. */
  vcpus: z.array(cpuList('CPU list')).optional(),
  /** QEMU's own threads (main loop, workers): everything that is neither a vCPU nor an iothread. */
  emulator: cpuList('CPU list').optional(),
  /** Every I/O thread of the VM (disks[].iothread). */
  iothreads: cpuList('CPU list').optional(),
});

export const HUGEPAGE_SIZES = ['2M', '1G'] as const;
export const NUMA_POLICIES = ['default', 'preferred', 'bind', 'interleave'] as const;

const sizeOf = (what: string) =>
  z.union([z.string(), z.number()], { error: `${what} must be a size such as 512M or 4G` }).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined || n < 1) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a size (use a number with K, M, G or T, e.g. 4G)` });
      return z.NEVER;
    }
    return n;
  });

export const numaNodeSchema = z.strictObject({
  /** The guest's vCPUs on this node (each vCPU on exactly one node). */
  cpus: cpuList('vCPU list'),
  memory: sizeOf('memory'),
  /** Host NUMA nodes this node's memory comes from (QEMU host-nodes). */
  hostNodes: cpuList('host node list').optional(),
  /** How strictly (QEMU policy); default bind when hostNodes is given. */
  policy: z.enum(NUMA_POLICIES).optional(),
});

/**
 * `memory.balloon`: a virtio-balloon device (libvirt's <memballoon>, Proxmox's balloon). true =
 * {freePageReporting: true}: the guest hands pages it freed back to the host (Linux ≥ 5.7).
 * deflateOnOom (libvirt's autodeflate): the guest takes ballooned memory back before its OOM killer runs.
 */
export const balloonSchema = z
  .union([z.boolean(), z.strictObject({ freePageReporting: z.boolean().default(true), deflateOnOom: z.boolean().default(false) })], { error: 'must be true, false or {freePageReporting, deflateOnOom}' })
  .transform((b) => (b === true ? { freePageReporting: true, deflateOnOom: false } : b === false ? undefined : b));
export type BalloonSpec = { freePageReporting: boolean; deflateOnOom: boolean };

/** The tuning keys of `memory:` when it is an object (`memory: {size: 4G, hugepages: 2M}`). */
export const memoryTuningShape = {
  hugepages: z.enum(HUGEPAGE_SIZES, { error: 'must be "2M" or "1G"' }).optional(),
  /** Allocate all guest memory at start (default: on with hugepages, so a shortfall fails the start, not the guest). */
  prealloc: z.boolean().optional(),
  /** Map guest memory shared (vhost-user, virtiofs); on by itself when a virtiofs share needs it. */
  share: z.boolean().optional(),
  /** mlock all guest memory (-overcommit mem-lock=on): no swapping, for real-time guests. */
  lock: z.boolean().default(false),
  numa: z.array(numaNodeSchema).min(1).optional(),
  balloon: balloonSchema.optional(),
};

export type MemoryTuning = {
  hugepages?: (typeof HUGEPAGE_SIZES)[number];
  prealloc?: boolean;
  share?: boolean;
  lock: boolean;
  numa?: { cpus: number[]; memory: number; hostNodes?: number[]; policy?: (typeof NUMA_POLICIES)[number] }[];
};

const hex4 = (what: string) => z.string().regex(/^(0x)?[0-9a-fA-F]{4}$/, { error: `${what} must be 4 hex digits such as 046d` }).transform((s) => s.replace(/^0x/, '').toLowerCase());

/** A PCI address "0000:01:00.0" or "01:00.0" (domain 0000 added). */
export const PCI_ADDR_RE = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$/;
export const pciSchema = z.strictObject({
  host: z.string().regex(PCI_ADDR_RE, { error: 'must be a PCI address such as 0000:01:00.0' }).transform((s) => (s.split(':').length === 2 ? `0000:${s}` : s).toLowerCase()),
  /** false: no option ROM (rombar=0); {file}: this ROM image instead of the device's. */
  rom: z.union([z.boolean(), z.strictObject({ file: z.string().min(1) })]).optional(),
  multifunction: z.boolean().optional(),
  /**
   * Default true (libvirt's managed='yes'): start binds every device of the IOMMU group to vfio-pci
   * and gives each back to its driver on stop (src/host/vfio-bind.ts), refusing while the host uses
   * one. false: the operator binds the group; start only checks it.
   */
  managed: z.boolean().optional(),
});

export const usbSchema = z.union(
  [
    z.strictObject({ vendor: hex4('vendor'), product: hex4('product') }),
    z.strictObject({ bus: z.number().int().min(1).max(255), port: z.string().regex(/^\d+(\.\d+)*$/, { error: 'must be a port path such as "2" or "1.4"' }) }),
  ],
  { error: 'must be {vendor, product} (hex ids such as 046d, c52b) or {bus, port}' },
);
export type UsbSpec = z.output<typeof usbSchema>;
export type PciSpec = z.output<typeof pciSchema>;

/** The disk keys tuning adds (spread into diskSchema). */
export const diskTuningShape = {
  /** An I/O thread for this disk: "auto" = its own, any other name = shared by the disks that name it (virtio only). */
  iothread: z.string().regex(NAME_RE, { error: NAME_RULE }).optional(),
  detectZeroes: z.enum(['off', 'on', 'unmap']).optional(),
  /** virtio-blk queues (num-queues). */
  queues: z.number().int().min(1).max(64).optional(),
};

/** The NIC keys tuning adds: multiqueue virtio-net on a tap. */
export const nicTuningShape = {
  queues: z.number().int().min(1).max(64).optional(),
};

export type TuningIssue = { path: (string | number)[]; message: string };

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * Cross checks of the tuning keys. `vm` may be validated or raw: every read is defensive, and the
 * lists are parsed again here, so a raw definition gets the same messages.
 */
export function tuningIssues(vm: any): TuningIssue[] {
  const out: TuningIssue[] = [];
  const add = (path: (string | number)[], message: string) => out.push({ path, message });
  const count: number = typeof vm?.cpu?.count === 'number' ? vm.cpu.count : 1;
  // vCPU slots: hotplugged vCPUs (cpu.maxCount) need their pin lists and NUMA nodes from the start.
  const slots: number = typeof vm?.cpu?.maxCount === 'number' && vm.cpu.maxCount > count ? vm.cpu.maxCount : count;
  const slotWord = slots === count ? 'cpu.count' : 'cpu.maxCount';
  const pin = vm?.cpu?.pin;
  if (pin && typeof pin === 'object' && Array.isArray(pin.vcpus) && pin.vcpus.length !== slots)
    add(['cpu', 'pin', 'vcpus'], `lists ${pin.vcpus.length} vCPU${pin.vcpus.length === 1 ? '' : 's'} but ${slotWord} is ${slots}: give one CPU list per vCPU${slots === count ? '' : ' slot'}`);
  const disks: any[] = Array.isArray(vm?.disks) ? vm.disks : [];
  const machine: string = typeof vm?.machine === 'string' ? vm.machine : (vm?.machine?.type ?? 'q35');
  const anyIothread = disks.some((d) => d && typeof d.iothread === 'string');
  if (pin && typeof pin === 'object' && pin.iothreads !== undefined && !anyIothread)
    add(['cpu', 'pin', 'iothreads'], 'pins I/O threads but no disk has an iothread (add iothread: auto to a disk)');
  disks.forEach((d, i) => {
    if (!d || typeof d !== 'object') return;
    const iface = d.interface ?? 'virtio';
    if (d.iothread !== undefined && iface !== 'virtio') add(['disks', i, 'iothread'], `an I/O thread needs interface virtio (this disk is ${iface})`);
    if (d.queues !== undefined && iface !== 'virtio') add(['disks', i, 'queues'], `queues are a virtio-blk setting (this disk is ${iface})`);
    if (d.detectZeroes === 'unmap' && d.discard !== 'unmap') add(['disks', i, 'detectZeroes'], 'unmap needs discard: unmap on the same disk (QEMU refuses it otherwise)');
  });
  const nics: any[] = Array.isArray(vm?.nics) ? vm.nics : [];
  nics.forEach((n, i) => {
    if (!n || typeof n !== 'object' || n.queues === undefined || n.queues === 1) return;
    if ((n.model ?? 'virtio') !== 'virtio') add(['nics', i, 'queues'], `multiqueue needs model virtio (this NIC is ${n.model})`);
    if (n.user !== undefined && n.user !== false) add(['nics', i, 'queues'], 'multiqueue needs a tap (network: or tap:); user networking has one queue');
    if (typeof n.queues === 'number' && n.queues > count) add(['nics', i, 'queues'], `${n.queues} queues but only ${count} vCPU${count === 1 ? '' : 's'}: more queues than vCPUs buys nothing`);
  });

  const mem = vm?.memory;
  if (mem && typeof mem === 'object' && !Array.isArray(mem)) {
    const total = typeof mem.size === 'number' ? mem.size : parseSize(mem.size);
    const page = typeof mem.hugepages === 'string' ? HUGEPAGE_BYTES[mem.hugepages as '2M'] : undefined;
    if (page && total !== undefined && total % page !== 0) add(['memory', 'size'], `${mem.size} is not a whole number of ${mem.hugepages} hugepages`);
    if (Array.isArray(mem.numa)) {
      const owner = new Map<number, number>();
      let sum = 0;
      let sized = true;
      mem.numa.forEach((node: any, i: number) => {
        if (!node || typeof node !== 'object') return;
        const cpus = parseCpuList(node.cpus);
        for (const c of cpus ?? []) {
          if (c >= slots) add(['memory', 'numa', i, 'cpus'], `vCPU ${c} does not exist (${slotWord} is ${slots}: vCPUs 0–${slots - 1})`);
          else if (owner.has(c)) add(['memory', 'numa', i, 'cpus'], `vCPU ${c} is already on node ${owner.get(c)}`);
          else owner.set(c, i);
        }
        const m = typeof node.memory === 'number' ? node.memory : parseSize(node.memory);
        if (m === undefined) sized = false;
        else {
          sum += m;
          if (page && m % page !== 0) add(['memory', 'numa', i, 'memory'], `${node.memory} is not a whole number of ${mem.hugepages} hugepages`);
        }
        if (node.policy !== undefined && node.policy !== 'default' && node.hostNodes === undefined)
          add(['memory', 'numa', i, 'policy'], `policy ${node.policy} needs hostNodes (the host nodes to bind to)`);
      });
      const missing = Array.from({ length: slots }, (_, c) => c).filter((c) => !owner.has(c));
      if (missing.length) add(['memory', 'numa'], `vCPU${missing.length === 1 ? '' : 's'} ${formatCpuList(missing)} ${missing.length === 1 ? 'is' : 'are'} on no node: every vCPU must be on exactly one`);
      if (sized && total !== undefined && sum !== total) add(['memory', 'numa'], `the nodes' memory adds up to ${sum} bytes but memory.size is ${total} bytes`);
    }
  }

  const pci: any[] = Array.isArray(vm?.pci) ? vm.pci : [];
  const usb: any[] = Array.isArray(vm?.usb) ? vm.usb : [];
  if (machine === 'microvm') {
    if (slots > count) add(['cpu', 'maxCount'], 'vCPU hotplug needs machine q35 or pc (microvm has no ACPI CPU hotplug)');
    if (vm?.usbController === true) add(['usbController'], 'a USB controller needs machine q35 or pc (microvm has no PCI bus)');
    if (pci.length) add(['pci'], 'PCI passthrough needs machine q35 or pc (microvm has no PCI bus)');
    if (usb.length) add(['usb'], 'USB passthrough needs machine q35 or pc (microvm has no USB controller)');
  }
  const seen = new Map<string, number>();
  pci.forEach((p, i) => {
    if (!p || typeof p.host !== 'string') return;
    const k = (p.host.split(':').length === 2 ? `0000:${p.host}` : p.host).toLowerCase();
    if (seen.has(k)) add(['pci', i, 'host'], `PCI device ${k} is already pci[${seen.get(k)}]`);
    else seen.set(k, i);
  });
  const useen = new Map<string, number>();
  usb.forEach((u, i) => {
    if (!u || typeof u !== 'object') return;
    const k = u.vendor !== undefined ? `id:${String(u.vendor).toLowerCase()}:${String(u.product).toLowerCase()}` : `at:${u.bus}-${u.port}`;
    if (useen.has(k)) add(['usb', i], `the same USB device as usb[${useen.get(k)}]`);
    else useen.set(k, i);
  });
  return out;
}
