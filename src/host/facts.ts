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
  /** CPU models QEMU knows (`-cpu help`: named models, versions and aliases, host, max); undefined = not probed. */
  cpuModels?: string[];
  /** CPUID feature flags QEMU recognises (`-cpu help`, "Recognized CPUID flags"). */
  cpuFlags?: string[];
  /** Firmware images described by the host's QEMU firmware descriptors (/usr/share/qemu/firmware/*.json), in priority order. */
  firmware?: FirmwareImage[];
};

/** One QEMU firmware descriptor (docs/interop/firmware.json), reduced to what kvmctl uses. */
export type FirmwareImage = {
  /** The descriptor file. */
  descriptor: string;
  description: string;
  /** Executable (code) image, raw pflash. */
  code: string;
  /** NVRAM (vars) template, copied per VM. */
  varsTemplate?: string;
  /** e.g. secure-boot, enrolled-keys, requires-smm. */
  features: string[];
  /** Machine type globs for x86_64, e.g. pc-q35-*. */
  machines: string[];
};

/** The descriptors Debian 12's ovmf package installs (2022.11). */
export const DEBIAN_OVMF: FirmwareImage[] = [
  {
    descriptor: '/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json',
    description: 'UEFI firmware for x86_64, with Secure Boot and SMM, SB enabled, MS certs enrolled',
    code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd',
    varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    features: ['acpi-s3', 'amd-sev', 'enrolled-keys', 'requires-smm', 'secure-boot', 'verbose-dynamic'],
    machines: ['pc-q35-*'],
  },
  {
    descriptor: '/usr/share/qemu/firmware/50-edk2-x86_64-secure.json',
    description: 'UEFI firmware for x86_64, with Secure Boot and SMM, empty varstore',
    code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
    varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd',
    features: ['acpi-s3', 'amd-sev', 'requires-smm', 'secure-boot', 'verbose-dynamic'],
    machines: ['pc-q35-*'],
  },
  {
    descriptor: '/usr/share/qemu/firmware/60-edk2-x86_64.json',
    description: 'UEFI firmware for x86_64, without Secure Boot without SMM, with empty varstore',
    code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
    varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd',
    features: ['acpi-s3', 'amd-sev', 'verbose-dynamic'],
    machines: ['pc-i440fx-*', 'pc-q35-*'],
  },
];

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
  firmware: DEBIAN_OVMF,
};

/** Facts of this project's machine kind: no usable KVM, no vhost-net. */
export const TCG_HOST_FACTS: HostFacts = {
  ...KVM_HOST_FACTS,
  kvm: false,
  kvmWhy: 'the CPU has no hardware virtualisation (no vmx/svm flag)',
  vhostNet: false,
};
