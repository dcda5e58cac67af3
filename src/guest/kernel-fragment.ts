/**
 * The guest kernel config a VM needs (the seed's §7: virtio drivers built in, 9p for shares, the
 * KVM PTP clock, the RTC options that set the clock at boot), as a .config fragment for
 * `scripts/kconfig/merge_config.sh`, and a check of a guest's .config against it: what is
 * missing, and which emulated-hardware drivers (SATA, e1000, …) may be turned off.
 * Pure: the VM definition (or nothing = everything the seed lists) in, options out.
 */
import { parseKernelConfig } from '../host/kernel-config.js';
import type { VmSpec } from '../definition/vm.js';

export type GuestOption = {
  name: string;
  /** Wanted value: y, or a string such as "rtc0" (with quotes, as in .config). */
  value: string;
  /** Must be =y (a module would be too late, e.g. the root disk without an initramfs). */
  builtin: boolean;
  group: string;
  menuconfig: string;
  why: string;
};

type Def = Omit<GuestOption, 'builtin' | 'group'> & { builtin?: boolean };

const O = (name: string, menuconfig: string, why: string, extra: Partial<Def> = {}): Def => ({ name, value: 'y', menuconfig, why, ...extra });

const DD = 'Device Drivers';
const RTC = `${DD} → Real Time Clock`;
const NETDEV = `${DD} → Network device support`;

/** Every option kvmctl knows, by group. */
export const GROUPS = {
  'virtio-pci': [
    O('PCI', `${DD} → PCI support`, 'virtio devices sit on PCI (q35, pc)', { builtin: true }),
    O('VIRTIO_MENU', `${DD} → Virtio drivers`, 'the virtio driver menu'),
    O('VIRTIO_PCI', `${DD} → Virtio drivers → PCI driver for virtio devices`, 'transport of every virtio device'),
  ],
  'kvm-guest': [
    O('HYPERVISOR_GUEST', 'Processor type and features → Linux guest support', 'paravirtual guest support', { builtin: true }),
    O('PARAVIRT', 'Processor type and features → Linux guest support → Enable paravirtualization code', 'paravirtual clock and spinlocks', { builtin: true }),
    O('KVM_GUEST', 'Processor type and features → Linux guest support → KVM Guest support (including kvmclock)', 'kvmclock; PTP_1588_CLOCK_KVM depends on it', { builtin: true }),
  ],
  'virtio-blk': [O('VIRTIO_BLK', `${DD} → Block devices → Virtio block driver`, 'disks with interface: virtio')],
  'virtio-scsi': [
    O('SCSI_VIRTIO', `${DD} → SCSI device support → SCSI low-level drivers → virtio-scsi support`, 'disks with interface: scsi'),
    O('BLK_DEV_SD', `${DD} → SCSI device support → SCSI disk support`, 'SCSI disks'),
  ],
  nvme: [O('BLK_DEV_NVME', `${DD} → NVME Support → NVM Express block device`, 'disks with interface: nvme')],
  ahci: [
    O('ATA', `${DD} → Serial ATA and Parallel ATA drivers (libata)`, 'disks with interface: ide/sata or cdroms (q35: on the ICH9 AHCI controller)'),
    O('SATA_AHCI', `${DD} → Serial ATA and Parallel ATA drivers (libata) → AHCI SATA support`, 'the q35 SATA controller'),
    O('BLK_DEV_SD', `${DD} → SCSI device support → SCSI disk support`, 'SATA disks are SCSI disks to Linux'),
  ],
  piix: [
    O('ATA', `${DD} → Serial ATA and Parallel ATA drivers (libata)`, 'disks with interface: ide or cdroms (pc: on the PIIX IDE controller)'),
    O('ATA_PIIX', `${DD} → Serial ATA and Parallel ATA drivers (libata) → Intel ESB, ICH, PIIX3, PIIX4 PATA/SATA support`, 'the i440fx (pc) IDE controller'),
    O('BLK_DEV_SD', `${DD} → SCSI device support → SCSI disk support`, 'ATA disks are SCSI disks to Linux'),
  ],
  cdrom: [
    O('BLK_DEV_SR', `${DD} → SCSI device support → SCSI CDROM support`, 'cdroms'),
    O('ISO9660_FS', 'File systems → CD-ROM/DVD Filesystems → ISO 9660 CDROM file system support', 'reading installer ISOs'),
  ],
  'virtio-net': [
    O('NETDEVICES', `${NETDEV}`, 'network devices'),
    O('NET_CORE', `${NETDEV} → Network core driver support`, 'network core drivers'),
    O('VIRTIO_NET', `${NETDEV} → Virtio network driver`, 'NICs with model: virtio'),
  ],
  e1000: [O('E1000', `${NETDEV} → Ethernet driver support → Intel devices → Intel(R) PRO/1000 Gigabit Ethernet support`, 'NICs with model: e1000')],
  e1000e: [O('E1000E', `${NETDEV} → Ethernet driver support → Intel devices → Intel(R) PRO/1000 PCI-Express Gigabit Ethernet support`, 'NICs with model: e1000e')],
  rtl8139: [O('8139CP', `${NETDEV} → Ethernet driver support → Realtek devices → RealTek RTL-8139 C+ PCI Fast Ethernet Adapter support`, 'NICs with model: rtl8139')],
  vmxnet3: [O('VMXNET3', `${NETDEV} → VMware VMXNET3 ethernet driver`, 'NICs with model: vmxnet3')],
  'virtio-console': [O('VIRTIO_CONSOLE', `${DD} → Character devices → Virtio console`, 'virtio serial ports (guest agents, hvc console)')],
  serial: [
    O('SERIAL_8250', `${DD} → Character devices → Serial drivers → 8250/16550 and compatible serial support`, 'the serial console (kvmctl console)', { builtin: true }),
    O('SERIAL_8250_CONSOLE', `${DD} → Character devices → Serial drivers → Console on 8250/16550 and compatible serial port`, 'console=ttyS0 on the kernel command line', { builtin: true }),
  ],
  'virtio-rng': [
    O('HW_RANDOM', `${DD} → Character devices → Hardware Random Number Generator Core support`, 'entropy from the host'),
    O('HW_RANDOM_VIRTIO', `${DD} → Character devices → Hardware Random Number Generator Core support → VirtIO Random Number Generator support`, 'the virtio-rng device (rng: true)'),
  ],
  'virtio-balloon': [O('VIRTIO_BALLOON', `${DD} → Virtio drivers → Virtio balloon driver`, 'give unused guest memory back to the host')],
  '9p': [
    O('NET_9P', 'Networking support → Plan 9 Resource Sharing Support (9P2000)', '9p shares'),
    O('NET_9P_VIRTIO', 'Networking support → Plan 9 Resource Sharing Support (9P2000) → 9P Virtio Transport', '9p over virtio (virtio-9p-pci)'),
    O('NETWORK_FILESYSTEMS', 'File systems → Network File Systems', 'the network file systems menu'),
    O('9P_FS', 'File systems → Network File Systems → Plan 9 Resource Sharing Support (9P2000)', 'mount -t 9p'),
    O('9P_FS_POSIX_ACL', 'File systems → Network File Systems → Plan 9 Resource Sharing Support (9P2000) → 9P POSIX Access Control Lists', 'ACLs on shares (mapped-xattr)'),
  ],
  acpi: [O('ACPI_BUTTON', 'Power management and ACPI options → ACPI Support → Button', 'kvmctl stop (ACPI power button → clean shutdown)')],
  ptp: [
    O('PTP_1588_CLOCK', `${DD} → PTP clock support → PTP clock support`, 'time sync to the host (chrony refclock PHC)'),
    O('PTP_1588_CLOCK_KVM', `${DD} → PTP clock support → KVM virtual PTP clock`, '/dev/ptp0 backed by the host clock (ptp_kvm)'),
  ],
  rtc: [
    O('RTC_CLASS', RTC, 'the RTC subsystem', { builtin: true }),
    O('RTC_HCTOSYS', `${RTC} → Set system time from RTC on startup and resume`, 'the kernel sets the clock at boot (hwclock removed from the boot runlevel)', { builtin: true }),
    O('RTC_HCTOSYS_DEVICE', `${RTC} → RTC used to set the system time`, 'the CMOS RTC is rtc0', { value: '"rtc0"', builtin: true }),
    O('RTC_INTF_SYSFS', `${RTC} → /sys/class/rtc/rtcN (sysfs)`, 'RTC in sysfs', { builtin: true }),
    O('RTC_INTF_PROC', `${RTC} → /proc/driver/rtc (procfs for rtcN)`, 'RTC in procfs', { builtin: true }),
    O('RTC_INTF_DEV', `${RTC} → /dev/rtcN (character devices)`, '/dev/rtc0', { builtin: true }),
    O('RTC_DRV_CMOS', `${RTC} → PC-style 'CMOS'`, 'the emulated PC RTC; built in so rtc0 exists when the kernel sets the clock', { builtin: true }),
  ],
} satisfies Record<string, Def[]>;

export type GroupName = keyof typeof GROUPS;

/** What the seed lists: everything a guest of the seed's kind needs (virtio built in). */
export const SEED_GROUPS: GroupName[] = ['virtio-pci', 'kvm-guest', 'virtio-blk', 'virtio-net', 'virtio-console', 'virtio-rng', 'virtio-balloon', '9p', 'ptp', 'rtc'];

/** Emulated hardware a virtio guest does not need (listed by --check when present). */
export const REMOVABLE: { name: string; group?: GroupName; what: string }[] = [
  { name: 'SATA_AHCI', group: 'ahci', what: 'AHCI SATA controller' },
  { name: 'ATA_PIIX', group: 'piix', what: 'PIIX IDE/SATA controller' },
  { name: 'E1000', group: 'e1000', what: 'Intel PRO/1000 NIC' },
  { name: 'E1000E', group: 'e1000e', what: 'Intel PRO/1000 PCIe NIC' },
  { name: 'IGB', what: 'Intel 82575/82576 NIC' },
  { name: 'R8169', what: 'Realtek 8169 NIC' },
  { name: '8139CP', group: 'rtl8139', what: 'RealTek RTL-8139 C+ NIC' },
  { name: '8139TOO', group: 'rtl8139', what: 'RealTek RTL-8139 NIC' },
  { name: 'VMXNET3', group: 'vmxnet3', what: 'VMware VMXNET3 NIC' },
];

export type GuestNeeds = { label: string; groups: GroupName[]; /** groups whose options must be =y */ builtinGroups: GroupName[]; notes: string[] };

/** Without a VM: everything the seed lists, with the virtio disk and PCI transport built in. */
export function seedNeeds(): GuestNeeds {
  return {
    label: 'every feature the seed lists',
    groups: [...SEED_GROUPS],
    builtinGroups: ['virtio-pci', 'virtio-blk'],
    notes: ['the root disk is on virtio-blk and there is no initramfs (the seed builds the virtio drivers in)'],
  };
}

/** What one VM's features use: disks by interface, NICs by model, shares, rng, serial. */
export function vmNeeds(vm: VmSpec): GuestNeeds {
  const g = new Set<GroupName>(['virtio-pci', 'kvm-guest', 'acpi', 'ptp', 'rtc']);
  const builtin = new Set<GroupName>();
  const notes: string[] = [];
  const pcMachine = /^pc($|-i440fx)/.test(vm.machine.type);
  const ata: GroupName = pcMachine ? 'piix' : 'ahci';
  const diskGroup = (iface: string): GroupName =>
    iface === 'virtio' ? 'virtio-blk' : iface === 'scsi' ? 'virtio-scsi' : iface === 'nvme' ? 'nvme' : ata;
  for (const d of vm.disks) g.add(diskGroup(d.interface));
  if (vm.cdroms.length) {
    g.add(ata);
    g.add('cdrom');
  }
  // Without an initramfs, the root disk's driver (and its transport) must be in the kernel.
  const initramfs = !!vm.kernel?.initrd || vm.kernel?.builtin === 'test-guest';
  const root = vm.disks[0];
  if (root && !initramfs) {
    const rg = diskGroup(root.interface);
    builtin.add(rg);
    if (rg !== 'piix' && rg !== 'ahci') builtin.add('virtio-pci');
    notes.push(`the root disk (${root.file}, ${root.interface}) needs its driver built in: no initramfs is given`);
  } else if (root) {
    notes.push('modules are fine for the disks: the initramfs loads them');
  }
  const nicGroup: Record<string, GroupName> = { virtio: 'virtio-net', e1000: 'e1000', e1000e: 'e1000e', rtl8139: 'rtl8139', vmxnet3: 'vmxnet3' };
  for (const n of vm.nics) {
    g.add(nicGroup[n.model]!);
    if (n.model !== 'virtio') notes.push(`NIC model ${n.model} is emulated hardware: virtio is faster`);
  }
  if (vm.rng !== false) g.add('virtio-rng');
  if (vm.serial === 'socket') g.add('serial');
  if (vm.shares.some((s) => s.driver === '9p')) g.add('9p');
  const order = Object.keys(GROUPS) as GroupName[];
  return { label: `VM "${vm.name}"`, groups: order.filter((x) => g.has(x)), builtinGroups: order.filter((x) => builtin.has(x)), notes };
}

/** The options for a set of needs, deduplicated (an option built in by one group stays built in). */
export function optionsFor(needs: GuestNeeds): GuestOption[] {
  const out = new Map<string, GuestOption>();
  for (const group of needs.groups) {
    for (const d of GROUPS[group] as Def[]) {
      const builtin = !!d.builtin || needs.builtinGroups.includes(group);
      const prev = out.get(d.name);
      if (prev) prev.builtin ||= builtin;
      else out.set(d.name, { ...d, builtin, group });
    }
  }
  return [...out.values()];
}

/** The fragment text, one commented block per group. */
export function formatFragment(needs: GuestNeeds, opts: GuestOption[] = optionsFor(needs)): string {
  const lines = [
    `# kvmctl guest kernel config fragment: ${needs.label}`,
    '# merge into a kernel tree: scripts/kconfig/merge_config.sh .config THIS_FILE && make olddefconfig',
    ...needs.notes.map((n) => `# note: ${n}`),
  ];
  let group = '';
  for (const o of opts) {
    if (o.group !== group) {
      group = o.group;
      lines.push('', `# ${group}`);
    }
    lines.push(`# ${o.menuconfig}${o.builtin ? ' (must be built in)' : ''}`, `CONFIG_${o.name}=${o.value}`);
  }
  return `${lines.join('\n')}\n`;
}

export type OptionVerdict = { name: string; want: string; have: string; ok: boolean; why?: string; builtin: boolean; menuconfig: string };
export type ConfigCheck = { missing: OptionVerdict[]; present: OptionVerdict[]; removable: { name: string; value: string; what: string }[] };

/** Judge a guest .config against the options: =m is present unless the option must be built in. */
export function checkGuestConfig(configText: string, needs: GuestNeeds): ConfigCheck {
  const cfg = parseKernelConfig(configText);
  const missing: OptionVerdict[] = [];
  const present: OptionVerdict[] = [];
  for (const o of optionsFor(needs)) {
    const have = cfg.get(o.name) ?? 'n';
    let ok: boolean;
    let why: string | undefined;
    if (o.value !== 'y') {
      ok = have === o.value;
      if (!ok) why = have === 'n' ? 'not set' : `is ${have}, want ${o.value}`;
    } else if (have === 'y') ok = true;
    else if (have === 'm') {
      ok = !o.builtin;
      if (!ok) why = 'is a module (=m) but must be built in (=y)';
    } else {
      ok = false;
      why = 'not set';
    }
    const v: OptionVerdict = { name: o.name, want: o.value, have, ok, builtin: o.builtin, menuconfig: o.menuconfig, ...(why ? { why } : {}) };
    (ok ? present : missing).push(v);
  }
  const removable = REMOVABLE.filter((r) => !r.group || !needs.groups.includes(r.group))
    .map((r) => ({ name: r.name, value: cfg.get(r.name) ?? 'n', what: r.what }))
    .filter((r) => r.value === 'y' || r.value === 'm');
  return { missing, present, removable };
}

export function formatConfigCheck(file: string, needs: GuestNeeds, c: ConfigCheck): string {
  const lines = [`${file} against ${needs.label}: ${c.present.length} present, ${c.missing.length} missing`];
  for (const m of c.missing) {
    lines.push(`MISSING  CONFIG_${m.name}=${m.want}: ${m.why}`, `         ${m.menuconfig}`);
  }
  if (c.removable.length) {
    lines.push('', 'may be turned off (emulated hardware this guest does not use):');
    for (const r of c.removable) lines.push(`  CONFIG_${r.name}=${r.value}  (${r.what})`);
  }
  return lines.join('\n');
}
