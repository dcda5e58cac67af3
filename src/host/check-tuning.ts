/**
 * `host check` lines for the tuning keys (docs/tuning.md), pure over the facts of
 * src/host/tuning-facts.ts: hugepages free per size and per NUMA node, and the IOMMU groups with
 * the driver of each device (and why the host is using it, when it is).
 */
import type { CheckItem } from './check-types.js';
import type { HugepagePool, TuningFacts } from './tuning-facts.js';

const size = (kb: number) => (kb >= 1048576 ? `${kb / 1048576}G` : kb >= 1024 ? `${kb / 1024}M` : `${kb}K`);
const pools = (ps: HugepagePool[]) => ps.map((p) => `${size(p.sizeKb)} ${Math.max(0, p.free - p.reserved)} free of ${p.total}${p.reserved ? ` (${p.reserved} reserved)` : ''}`).join(', ');

export function tuningItems(f: TuningFacts | undefined): CheckItem[] {
  if (!f) return [];
  const items: CheckItem[] = [];
  const nodes = f.nodes.filter((n) => n.hugepages.length);
  items.push({
    id: 'mem.hugepages-free',
    title: 'hugepages free (memory.hugepages)',
    status: 'PASS',
    detail: `${f.hugepages.length ? pools(f.hugepages) : 'no hugepage pools'}${nodes.length ? `; ${nodes.map((n) => `node ${n.node}: ${pools(n.hugepages)}`).join('; ')}` : ''}`,
  });
  if (f.iommuGroups.length) {
    const shown = f.iommuGroups.map((g) => `group ${g.group}: ${g.devices.map((d) => `${d.address}${d.vendor ? ` [${d.vendor}:${d.device}]` : ''} ${d.driver ?? 'no driver'}${d.inUse?.length ? ` (in use: ${d.inUse.join(', ')})` : ''}`).join(', ')}`);
    items.push({ id: 'host.iommu-groups', title: 'IOMMU groups (pci:)', status: 'PASS', detail: shown.join('; ') });
  }
  return items;
}
