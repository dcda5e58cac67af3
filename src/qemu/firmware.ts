/**
 * Which firmware a VM boots with, from the host's QEMU firmware descriptors (host facts) and the
 * definition. Pure. `bios` is QEMU's built-in SeaBIOS (nothing to pick). `uefi` is OVMF without
 * Secure Boot (works on q35 and pc); `uefi-secure` is OVMF's SMM build with the Microsoft keys
 * enrolled in its vars template (Debian: OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd), q35 only.
 */
import { KvmError } from '../errors.js';
import type { FirmwareImage, HostFacts } from '../host/facts.js';
import type { VmSpec } from '../definition/vm.js';
import { effectiveFirmware } from '../definition/vm-effective.js';

export type FirmwareChoice = {
  type: 'uefi' | 'uefi-secure';
  code: string;
  /** Copied to the VM's own vars file at its first start. */
  varsTemplate?: string;
  /** The code image needs SMM (machine smm=on and a secure pflash). */
  smm: boolean;
  /** Where it came from: a descriptor file, or "the definition". */
  from: string;
};

export const OVMF_HINT = "install Debian's ovmf package (apt-get install ovmf): it puts OVMF's 4M images in /usr/share/OVMF and their descriptors in /usr/share/qemu/firmware";

/** q35 and pc are aliases of the newest versioned machine: match descriptor globs against that shape. */
function canonicalMachine(type: string): string {
  if (type === 'q35') return 'pc-q35-99.0';
  if (type === 'pc') return 'pc-i440fx-99.0';
  return type;
}

const globMatch = (glob: string, s: string) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(s);

export function machineFits(img: FirmwareImage, machineType: string): boolean {
  const m = canonicalMachine(machineType);
  return img.machines.some((g) => globMatch(g, m));
}

/** The firmware of a VM, or undefined for BIOS. Throws FIRMWARE_MISSING (naming the package) when the host has none that fits. */
export function pickFirmware(vm: Pick<VmSpec, 'profile' | 'firmware' | 'agent' | 'tpm' | 'machine'>, facts: Pick<HostFacts, 'firmware'>, machineType = vm.machine.type): FirmwareChoice | undefined {
  const type = effectiveFirmware(vm);
  if (type === 'bios') return undefined;
  const secure = type === 'uefi-secure';
  const imgs = (facts.firmware ?? []).filter((f) => machineFits(f, machineType));
  const has = (f: FirmwareImage, x: string) => f.features.includes(x);
  const found = secure
    ? imgs.find((f) => has(f, 'secure-boot') && has(f, 'enrolled-keys') && has(f, 'requires-smm'))
    : imgs.find((f) => !has(f, 'secure-boot') && !has(f, 'enrolled-keys')) ?? imgs.find((f) => !has(f, 'enrolled-keys'));
  const own = vm.firmware;
  if (own?.code) {
    return { type, code: own.code, varsTemplate: own.varsTemplate ?? found?.varsTemplate, smm: secure || (found ? has(found, 'requires-smm') : false), from: 'the definition' };
  }
  if (!found) {
    const what = secure ? 'UEFI firmware with Secure Boot and the Microsoft keys enrolled' : 'UEFI firmware';
    throw new KvmError('FIRMWARE_MISSING', `${vm.firmware ? 'firmware' : `profile ${vm.profile}`}: no ${what} for machine ${machineType} on this host (no fitting descriptor in /usr/share/qemu/firmware)`, { hint: OVMF_HINT });
  }
  return { type, code: found.code, varsTemplate: own?.varsTemplate ?? found.varsTemplate, smm: has(found, 'requires-smm'), from: found.descriptor };
}
