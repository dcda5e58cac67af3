/**
 * The host kernel options of the seed's checklist (Gentoo wiki), with the menuconfig path of each
 * (as the seed lists them, updated where newer kernels moved the entry), the module that provides
 * it when built as =m, and what a host loses without it.
 */
export type HostOption = {
  name: string;
  title: string;
  menuconfig: string;
  /** Module name when built as =m (as in /proc/modules and /sys/module). */
  module?: string;
  /** FAIL when missing (kvmctl's core needs it) or WARN (a feature is lost). */
  severity: 'FAIL' | 'WARN';
  /** What the host loses without it. */
  cost: string;
  /** Only relevant on CPUs of this vendor. */
  vendor?: 'intel' | 'amd';
};

export const HOST_OPTIONS: HostOption[] = [
  {
    name: 'KVM',
    title: 'KVM support',
    menuconfig: 'Virtualization → Kernel-based Virtual Machine (KVM) support',
    module: 'kvm',
    severity: 'FAIL',
    cost: 'no /dev/kvm: guests run under TCG software emulation, ~10–50× slower',
  },
  {
    name: 'KVM_INTEL',
    title: 'KVM for Intel processors',
    menuconfig: 'Virtualization → Kernel-based Virtual Machine (KVM) support → KVM for Intel (and compatible) processors support',
    module: 'kvm_intel',
    severity: 'FAIL',
    cost: 'KVM cannot use VT-x on this Intel CPU: guests run under TCG, ~10–50× slower',
    vendor: 'intel',
  },
  {
    name: 'KVM_AMD',
    title: 'KVM for AMD processors',
    menuconfig: 'Virtualization → Kernel-based Virtual Machine (KVM) support → KVM for AMD processors support',
    module: 'kvm_amd',
    severity: 'FAIL',
    cost: 'KVM cannot use AMD-V (SVM) on this AMD CPU: guests run under TCG, ~10–50× slower',
    vendor: 'amd',
  },
  {
    name: 'VHOST_NET',
    title: 'vhost-net (host kernel accelerator for virtio net)',
    menuconfig: 'Device Drivers → VHOST drivers → Host kernel accelerator for virtio net (before Linux 5.x: Virtualization → Host kernel accelerator for virtio net)',
    module: 'vhost_net',
    severity: 'WARN',
    cost: 'virtio-net packets go through QEMU in user space (vhost=off): lower throughput, higher latency and CPU use',
  },
  {
    name: 'TUN',
    title: 'TUN/TAP',
    menuconfig: 'Device Drivers → Network device support → Network core driver support → Universal TUN/TAP device driver support',
    module: 'tun',
    severity: 'FAIL',
    cost: 'no tap devices: guests cannot join bridges (only QEMU user-mode networking is left)',
  },
  {
    name: 'BRIDGE',
    title: '802.1d Ethernet bridging',
    menuconfig: 'Networking support → Networking options → 802.1d Ethernet Bridging',
    module: 'bridge',
    severity: 'WARN',
    cost: 'no bridges: bridged and host-only networks are impossible (macvtap or user-mode only)',
  },
  {
    name: 'BRIDGE_IGMP_SNOOPING',
    title: 'IGMP/MLD snooping on bridges',
    menuconfig: 'Networking support → Networking options → 802.1d Ethernet Bridging → IGMP/MLD snooping',
    severity: 'WARN',
    cost: 'multicast is flooded to every port of a bridge',
  },
  {
    name: 'MACVLAN',
    title: 'MAC-VLAN',
    menuconfig: 'Device Drivers → Network device support → Network core driver support → MAC-VLAN support',
    module: 'macvlan',
    severity: 'WARN',
    cost: 'no macvtap networks (guests directly on a physical NIC without a bridge)',
  },
  {
    name: 'MACVTAP',
    title: 'MAC-VLAN based tap (macvtap)',
    menuconfig: 'Device Drivers → Network device support → Network core driver support → MAC-VLAN based tap driver',
    module: 'macvtap',
    severity: 'WARN',
    cost: 'no macvtap networks (guests directly on a physical NIC without a bridge)',
  },
  {
    name: 'KSM',
    title: 'KSM (kernel samepage merging)',
    menuconfig: 'Memory Management options → Enable KSM for page merging (older kernels: Processor type and features → Enable KSM for page merging)',
    severity: 'WARN',
    cost: 'identical memory pages of guests are never shared: every guest costs its full memory',
  },
  {
    name: 'CGROUPS',
    title: 'control groups',
    menuconfig: 'General setup → Control Group support',
    severity: 'WARN',
    cost: 'no per-VM CPU/memory/IO limits or accounting',
  },
];

/** Gentoo: the kernel is built by hand; these are what the packages behind the other checks are. */
export const PACKAGES = {
  qemu: { gentoo: 'app-emulation/qemu (QEMU_SOFTMMU_TARGETS="x86_64", QEMU_USER_TARGETS="")', debian: 'qemu-system-x86' },
  qemuImg: { gentoo: 'app-emulation/qemu', debian: 'qemu-utils' },
  ip: { gentoo: 'sys-apps/iproute2 (replaces net-misc/bridge-utils and sys-apps/usermode-utilities: ip does brctl and tunctl)', debian: 'iproute2' },
  kvmGroup: { gentoo: 'acct-group/kvm', debian: 'udev (its sysusers/postinst creates the kvm group and the /dev/kvm rule)' },
  kernel: { gentoo: 'sys-kernel/gentoo-sources (rebuild with the option set)', debian: 'linux-image-amd64 (Debian’s stock kernel has it)' },
} as const;
