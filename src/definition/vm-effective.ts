/**
 * What a definition means once its profile's defaults are applied: the firmware, the guest agent
 * channel and the TPM. Type-only imports, so the argv builder and `start` do not load zod.
 *
 * | profile  | firmware    | agent | tpm |
 * |----------|-------------|-------|-----|
 * | standard | bios        | off   | –   |
 * | fast     | bios (qboot/microvm) | off | – |
 * | server   | uefi-secure | on    | –   |
 * | desktop  | uefi-secure | on    | 2.0 |
 */
import type { VmSpec } from './vm.js';

export type FirmwareType = 'bios' | 'uefi' | 'uefi-secure';
type Profiled = Pick<VmSpec, 'profile' | 'firmware' | 'agent' | 'tpm'>;

/** Spare PCIe root ports for hotplug when the default applies: q35 gets 4 (as libvirt/virt-install give a q35 guest spare ports), the fast profile none (each port is PCI enumeration at boot). */
export const DEFAULT_HOTPLUG_SLOTS = 4;

/** The hotplug root ports a VM gets on the machine it really runs on (`machineType`, after the fast profile's choice). */
export function effectiveHotplugSlots(vm: Pick<VmSpec, 'profile' | 'machine'>, machineType: string): number {
  if (!(machineType === 'q35' || /^pc-q35-/.test(machineType))) return 0;
  return vm.machine.hotplugSlots ?? (vm.profile === 'fast' ? 0 : DEFAULT_HOTPLUG_SLOTS);
}

const realGuest = (vm: Profiled) => vm.profile === 'server' || vm.profile === 'desktop';

export function effectiveFirmware(vm: Profiled): FirmwareType {
  return vm.firmware?.type ?? (realGuest(vm) ? 'uefi-secure' : 'bios');
}

export function effectiveAgent(vm: Profiled): boolean {
  return vm.agent ?? realGuest(vm);
}

export type TpmSpec = { version: '2.0' | '1.2'; state?: string };

export function effectiveTpm(vm: Profiled): TpmSpec | undefined {
  if (vm.tpm === false) return undefined;
  return vm.tpm ?? (vm.profile === 'desktop' ? { version: '2.0' } : undefined);
}
