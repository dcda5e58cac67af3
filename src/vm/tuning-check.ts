/**
 * Before a start: can this host give the VM what its tuning keys ask for? Pure — the host's
 * facts (src/host/tuning-facts.ts) come in as data. Every shortfall is listed with its numbers;
 * the start is refused (exit 2) before anything is changed.
 */
import { badInput, type ErrorIssue } from '../errors.js';
import { VFIO_KEEP_DRIVERS, type TuningFacts } from '../host/tuning-facts.js';
import { formatCpuList, HUGEPAGE_BYTES } from '../definition/cpu-list.js';
import type { VmSpec } from '../definition/vm.js';

/** Drivers that may hold a group member other than the passed-through device itself: vfio-pci, and PCIe ports/bridges (vfio allows them). */
const GROUP_OK = new Set(['vfio-pci', 'pcieport', 'pci-stub']);


export function tuningHostIssues(vm: VmSpec, f: TuningFacts): ErrorIssue[] {
  const out: ErrorIssue[] = [];
  const online = new Set(f.cpus);
  const pin = vm.cpu.pin;
  const offCpus = (at: string, xs: number[] | undefined) => {
    const bad = (xs ?? []).filter((c) => !online.has(c));
    if (bad.length && f.cpus.length) out.push({ path: at, message: `host CPU${bad.length === 1 ? '' : 's'} ${formatCpuList(bad)} ${bad.length === 1 ? 'is' : 'are'} not online (online: ${formatCpuList(f.cpus)})` });
  };
  pin?.vcpus?.forEach((l, i) => offCpus(`cpu.pin.vcpus[${i}]`, l));
  offCpus('cpu.pin.emulator', pin?.emulator);
  offCpus('cpu.pin.iothreads', pin?.iothreads);

  const t = vm.memoryTuning;
  const knownNodes = new Set(f.nodes.map((n) => n.node));
  t?.numa?.forEach((n, i) => {
    const bad = (n.hostNodes ?? []).filter((x) => !knownNodes.has(x));
    if (bad.length) out.push({ path: `memory.numa[${i}].hostNodes`, message: `host node${bad.length === 1 ? '' : 's'} ${formatCpuList(bad)} ${bad.length === 1 ? 'does' : 'do'} not exist (host nodes: ${formatCpuList([...knownNodes]) || 'none'})` });
  });
  if (t?.hugepages) {
    const bytes = HUGEPAGE_BYTES[t.hugepages];
    const sizeKb = bytes / 1024;
    const avail = (pools: TuningFacts['hugepages']) => {
      const p = pools.find((x) => x.sizeKb === sizeKb);
      return p ? { free: Math.max(0, p.free - p.reserved), total: p.total } : undefined;
    };
    const whole = avail(f.hugepages);
    const fix = (n: number) => `echo ${n} > /sys/kernel/mm/hugepages/hugepages-${sizeKb}kB/nr_hugepages`;
    if (!whole) out.push({ path: 'memory.hugepages', message: `this host has no ${t.hugepages} hugepage pool (no /sys/kernel/mm/hugepages/hugepages-${sizeKb}kB)` });
    else {
      const need = Math.ceil(vm.memory / bytes);
      if (need > whole.free)
        out.push({ path: 'memory.hugepages', message: `needs ${need} free ${t.hugepages} hugepages (${vm.memory / 1024 / 1024} MiB), the host has ${whole.free} free of ${whole.total}; reserve ${need - whole.free} more: ${fix(whole.total + need - whole.free)} (or sysctl vm.nr_hugepages for 2M)` });
      // Bound to host nodes (policy bind): each guest node's pages must come from the pools of its host nodes.
      const perSet = new Map<string, { nodes: number[]; want: number }>();
      t.numa?.forEach((n) => {
        if (!n.hostNodes?.length || (n.policy ?? 'bind') !== 'bind') return;
        const key = formatCpuList(n.hostNodes);
        const e = perSet.get(key) ?? { nodes: n.hostNodes, want: 0 };
        e.want += Math.ceil(n.memory / bytes);
        perSet.set(key, e);
      });
      for (const [key, { nodes, want }] of perSet) {
        if (!nodes.every((x) => knownNodes.has(x))) continue; // reported above
        const have = nodes.map((x) => avail(f.nodes.find((n) => n.node === x)?.hugepages ?? []) ?? { free: 0, total: 0 });
        const free = have.reduce((a, h) => a + h.free, 0);
        const total = have.reduce((a, h) => a + h.total, 0);
        if (free < want)
          out.push({ path: 'memory.numa', message: `host node${nodes.length === 1 ? '' : 's'} ${key} need${nodes.length === 1 ? 's' : ''} ${want} free ${t.hugepages} hugepages for the guest nodes bound to ${nodes.length === 1 ? 'it' : 'them'}, ${nodes.length === 1 ? 'it has' : 'they have'} ${free} free of ${total}; reserve ${want - free} more: echo N > /sys/devices/system/node/node${nodes[0]}/hugepages/hugepages-${sizeKb}kB/nr_hugepages` });
      }
    }
  }

  (vm.pci ?? []).forEach((p, i) => {
    const at = `pci[${i}].host`;
    const dev = f.pciDevices[p.host];
    if (!dev) return void out.push({ path: at, message: `no PCI device ${p.host} on this host` });
    if (f.iommuGroups.length === 0 || dev.iommuGroup === undefined)
      return void out.push({ path: at, message: `${p.host} is in no IOMMU group: the IOMMU is off (boot the host with intel_iommu=on or amd_iommu=on, and VT-d/AMD-Vi on in the firmware)` });
    const group = f.iommuGroups.find((g) => g.group === dev.iommuGroup);
    const members = group?.devices ?? [];
    if (p.managed !== false) {
      // Managed: kvmctl rebinds what the host holds, unless the host is using it right now.
      const busy = members.filter((d) => !VFIO_KEEP_DRIVERS.has(d.driver ?? '') && d.inUse?.length);
      if (busy.length)
        out.push({
          path: at,
          message: `IOMMU group ${dev.iommuGroup} is in use by the host: ${busy.map((d) => `${d.address} (${d.driver}): ${d.inUse!.join(', ')}`).join('; ')}; kvmctl takes a group member from a host driver only when the host is not using it (take the interface down, unmount the disk)`,
        });
      return;
    }
    const held = members.filter((d) => (d.address === p.host ? d.driver !== 'vfio-pci' : d.driver !== undefined && !GROUP_OK.has(d.driver)));
    if (held.length)
      out.push({
        path: at,
        message: `IOMMU group ${dev.iommuGroup} is in use by the host: ${held.map((d) => `${d.address} is held by ${d.driver ?? 'no driver'}`).join(', ')}; every device of the group must be bound to vfio-pci (or have no driver) before the VM may take ${p.host} (pci[${i}].managed is false: kvmctl does not rebind it)`,
      });
  });
  return out;
}

/** Throw the issues as one refusal (exit 2: nothing was changed). */
export function assertTuningFits(vm: VmSpec, f: TuningFacts): void {
  const issues = tuningHostIssues(vm, f);
  if (!issues.length) return;
  const pci = issues.some((i) => i.path.startsWith('pci'));
  throw badInput(
    'HOST_CANNOT_TUNE',
    `VM "${vm.name}": this host cannot give what the definition asks for: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    pci
      ? 'stop the host using the group (ip link set IF down, umount), or with managed: false bind each device of the group to vfio-pci yourself: echo vfio-pci > /sys/bus/pci/devices/ADDR/driver_override; echo ADDR > /sys/bus/pci/devices/ADDR/driver/unbind; echo ADDR > /sys/bus/pci/drivers_probe'
      : 'see docs/tuning.md',
    issues,
  );
}

/** Whether a definition asks for anything this check looks at (so plain VMs skip the sysfs reads). */
export function needsTuningCheck(vm: VmSpec): boolean {
  return !!(vm.cpu.pin || vm.memoryTuning?.hugepages || vm.memoryTuning?.numa?.some((n) => n.hostNodes) || vm.pci?.length);
}
