/**
 * Host facts the tuning keys depend on, read from sysfs (a root that tests point at a fixture
 * tree, test/fixtures/sysfs/): hugepages per size and NUMA node, online CPUs, IOMMU groups and the
 * driver holding each PCI device. Read once per start and passed as data to the pure
 * `tuningHostIssues` (src/vm/tuning-check.ts); `host check` prints the same facts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseCpuList } from '../definition/cpu-list.js';

/** Drivers a managed PCI start leaves group members on: vfio-pci already, PCIe ports/bridges, pci-stub (vfio accepts both in a group). */
export const VFIO_KEEP_DRIVERS: ReadonlySet<string> = new Set(['vfio-pci', 'pcieport', 'pci-stub']);

export type HugepagePool = { sizeKb: number; total: number; free: number; reserved: number };
export type TuningFacts = {
  /** Online host CPUs. */
  cpus: number[];
  /** Whole-host pools by page size in kB (2048, 1048576). */
  hugepages: HugepagePool[];
  /** Per NUMA node: its pools. */
  nodes: { node: number; cpus: number[]; hugepages: HugepagePool[] }[];
  /** IOMMU groups; empty when the IOMMU is off (no /sys/kernel/iommu_groups entries). */
  iommuGroups: { group: number; devices: { address: string; driver?: string; vendor?: string; device?: string; inUse?: string[] }[] }[];
  /** PCI devices present, with the driver bound to each (for devices in no group, too). */
  pciDevices: Record<string, PciDeviceFact>;
};

export type PciDeviceFact = {
  driver?: string;
  iommuGroup?: number;
  /**
   * Why the host is using this device right now (only looked at for devices in an IOMMU group):
   * a network interface that is up, a block device that is mounted or held (LVM, md, dm), the
   * boot VGA (the host's console). kvmctl never takes such a device (src/host/vfio-bind.ts).
   */
  inUse?: string[];
};

const readInt = (f: string): number | undefined => {
  try {
    const n = Number(fs.readFileSync(f, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
};
const readText = (f: string): string | undefined => {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return undefined;
  }
};
const list = (d: string): string[] => {
  try {
    return fs.readdirSync(d);
  } catch {
    return [];
  }
};
const linkBase = (p: string): string | undefined => {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return undefined;
  }
};

function pools(dir: string): HugepagePool[] {
  const out: HugepagePool[] = [];
  for (const e of list(dir)) {
    const m = /^hugepages-(\d+)kB$/.exec(e);
    if (!m) continue;
    const d = path.join(dir, e);
    out.push({ sizeKb: Number(m[1]), total: readInt(path.join(d, 'nr_hugepages')) ?? 0, free: readInt(path.join(d, 'free_hugepages')) ?? 0, reserved: readInt(path.join(d, 'resv_hugepages')) ?? 0 });
  }
  return out.sort((a, b) => a.sizeKb - b.sizeKb);
}

/** The major:minor numbers mounted, from /proc/self/mountinfo text (its third field). */
export function mountedDevs(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length > 2 && /^\d+:\d+$/.test(f[2]!)) out.add(f[2]!);
  }
  return out;
}

/**
 * Block devices, partitions and network interfaces below a PCI device's sysfs directory, found by
 * their uevent (DEVTYPE=disk|partition, INTERFACE=): an AHCI disk sits at ata1/host0/…/block/sda,
 * an NVMe namespace at nvme/nvme0/nvme0n1, a virtio NIC at virtio0/net/eth0. Symlinks and child
 * PCI functions are not followed.
 */
function childDevs(dir: string, depth = 0, out: { block: { name: string; dir: string }[]; net: { name: string; dir: string }[] } = { block: [], net: [] }) {
  if (depth > 8) return out;
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    if (!e.isDirectory() || e.name === 'power' || /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(e.name)) continue;
    const d = path.join(dir, e.name);
    const ev = readText(path.join(d, 'uevent')) ?? '';
    const ifc = /^INTERFACE=(\S+)/m.exec(ev)?.[1];
    if (ifc) out.net.push({ name: ifc, dir: d });
    else if (/^DEVTYPE=(disk|partition)$/m.test(ev)) out.block.push({ name: /^DEVNAME=(\S+)/m.exec(ev)?.[1] ?? e.name, dir: d });
    childDevs(d, depth + 1, out);
  }
  return out;
}

/** Why the host uses a PCI device now (see PciDeviceFact.inUse); empty when it does not. */
export function pciInUse(devDir: string, mounted: Set<string>): string[] {
  const why: string[] = [];
  const { block, net } = childDevs(devDir);
  for (const n of net) {
    const flags = Number.parseInt(readText(path.join(n.dir, 'flags')) ?? '0', 16);
    if (flags & 1) why.push(`network interface ${n.name} is up`);
  }
  for (const b of block) {
    const dev = readText(path.join(b.dir, 'dev'));
    if (dev && mounted.has(dev)) why.push(`block device ${b.name} is mounted`);
    const holders = list(path.join(b.dir, 'holders'));
    if (holders.length) why.push(`block device ${b.name} is held by ${holders.join(', ')}`);
  }
  if (readText(path.join(devDir, 'boot_vga')) === '1') why.push("it is the boot VGA device (the host's console)");
  return why;
}

/**
 * `mountinfo`: the text of /proc/self/mountinfo (read from /proc when the sysfs root is the real
 * /sys; tests pass their own, or get none).
 */
export function readTuningFacts(sysRoot = '/sys', opts: { mountinfo?: string } = {}): TuningFacts {
  const cpus = parseCpuList(readText(path.join(sysRoot, 'devices/system/cpu/online')) ?? '') ?? [];
  const nodeDir = path.join(sysRoot, 'devices/system/node');
  const nodes = list(nodeDir)
    .map((e) => /^node(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ node: Number(m[1]), cpus: parseCpuList(readText(path.join(nodeDir, m[0], 'cpulist')) ?? '') ?? [], hugepages: pools(path.join(nodeDir, m[0], 'hugepages')) }))
    .sort((a, b) => a.node - b.node);
  const pciDevices: TuningFacts['pciDevices'] = {};
  const pciDir = path.join(sysRoot, 'bus/pci/devices');
  for (const addr of list(pciDir)) {
    const g = linkBase(path.join(pciDir, addr, 'iommu_group'));
    pciDevices[addr] = { driver: linkBase(path.join(pciDir, addr, 'driver')), iommuGroup: g === undefined ? undefined : Number(g) };
  }
  const mounted = mountedDevs(opts.mountinfo ?? (sysRoot === '/sys' ? (readText('/proc/self/mountinfo') ?? '') : ''));
  const groupsDir = path.join(sysRoot, 'kernel/iommu_groups');
  const iommuGroups = list(groupsDir)
    .filter((g) => /^\d+$/.test(g))
    .map((g) => ({
      group: Number(g),
      devices: list(path.join(groupsDir, g, 'devices'))
        .sort()
        .map((address) => {
          const dev = pciDevices[address];
          if (dev) {
            const why = pciInUse(path.join(pciDir, address), mounted);
            if (why.length) dev.inUse = why;
          }
          return {
          address,
          driver: pciDevices[address]?.driver ?? linkBase(path.join(pciDir, address, 'driver')),
          vendor: readText(path.join(pciDir, address, 'vendor'))?.replace(/^0x/, ''),
          device: readText(path.join(pciDir, address, 'device'))?.replace(/^0x/, ''),
          ...(dev?.inUse ? { inUse: dev.inUse } : {}),
          };
        }),
    }))
    .sort((a, b) => a.group - b.group);
  return { cpus, hugepages: pools(path.join(sysRoot, 'kernel/mm/hugepages')), nodes, iommuGroups, pciDevices };
}

/** The sysfs root kvmctl reads: /sys, or KVMCTL_SYSFS (tests point it at a fixture tree). */
export function sysfsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.KVMCTL_SYSFS || '/sys';
}
