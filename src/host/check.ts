/**
 * `kvmctl host check`: every item of the seed's host checklist and more, each PASS / WARN / FAIL
 * with what it costs and how to fix it. `checkHost` is pure: it judges plain data (cpuinfo text,
 * kernel config text, module lists, device states, sysfs files, tool versions) that
 * `gatherHostInputs` (check-gather.ts) reads from the real machine, so that recorded fixtures of
 * other hosts can be judged the same way.
 */
import type { CheckItem, Status, ToolState } from './check-types.js';
export type { CheckItem, Status, ToolState } from './check-types.js';
import { firmwareItems, tpmItems } from './check-firmware.js';
import type { FirmwareImage } from './facts.js';
import { kvmUsable } from './probe.js';
import { HOST_OPTIONS, PACKAGES, type HostOption } from './check-options.js';
import { parseKernelConfig, type KernelConfig } from './kernel-config.js';
import { tuningItems } from './check-tuning.js';
import type { TuningFacts } from './tuning-facts.js';



export type DeviceState = { exists: boolean; rw: boolean; owner?: string; group?: string; mode?: string };

export const DEVICES = ['/dev/kvm', '/dev/vhost-net', '/dev/net/tun'] as const;

/** sysfs / proc files the check reads (absent = undefined). */
export const FILES = {
  nestedIntel: '/sys/module/kvm_intel/parameters/nested',
  nestedAmd: '/sys/module/kvm_amd/parameters/nested',
  clocksource: '/sys/devices/system/clocksource/clocksource0/current_clocksource',
  clocksources: '/sys/devices/system/clocksource/clocksource0/available_clocksource',
  meminfo: '/proc/meminfo',
  thp: '/sys/kernel/mm/transparent_hugepage/enabled',
  ksmRun: '/sys/kernel/mm/ksm/run',
  ksmSharing: '/sys/kernel/mm/ksm/pages_sharing',
  cgroupControllers: '/sys/fs/cgroup/cgroup.controllers',
  cgroupCpuV1: '/sys/fs/cgroup/cpu',
} as const;
export type FileKey = keyof typeof FILES;

export type HostInputs = {
  /** `uname -m`. */
  machine: string;
  kernelRelease: string;
  cpuinfo: string;
  /** The kernel config judged; `running` = it belongs to the running kernel (module evidence applies). */
  kernelConfig?: { source: string; text: string; running: boolean };
  /** /proc/modules text; undefined when the kernel has no module support. */
  procModules?: string;
  /** Directory names under /sys/module (built-ins with parameters appear here too). */
  sysModules: string[];
  devices: Record<(typeof DEVICES)[number], DeviceState>;
  /** Contents of FILES (undefined when absent); directories are recorded as "" when present. */
  files: Partial<Record<FileKey, string>>;
  iommuGroups: number;
  /** Hugepage pools per size and node, IOMMU groups with their drivers (src/host/tuning-facts.ts); undefined = not looked at. */
  tuning?: TuningFacts;
  /** Kernel log, when readable (kvm-pvm, DMAR, AMD-Vi). */
  dmesg?: string;
  /** /etc/group text. */
  groupFile: string;
  tools: { qemu: ToolState; qemuImg: ToolState; ip: ToolState; /** undefined = not looked at */ swtpm?: ToolState };
  /** UEFI images from the QEMU firmware descriptors (src/host/firmware-probe.ts); undefined = not looked at. */
  firmware?: FirmwareImage[];
};

export type CpuVendor = 'intel' | 'amd' | 'other';

export function cpuVendor(cpuinfo: string): CpuVendor {
  const v = /^vendor_id\s*:\s*(\S+)/m.exec(cpuinfo)?.[1] ?? '';
  if (v === 'GenuineIntel') return 'intel';
  if (v === 'AuthenticAMD' || v === 'HygonGenuine') return 'amd';
  return 'other';
}

export function cpuFlags(cpuinfo: string): Set<string> {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '';
  return new Set(line.trim().split(/\s+/).filter(Boolean));
}

function loadedModules(inp: HostInputs): Set<string> {
  const out = new Set<string>();
  for (const line of (inp.procModules ?? '').split('\n')) {
    const m = /^(\S+)\s/.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

/** The KVM flavour that can only run PVM-enabled guest kernels. */
export function hasPvm(inp: HostInputs, cfg?: KernelConfig): boolean {
  return inp.sysModules.includes('kvm_pvm') || /kvm-pvm/.test(inp.dmesg ?? '') || (inp.kernelConfig?.running === true && cfg?.get('KVM_PVM') === 'y');
}

const TCG_COST = 'guests run under TCG software emulation, ~10–50× slower than KVM (kvmctl falls back to -cpu max, one warning per start)';

function cpuItems(inp: HostInputs, vendor: CpuVendor, flags: Set<string>, cfg?: KernelConfig): CheckItem[] {
  const items: CheckItem[] = [];
  const virt = flags.has('vmx') ? 'vmx' : flags.has('svm') ? 'svm' : undefined;
  const inVm = flags.has('hypervisor');
  items.push(
    virt
      ? { id: 'cpu.virt', title: 'CPU virtualisation (vmx/svm)', status: 'PASS', detail: `${virt} (${virt === 'vmx' ? 'Intel VT-x' : 'AMD-V'})` }
      : {
          id: 'cpu.virt',
          title: 'CPU virtualisation (vmx/svm)',
          status: 'FAIL',
          detail: `no vmx or svm flag in /proc/cpuinfo${inVm ? ' (the "hypervisor" flag is set: this host is itself a VM)' : ''}`,
          cost: TCG_COST,
          fix: inVm
            ? 'enable nested virtualisation for this VM on the outer host (e.g. kvm_intel nested=1 / kvm_amd nested=1 and -cpu host there)'
            : 'enable Intel VT-x / AMD-V (SVM) in the firmware (BIOS/UEFI) setup',
        },
  );

  const dev = inp.devices['/dev/kvm'];
  const k = kvmUsable(dev.rw, dev.exists, inp.cpuinfo);
  const modeInfo = dev.exists ? ` (${[dev.mode, dev.owner && dev.group ? `${dev.owner}:${dev.group}` : undefined].filter(Boolean).join(' ')})` : '';
  if (k.kvm) {
    items.push({ id: 'kvm.device', title: '/dev/kvm usable', status: 'PASS', detail: `present, opens read-write${modeInfo}` });
  } else if (dev.exists && dev.rw && hasPvm(inp, cfg)) {
    items.push({
      id: 'kvm.device',
      title: '/dev/kvm usable',
      status: 'WARN',
      detail: `present${modeInfo}, but it is the PVM flavour of KVM (kvm-pvm), which runs only PVM-enabled guest kernels; kvmctl does not use it`,
      cost: TCG_COST,
      fix: virt ? 'load the hardware KVM module (modprobe kvm_intel / kvm_amd) instead of kvm_pvm' : 'needs a host with vmx/svm (see cpu.virt)',
    });
  } else if (dev.exists && dev.rw) {
    items.push({ id: 'kvm.device', title: '/dev/kvm usable', status: 'WARN', detail: `present${modeInfo}, but ${k.why}`, cost: TCG_COST, fix: 'needs a host with vmx/svm (see cpu.virt)' });
  } else if (dev.exists) {
    items.push({
      id: 'kvm.device',
      title: '/dev/kvm usable',
      status: 'FAIL',
      detail: `present${modeInfo} but not readable and writable by this user`,
      cost: TCG_COST,
      fix: 'add the user that runs QEMU to the kvm group (usermod -aG kvm USER) and make /dev/kvm root:kvm 0660',
    });
  } else {
    const mod = vendor === 'amd' ? 'kvm_amd' : 'kvm_intel';
    items.push({
      id: 'kvm.device',
      title: '/dev/kvm usable',
      status: 'FAIL',
      detail: 'there is no /dev/kvm',
      cost: TCG_COST,
      fix: virt ? `modprobe ${mod} (or build KVM and ${mod.toUpperCase()} into the kernel)` : 'needs a CPU with vmx/svm (see cpu.virt) and the KVM kernel options',
    });
  }

  const nestedFile = vendor === 'amd' ? inp.files.nestedAmd : inp.files.nestedIntel;
  const mod = vendor === 'amd' ? 'kvm_amd' : 'kvm_intel';
  if (nestedFile === undefined) {
    items.push({
      id: 'kvm.nested',
      title: 'nested virtualisation',
      status: 'WARN',
      detail: `unknown: /sys/module/${mod}/parameters/nested does not exist (${mod} is not loaded)`,
      cost: 'guests cannot run KVM guests of their own',
      fix: virt ? `modprobe ${mod} nested=1` : 'needs hardware KVM first (see cpu.virt)',
    });
  } else if (/^(Y|1)$/i.test(nestedFile.trim())) {
    items.push({ id: 'kvm.nested', title: 'nested virtualisation', status: 'PASS', detail: `${mod} nested=${nestedFile.trim()}` });
  } else {
    items.push({
      id: 'kvm.nested',
      title: 'nested virtualisation',
      status: 'WARN',
      detail: `${mod} nested=${nestedFile.trim()}`,
      cost: 'guests cannot run KVM guests of their own',
      fix: `echo "options ${mod} nested=1" > /etc/modprobe.d/kvm-nested.conf, then reload ${mod} with no VM running`,
    });
  }
  return items;
}

function kernelItems(inp: HostInputs, vendor: CpuVendor, flags: Set<string>, cfg: KernelConfig | undefined): CheckItem[] {
  const items: CheckItem[] = [];
  const kc = inp.kernelConfig;
  const loaded = loadedModules(inp);
  const isLoaded = (m?: string) => !!m && (loaded.has(m) || inp.sysModules.includes(m));
  const hasVirt = flags.has('vmx') || flags.has('svm');
  if (!kc || !cfg) {
    items.push({
      id: 'kernel.config',
      title: 'kernel config',
      status: 'WARN',
      detail: `neither /proc/config.gz nor /boot/config-${inp.kernelRelease} is readable; options below are judged from loaded modules and devices`,
      fix: 'enable IKCONFIG_PROC (General setup → Kernel .config support → Enable access to .config file through /proc/config.gz), or pass --kernel-config FILE',
      menuconfig: 'General setup → Kernel .config support → Enable access to .config file through /proc/config.gz',
    });
  } else {
    items.push({ id: 'kernel.config', title: 'kernel config', status: 'PASS', detail: `${kc.source}${kc.running ? ` (running kernel ${inp.kernelRelease})` : ' (not the running kernel: module and device evidence ignored)'}` });
  }
  // Evidence when no config is available.
  const evidence: Record<string, boolean> = {
    KVM: inp.devices['/dev/kvm'].exists,
    TUN: inp.devices['/dev/net/tun'].exists,
    VHOST_NET: inp.devices['/dev/vhost-net'].exists,
    KSM: inp.files.ksmRun !== undefined,
    CGROUPS: inp.files.cgroupControllers !== undefined || inp.files.cgroupCpuV1 !== undefined,
  };
  for (const o of HOST_OPTIONS) items.push(optionItem(o));
  return items;

  function optionItem(o: HostOption): CheckItem {
    const base = { id: `kernel.${o.name}`, title: `CONFIG_${o.name} (${o.title})` };
    const fixes = { menuconfig: o.menuconfig, gentoo: PACKAGES.kernel.gentoo, debian: PACKAGES.kernel.debian };
    const otherVendor = o.vendor && vendor !== 'other' && o.vendor !== vendor;
    const val = cfg ? (cfg.get(o.name) ?? 'n') : undefined;
    if (otherVendor) {
      return { ...base, status: 'PASS', detail: `${val === undefined ? 'unknown' : `=${val}`}; not needed on this ${vendor === 'amd' ? 'AMD' : 'Intel'} CPU` };
    }
    // A vendor option is only worth a FAIL when the CPU could use it.
    const severity = o.vendor && !hasVirt ? 'WARN' : o.severity;
    const vendorNote = o.vendor && !hasVirt ? ' (useless until the CPU shows vmx/svm, see cpu.virt)' : '';
    if (val === undefined) {
      if (isLoaded(o.module)) return { ...base, status: 'PASS', detail: `module ${o.module} is loaded` };
      if (evidence[o.name]) return { ...base, status: 'PASS', detail: 'present (seen in /dev or /sys)' };
      return { ...base, status: 'WARN', detail: 'unknown (no kernel config, no module or device seen)', cost: o.cost, ...fixes, fix: `set CONFIG_${o.name}=y (or =m)` };
    }
    if (val === 'y') {
      const pvm = o.name === 'KVM' && cfg?.get('KVM_PVM') === 'y' ? '; KVM_PVM=y too (the PVM flavour, for PVM-enabled guest kernels only)' : '';
      return { ...base, status: 'PASS', detail: `built in (=y)${pvm}` };
    }
    if (val === 'm') {
      if (!kc?.running) return { ...base, status: 'PASS', detail: `module (=m${o.module ? `, ${o.module}` : ''})` };
      if (isLoaded(o.module)) return { ...base, status: 'PASS', detail: `module (=m), ${o.module} loaded` };
      return { ...base, status: 'WARN', detail: `module (=m), ${o.module ?? 'it'} not loaded`, cost: o.cost, fix: `modprobe ${o.module} (and list it in /etc/modules-load.d/ to load it at boot)` };
    }
    const noModules = kc?.running && cfg?.get('MODULES') !== 'y';
    return {
      ...base,
      status: severity,
      detail: `not set${vendorNote}`,
      cost: o.cost,
      fix: noModules ? `set CONFIG_${o.name}=y and rebuild the kernel (this kernel has no module support: CONFIG_MODULES is not set)` : `set CONFIG_${o.name}=y (or =m) and rebuild the kernel`,
      ...fixes,
    };
  }
}

function noModules(inp: HostInputs): boolean {
  return !!inp.kernelConfig?.running && parseKernelConfig(inp.kernelConfig.text).get('MODULES') !== 'y';
}

function deviceItems(inp: HostInputs): CheckItem[] {
  const vh = inp.devices['/dev/vhost-net'];
  const tun = inp.devices['/dev/net/tun'];
  return [
    vh.exists && vh.rw
      ? { id: 'dev.vhost-net', title: '/dev/vhost-net', status: 'PASS', detail: 'present, opens read-write' }
      : {
          id: 'dev.vhost-net',
          title: '/dev/vhost-net',
          status: 'WARN',
          detail: vh.exists ? 'present but not readable and writable by this user' : 'missing',
          cost: 'virtio-net without vhost (kvmctl sets vhost=off: QEMU aborts on vhost=on without the device): slower networking',
          fix: vh.exists ? 'make it root:kvm 0660 and add the QEMU user to kvm' : noModules(inp) ? 'enable CONFIG_VHOST_NET=y (this kernel has no module support)' : 'modprobe vhost_net, or enable CONFIG_VHOST_NET',
          menuconfig: HOST_OPTIONS.find((o) => o.name === 'VHOST_NET')!.menuconfig,
        },
    tun.exists
      ? { id: 'dev.tun', title: '/dev/net/tun', status: 'PASS', detail: tun.rw ? 'present, opens read-write' : 'present (not writable by this user: creating taps needs root or CAP_NET_ADMIN)' }
      : {
          id: 'dev.tun',
          title: '/dev/net/tun',
          status: 'FAIL',
          detail: 'missing',
          cost: 'no tap devices: no bridged or host-only networks',
          fix: 'modprobe tun, or enable CONFIG_TUN',
          menuconfig: HOST_OPTIONS.find((o) => o.name === 'TUN')!.menuconfig,
        },
  ];
}

/** "7.2.22" → [7, 2, 22]. */
function versionParts(v: string): number[] {
  return v.split('.').map((x) => Number(x));
}

function toolItems(inp: HostInputs, machine: string): CheckItem[] {
  const { qemu, qemuImg, ip } = inp.tools;
  const items: CheckItem[] = [];
  if (!qemu.path) {
    items.push({ id: 'tool.qemu', title: 'QEMU (qemu-system-x86_64)', status: 'FAIL', detail: 'not found', cost: 'no VM can start', fix: 'install QEMU with the x86_64 system (softmmu) target', ...PACKAGES.qemu });
  } else {
    const v = qemu.version;
    const old = v !== undefined && (versionParts(v)[0] ?? 0) < 7;
    items.push({
      id: 'tool.qemu',
      title: 'QEMU (qemu-system-x86_64)',
      status: v === undefined || old ? 'WARN' : 'PASS',
      detail: `${qemu.path}, ${v ? `version ${v}` : 'version unknown (--version failed)'}; x86_64 softmmu target present`,
      ...(old ? { cost: 'kvmctl is tested with QEMU 7.2 and later; older ones may reject some options', fix: 'upgrade QEMU', ...PACKAGES.qemu } : {}),
    });
    const accels = qemu.accels ?? [];
    items.push(
      accels.includes('kvm')
        ? { id: 'tool.qemu-accel', title: 'QEMU accelerators', status: 'PASS', detail: accels.join(', ') }
        : {
            id: 'tool.qemu-accel',
            title: 'QEMU accelerators',
            status: 'WARN',
            detail: accels.length ? `${accels.join(', ')} (built without KVM)` : 'unknown (-accel help failed)',
            cost: 'this QEMU cannot use KVM even where the host has it',
            fix: 'install a QEMU built with KVM support',
            ...PACKAGES.qemu,
          },
    );
  }
  items.push(
    qemuImg.path
      ? { id: 'tool.qemu-img', title: 'qemu-img', status: 'PASS', detail: `${qemuImg.path}${qemuImg.version ? `, version ${qemuImg.version}` : ''}` }
      : { id: 'tool.qemu-img', title: 'qemu-img', status: 'FAIL', detail: 'not found', cost: 'disks cannot be created, inspected or resized', fix: 'install qemu-img', ...PACKAGES.qemuImg },
  );
  items.push(
    ip.path
      ? { id: 'tool.ip', title: 'ip (iproute2)', status: 'PASS', detail: `${ip.path}${ip.version ? `, iproute2 ${ip.version}` : ''} (does what brctl and tunctl did)` }
      : { id: 'tool.ip', title: 'ip (iproute2)', status: 'FAIL', detail: 'not found', cost: 'no bridges, taps or macvtaps can be managed', fix: 'install iproute2', ...PACKAGES.ip },
  );
  if (machine !== 'x86_64') {
    items.push({ id: 'host.arch', title: 'host architecture', status: 'WARN', detail: `${machine}: x86_64 guests need TCG here`, cost: TCG_COST });
  }
  return items;
}

function groupItem(inp: HostInputs): CheckItem {
  const line = inp.groupFile.split('\n').find((l) => l.startsWith('kvm:'));
  if (!line) {
    return {
      id: 'host.kvm-group',
      title: 'kvm group',
      status: 'WARN',
      detail: 'no kvm group in /etc/group',
      cost: 'QEMU can only use /dev/kvm and /dev/tapN as root; VMs cannot run as an unprivileged user',
      fix: 'groupadd --system kvm; chgrp kvm /dev/kvm; chmod 0660 /dev/kvm (a udev rule keeps it: KERNEL=="kvm", GROUP="kvm", MODE="0660")',
      ...PACKAGES.kvmGroup,
    };
  }
  const members = line.split(':')[3] ?? '';
  const dev = inp.devices['/dev/kvm'];
  if (dev.exists && dev.group && dev.group !== 'kvm') {
    return {
      id: 'host.kvm-group',
      title: 'kvm group',
      status: 'WARN',
      detail: `kvm group exists${members ? ` (members: ${members})` : ''}, but /dev/kvm belongs to group ${dev.group}`,
      cost: 'members of kvm cannot open /dev/kvm',
      fix: 'chgrp kvm /dev/kvm; chmod 0660 /dev/kvm (and a udev rule: KERNEL=="kvm", GROUP="kvm", MODE="0660")',
    };
  }
  return { id: 'host.kvm-group', title: 'kvm group', status: 'PASS', detail: `exists${members ? ` (members: ${members})` : ' (no members)'}` };
}

function iommuItem(inp: HostInputs, vendor: CpuVendor, cfg?: KernelConfig): CheckItem {
  const log = inp.dmesg ?? '';
  const seen = [/DMAR:/.test(log) ? 'DMAR (Intel VT-d)' : '', /AMD-Vi/.test(log) ? 'AMD-Vi' : ''].filter(Boolean);
  if (inp.iommuGroups > 0) {
    return { id: 'host.iommu', title: 'IOMMU (for PCI passthrough)', status: 'PASS', detail: `${inp.iommuGroups} IOMMU groups${seen.length ? `; ${seen.join(', ')} in the kernel log` : ''}` };
  }
  const opt = vendor === 'amd' ? 'AMD_IOMMU' : 'INTEL_IOMMU';
  const optVal = cfg?.get(opt);
  return {
    id: 'host.iommu',
    title: 'IOMMU (for PCI passthrough)',
    status: 'WARN',
    detail: `no IOMMU groups in /sys/kernel/iommu_groups${seen.length ? ` (${seen.join(', ')} in the kernel log)` : ''}${optVal !== undefined ? `; CONFIG_${opt}=${optVal}` : ''}`,
    cost: 'no PCI device passthrough (VFIO) to guests; nothing else needs it',
    fix: `enable VT-d / AMD-Vi in the firmware, CONFIG_${opt}=y, and ${vendor === 'amd' ? 'amd_iommu=on' : 'intel_iommu=on'} iommu=pt on the kernel command line`,
    menuconfig: vendor === 'amd' ? 'Device Drivers → IOMMU Hardware Support → AMD IOMMU support' : 'Device Drivers → IOMMU Hardware Support → Support for Intel IOMMU using DMA Remapping Devices',
  };
}

function meminfoValue(meminfo: string, key: string): number | undefined {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo);
  return m ? Number(m[1]) : undefined;
}

function memoryItems(inp: HostInputs): CheckItem[] {
  const mi = inp.files.meminfo ?? '';
  const total = meminfoValue(mi, 'HugePages_Total') ?? 0;
  const free = meminfoValue(mi, 'HugePages_Free') ?? 0;
  const size = meminfoValue(mi, 'Hugepagesize');
  const thp = /\[(\w+)\]/.exec(inp.files.thp ?? '')?.[1];
  const items: CheckItem[] = [];
  if (total > 0) {
    items.push({ id: 'mem.hugepages', title: 'huge pages', status: 'PASS', detail: `${total} × ${size} kB reserved (${free} free)${thp ? `; transparent huge pages: ${thp}` : ''}` });
  } else if (thp === 'always' || thp === 'madvise') {
    items.push({ id: 'mem.hugepages', title: 'huge pages', status: 'PASS', detail: `transparent huge pages: ${thp} (QEMU madvises guest RAM); none reserved${size ? ` (Hugepagesize ${size} kB)` : ''}` });
  } else {
    items.push({
      id: 'mem.hugepages',
      title: 'huge pages',
      status: 'WARN',
      detail: `no huge pages reserved; transparent huge pages ${thp ?? 'unavailable'}`,
      cost: 'guest memory in 4 KiB pages: more TLB misses, a few % slower',
      fix: 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled, or reserve pages with sysctl vm.nr_hugepages=N',
      menuconfig: 'Memory Management options → Transparent Hugepage Support; File systems → Pseudo filesystems → HugeTLB file system support',
    });
  }
  if (inp.files.ksmRun !== undefined) {
    const run = inp.files.ksmRun.trim();
    const sharing = Number(inp.files.ksmSharing ?? 0);
    items.push({
      id: 'mem.ksm',
      title: 'KSM runtime',
      status: 'PASS',
      detail: `run=${run} (${run === '1' ? 'merging' : run === '2' ? 'unmerging' : 'stopped; kvmctl host ksm on starts it'}), pages_sharing=${sharing}`,
    });
  }
  return items;
}

function clockItem(inp: HostInputs): CheckItem {
  const cur = inp.files.clocksource?.trim();
  const avail = (inp.files.clocksources ?? '').trim().split(/\s+/).filter(Boolean);
  if (cur === 'tsc') return { id: 'time.clocksource', title: 'host clocksource', status: 'PASS', detail: 'tsc (guests can use the KVM PTP clock, ptp_kvm)' };
  return {
    id: 'time.clocksource',
    title: 'host clocksource',
    status: 'WARN',
    detail: `${cur ?? 'unknown'}${avail.length ? ` (available: ${avail.join(' ')})` : ''}`,
    cost: 'the guests’ KVM PTP clock (ptp_kvm) needs the host on the tsc clocksource: /dev/ptp0 in guests fails and chrony cannot sync to the host',
    fix: avail.includes('tsc')
      ? 'echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource (clocksource=tsc on the kernel command line to keep it)'
      : 'the TSC is not usable as a clocksource on this host (unstable TSC); guests must use NTP instead',
  };
}

/** Judge a host from plain data. Pure. */
export function checkHost(inp: HostInputs): CheckItem[] {
  const vendor = cpuVendor(inp.cpuinfo);
  const flags = cpuFlags(inp.cpuinfo);
  const cfg = inp.kernelConfig ? parseKernelConfig(inp.kernelConfig.text) : undefined;
  return [
    ...cpuItems(inp, vendor, flags, cfg),
    ...kernelItems(inp, vendor, flags, cfg),
    ...deviceItems(inp),
    ...toolItems(inp, inp.machine),
    ...firmwareItems(inp.firmware),
    ...tpmItems(inp.tools.swtpm),
    groupItem(inp),
    iommuItem(inp, vendor, cfg),
    ...memoryItems(inp),
    ...tuningItems(inp.tuning),
    clockItem(inp),
  ];
}

export type CheckSummary = { pass: number; warn: number; fail: number; accel: 'kvm' | 'tcg' };

export function summarize(items: CheckItem[]): CheckSummary {
  const n = (s: Status) => items.filter((i) => i.status === s).length;
  const kvm = items.find((i) => i.id === 'kvm.device')?.status === 'PASS' && items.find((i) => i.id === 'cpu.virt')?.status === 'PASS';
  return { pass: n('PASS'), warn: n('WARN'), fail: n('FAIL'), accel: kvm ? 'kvm' : 'tcg' };
}

/** Text for a person: one line per item, and for WARN/FAIL what it costs and how to fix it. */
export function formatCheck(items: CheckItem[], header?: string): string {
  const lines: string[] = [];
  if (header) lines.push(header, '');
  for (const i of items) {
    lines.push(`${i.status.padEnd(4)}  ${i.title}: ${i.detail}`);
    if (i.status === 'PASS') continue;
    if (i.cost) lines.push(`      costs: ${i.cost}`);
    if (i.fix) lines.push(`      fix: ${i.fix}`);
    if (i.menuconfig) lines.push(`      menuconfig: ${i.menuconfig}`);
    if (i.gentoo) lines.push(`      Gentoo: ${i.gentoo}`);
    if (i.debian) lines.push(`      Debian: ${i.debian}`);
  }
  const s = summarize(items);
  lines.push('');
  lines.push(`${s.pass} pass, ${s.warn} warn, ${s.fail} fail. Guests here run under ${s.accel === 'kvm' ? 'KVM (hardware acceleration)' : 'TCG (software emulation, ~10–50× slower than KVM)'}.`);
  return lines.join('\n');
}
