/**
 * Host facts the tuning keys depend on, read from sysfs (a root that tests point at a fixture
 * tree, test/fixtures/sysfs/): hugepages per size and NUMA node, online CPUs, IOMMU groups and the
 * driver holding each PCI device. Read once per start and passed as data to the pure
 * `tuningHostIssues` (src/vm/tuning-check.ts); `host check` prints the same facts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseCpuList } from '../definition/cpu-list.js';

export type HugepagePool = { sizeKb: number; total: number; free: number; reserved: number };
export type TuningFacts = {
  /** Online host CPUs. */
  cpus: number[];
  /** Whole-host pools by page size in kB (2048, 1048576). */
  hugepages: HugepagePool[];
  /** Per NUMA node: its pools. */
  nodes: { node: number; cpus: number[]; hugepages: HugepagePool[] }[];
  /** IOMMU groups; empty when the IOMMU is off (no /sys/kernel/iommu_groups entries). */
  iommuGroups: { group: number; devices: { address: string; driver?: string; vendor?: string; device?: string }[] }[];
  /** PCI devices present, with the driver bound to each (for devices in no group, too). */
  pciDevices: Record<string, { driver?: string; iommuGroup?: number }>;
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

export function readTuningFacts(sysRoot = '/sys'): TuningFacts {
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
  const groupsDir = path.join(sysRoot, 'kernel/iommu_groups');
  const iommuGroups = list(groupsDir)
    .filter((g) => /^\d+$/.test(g))
    .map((g) => ({
      group: Number(g),
      devices: list(path.join(groupsDir, g, 'devices'))
        .sort()
        .map((address) => ({
          address,
          driver: pciDevices[address]?.driver ?? linkBase(path.join(pciDir, address, 'driver')),
          vendor: readText(path.join(pciDir, address, 'vendor'))?.replace(/^0x/, ''),
          device: readText(path.join(pciDir, address, 'device'))?.replace(/^0x/, ''),
        })),
    }))
    .sort((a, b) => a.group - b.group);
  return { cpus, hugepages: pools(path.join(sysRoot, 'kernel/mm/hugepages')), nodes, iommuGroups, pciDevices };
}

/** The sysfs root kvmctl reads: /sys, or KVMCTL_SYSFS (tests point it at a fixture tree). */
export function sysfsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.KVMCTL_SYSFS || '/sys';
}
