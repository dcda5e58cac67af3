/** `host check` lines for firmware (which UEFI images the host's descriptors offer) and the vTPM (swtpm). Pure. */
import type { CheckItem } from './check-types.js';
import type { FirmwareImage } from './facts.js';
import type { ToolState } from './check-types.js';
import { machineFits } from '../qemu/firmware.js';

const FIX = { fix: 'apt-get install ovmf', debian: 'apt-get install ovmf' };

export function firmwareItems(imgs: FirmwareImage[] | undefined): CheckItem[] {
  if (imgs === undefined) return [];
  const has = (f: FirmwareImage, x: string) => f.features.includes(x);
  const plain = imgs.find((f) => !has(f, 'secure-boot') && !has(f, 'enrolled-keys')) ?? imgs.find((f) => !has(f, 'enrolled-keys'));
  const secure = imgs.find((f) => has(f, 'secure-boot') && has(f, 'enrolled-keys') && has(f, 'requires-smm'));
  const line = (f: FirmwareImage) => `${f.code} + vars ${f.varsTemplate ?? '(none)'} (${f.descriptor}; machines ${f.machines.join(' ')}${machineFits(f, 'pc') ? '' : ', not pc'})`;
  return [
    plain
      ? { id: 'firmware.uefi', title: 'UEFI firmware (firmware: uefi)', status: 'PASS', detail: line(plain) }
      : { id: 'firmware.uefi', title: 'UEFI firmware (firmware: uefi)', status: 'WARN', detail: 'no OVMF descriptor in /usr/share/qemu/firmware', cost: 'VMs with firmware uefi cannot start', ...FIX },
    secure
      ? { id: 'firmware.uefi-secure', title: 'UEFI Secure Boot firmware (firmware: uefi-secure)', status: 'PASS', detail: `${line(secure)}; Microsoft keys enrolled` }
      : { id: 'firmware.uefi-secure', title: 'UEFI Secure Boot firmware (firmware: uefi-secure)', status: 'WARN', detail: 'no OVMF build with Secure Boot, SMM and enrolled keys', cost: 'VMs with firmware uefi-secure (profiles server, desktop) cannot start', ...FIX },
  ];
}

export function tpmItems(swtpm: ToolState | undefined): CheckItem[] {
  if (swtpm === undefined) return [];
  return [
    swtpm.path
      ? { id: 'tool.swtpm', title: 'swtpm (vTPM: tpm)', status: 'PASS', detail: `${swtpm.path}${swtpm.version ? `, version ${swtpm.version}` : ''}` }
      : { id: 'tool.swtpm', title: 'swtpm (vTPM: tpm)', status: 'WARN', detail: 'not found', cost: 'VMs with a TPM (profile desktop, tpm:) cannot start', fix: 'apt-get install swtpm swtpm-tools', debian: 'apt-get install swtpm swtpm-tools' },
  ];
}
