/**
 * The tuning parts of the QEMU command line (docs/tuning.md), pure like `buildArgv` which calls
 * them: guest memory backends (hugepages, NUMA nodes with host binding, locking), I/O threads and
 * virtio-blk/virtio-net queue counts, vfio-pci and usb-host passthrough.
 */
import { KvmError } from '../errors.js';
import type { DiskSpec, NicSpec, VmSpec } from '../definition/vm.js';
import { formatCpuList, HUGEPAGE_BYTES } from '../definition/cpu-list.js';
import { qemuOpts } from './escape.js';
import type { HostFacts } from '../host/facts.js';
import { editDistance } from '../definition/names.js';

const MiB = 1024 * 1024;
/** QEMU sizes in whole MiB where possible (memory-backend sizes must match -m exactly). */
const qsize = (bytes: number) => (bytes % MiB === 0 ? `${bytes / MiB}M` : String(bytes));

/**
 * Guest RAM: `-object memory-backend-*` per NUMA node (one node when none are defined) and
 * `-numa node,…,memdev=`. Hugepages use memfd with hugetlb=on (no hugetlbfs mount needed, and it
 * can be shared with virtiofsd). `virtiofs`: the memory must be shared.
 * Returns undefined when the definition asks for nothing: buildArgv keeps its plain `-m`.
 */
export function memoryArgs(vm: VmSpec, virtiofs: boolean): string[] | undefined {
  const t = vm.memoryTuning;
  if (!t && !virtiofs) return undefined;
  const out: string[] = [];
  const share = t?.share ?? virtiofs;
  if (virtiofs && t?.share === false) throw new KvmError('SPEC_INVALID', `${vm.name}: a virtiofs share needs shared guest memory (memory.share: false)`, { exit: 2, hint: 'remove memory.share: false' });
  const prealloc = t?.prealloc ?? !!t?.hugepages;
  const nodes = t?.numa ?? [{ cpus: Array.from({ length: vm.cpu.count }, (_, i) => i), memory: vm.memory }];
  nodes.forEach((n, i) => {
    const id = t?.numa ? `mem${i}` : 'mem';
    const type = t?.hugepages || share ? 'memory-backend-memfd' : 'memory-backend-ram';
    const policy = n.hostNodes ? (n.policy ?? 'bind') : n.policy;
    out.push('-object', qemuOpts(type, {
      id,
      size: qsize(n.memory),
      hugetlb: t?.hugepages ? 'on' : undefined,
      hugetlbsize: t?.hugepages ? qsize(HUGEPAGE_BYTES[t.hugepages]) : undefined,
      share: share ? 'on' : undefined,
      prealloc: prealloc ? 'on' : undefined,
      'host-nodes': n.hostNodes ? formatCpuList(n.hostNodes) : undefined,
      policy: policy === 'default' ? undefined : policy,
    }));
    // Each contiguous vCPU range is its own cpus= (QEMU takes the key several times).
    const ranges = t?.numa ? formatCpuList(n.cpus).split(',').map((r) => `cpus=${r}`) : [];
    out.push('-numa', ['node', ...(t?.numa ? [`nodeid=${i}`] : []), ...ranges, `memdev=${id}`].join(','));
  });
  if (t?.lock) out.push('-overcommit', 'mem-lock=on');
  return out;
}

/** The iothread a disk uses ("auto" = its own), or undefined. */
export function diskIothread(d: DiskSpec, id: string): string | undefined {
  if (!d.iothread) return undefined;
  return d.iothread === 'auto' ? `iothread-${id}` : d.iothread;
}

/** `-object iothread,id=…` once per distinct iothread the disks name. */
export function iothreadArgs(vm: VmSpec, ids: string[]): string[] {
  const seen = new Set<string>();
  vm.disks.forEach((d, i) => {
    const t = diskIothread(d, ids[i]!);
    if (t) seen.add(t);
  });
  return [...seen].flatMap((id) => ['-object', `iothread,id=${id}`]);
}

/** True when a virtio disk needs the separate -device form (the short `-drive if=virtio` takes no device options). */
export function diskNeedsDevice(d: DiskSpec): boolean {
  return (d.interface === 'virtio' && (!!d.iothread || d.queues !== undefined)) || (d.serial !== undefined && d.interface !== 'scsi' && d.interface !== 'nvme');
}

/** Extra virtio-blk device properties of a disk. */
export function blkDeviceOpts(d: DiskSpec, id: string): Record<string, string | number | undefined> {
  return { iothread: diskIothread(d, id), 'num-queues': d.queues };
}

/** Multiqueue virtio-net: `queues=N` on the tap netdev, `mq=on,vectors=2N+2` on the device. */
export function nicQueueOpts(nic: NicSpec): { netdev: Record<string, number | undefined>; device: Record<string, string | number | undefined> } {
  const q = nic.queues ?? 1;
  if (q <= 1) return { netdev: {}, device: {} };
  return { netdev: { queues: q }, device: { mq: 'on', vectors: 2 * q + 2 } };
}

/** vfio-pci per `pci:` entry, an xHCI controller and usb-host per `usb:` entry. */
export function passthroughArgs(vm: VmSpec): string[] {
  const out: string[] = [];
  (vm.pci ?? []).forEach((p, i) => {
    const rom = p.rom === false ? { rombar: 0 } : typeof p.rom === 'object' ? { romfile: p.rom.file } : {};
    out.push('-device', qemuOpts('vfio-pci', { host: p.host, id: `hostpci${i}`, ...rom, multifunction: p.multifunction === undefined ? undefined : p.multifunction ? 'on' : 'off' }));
  });
  const usb = vm.usb ?? [];
  if (usb.length || vm.usbController) out.push('-device', 'qemu-xhci,id=usb0'); // usbController: for `kvmctl usb attach`
  usb.forEach((u, i) => {
    const sel = 'vendor' in u ? { vendorid: `0x${u.vendor}`, productid: `0x${u.product}` } : { hostbus: u.bus, hostport: u.port };
    out.push('-device', qemuOpts('usb-host', { bus: 'usb0.0', id: `hostusb${i}`, ...sel }));
  });
  return out;
}

/** Up to five names nearest to `word` (case-insensitive edit distance, or a shared 4-letter prefix). */
function nearest(word: string, names: string[]): string[] {
  const w = word.toLowerCase();
  return names
    .map((n) => ({ n, d: editDistance(w, n.toLowerCase()) }))
    .filter(({ n, d }) => d <= Math.max(2, Math.floor(w.length / 3)) || (w.length >= 4 && n.toLowerCase().startsWith(w.slice(0, 4))))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, 5)
    .map(({ n }) => n);
}

/**
 * The `-cpu` value: `cpu.model` (host → max under TCG) checked against the host QEMU's
 * `-cpu help` (host facts): an unknown model or `+flag`/`-flag` is refused with the nearest names;
 * `cpu.enforce` adds `enforce=on` (QEMU then refuses to start when the accelerator cannot give
 * every feature of the model, instead of dropping them with a warning).
 */
export function cpuArg(vm: VmSpec, facts: Pick<HostFacts, 'cpuModels' | 'cpuFlags' | 'qemuBinary'>, accel: 'kvm' | 'tcg', warnings: string[]): string {
  const [base = '', ...props] = vm.cpu.model.split(',');
  let model = base;
  if (accel === 'tcg' && model === 'host') {
    model = 'max';
    warnings.push('CPU model "host" needs KVM: using "max" (every feature TCG can emulate)');
  }
  const problems: string[] = [];
  const models = facts.cpuModels ?? [];
  if (models.length && !models.includes(base)) {
    const near = nearest(base, models);
    problems.push(`CPU model "${base}" is not known to ${facts.qemuBinary}${near.length ? ` (close: ${near.join(', ')})` : ''}`);
  }
  const flags = facts.cpuFlags ?? [];
  if (flags.length)
    for (const p of props) {
      const m = /^[+-](.+)$/.exec(p);
      if (!m || flags.includes(m[1]!)) continue;
      const near = nearest(m[1]!, flags);
      problems.push(`CPU feature "${m[1]}" is not a CPUID flag ${facts.qemuBinary} knows${near.length ? ` (close: ${near.join(', ')})` : ''}`);
    }
  if (problems.length)
    throw new KvmError('CPU_MODEL_UNKNOWN', `VM "${vm.name}": cpu.model: ${problems.join('; ')}`, { exit: 2, hint: `${facts.qemuBinary} -cpu help lists the models and flags` });
  return [model, ...props, ...(vm.cpu.enforce ? ['enforce=on'] : [])].join(',');
}

/** `memory.balloon`: virtio-balloon (virtio-mmio on microvm), id balloon0 (QMP `balloon` / `query-balloon`). */
export function balloonArgs(vm: VmSpec, dev: (pci: string) => string): string[] {
  const b = vm.balloon;
  if (!b) return [];
  return ['-device', qemuOpts(dev('virtio-balloon-pci'), { id: 'balloon0', 'free-page-reporting': b.freePageReporting ? 'on' : undefined, 'deflate-on-oom': b.deflateOnOom ? 'on' : undefined })];
}
