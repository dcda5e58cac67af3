/**
 * Host facts: what the host can do, probed once (src/host/probe.ts) and passed to the pure
 * argv builder as data. Tests build these by hand for "a KVM host" and "this machine".
 */
export type HostFacts = {
  qemuBinary: string;
  /** e.g. "7.2.22"; undefined when QEMU is not installed. */
  qemuVersion?: string;
  /** /dev/kvm exists, opens read-write, and the CPU has hardware virtualisation (vmx/svm). */
  kvm: boolean;
  /** Why KVM is not usable, for the one warning. */
  kvmWhy?: string;
  /** /dev/vhost-net exists. */
  vhostNet: boolean;
  /** Machine types QEMU knows (`-machine help`), including aliases such as q35. */
  machines: string[];
  /** Accelerators QEMU was built with (`-accel help`). */
  accels: string[];
  /** How QEMU drops privileges: `-runas` (≤ 8.x) or `-run-with user=` (≥ 9.1); none if neither. */
  runAs: 'runas' | 'run-with' | 'none';
  /** QEMU accepts `-sandbox`. */
  sandbox: boolean;
  /** Host TSC rate in kHz (constant TSC only): a TCG guest's TSC ticks at this rate (see machineLayout in argv.ts). */
  tscKhz?: number;
};

/** Facts of a KVM host with vhost-net and a modern QEMU: for golden tests and docs. */
export const KVM_HOST_FACTS: HostFacts = {
  qemuBinary: '/usr/bin/qemu-system-x86_64',
  qemuVersion: '7.2.22',
  kvm: true,
  vhostNet: true,
  machines: ['q35', 'pc', 'microvm', 'pc-q35-7.2', 'pc-i440fx-7.2', 'none'],
  accels: ['kvm', 'tcg'],
  runAs: 'runas',
  sandbox: true,
};

/** Facts of this project's machine kind: no usable KVM, no vhost-net. */
export const TCG_HOST_FACTS: HostFacts = {
  ...KVM_HOST_FACTS,
  kvm: false,
  kvmWhy: 'the CPU has no hardware virtualisation (no vmx/svm flag)',
  vhostNet: false,
};
