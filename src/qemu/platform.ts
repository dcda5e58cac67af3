/**
 * The platform devices of a real guest, for the pure argv builder: UEFI pflash (code read-only,
 * the VM's own vars), the guest agent's virtio-serial channel, the TPM (swtpm's control socket,
 * src/vm/swtpm.ts), UEFI boot order, and the spare PCIe root ports for hotplug. Pure.
 *
 * OVMF ignores `-boot order=` (it only reads the `bootorder` fw_cfg file QEMU makes from the
 * devices' `bootindex`), so under UEFI every bootable device gets a bootindex in the order the
 * definition asks for; an install boot (`boot.once`) puts its class first for that start only.
 */
import type { VmSpec } from '../definition/vm.js';
import { qemuEscape, qemuOpts } from './escape.js';
import type { FirmwareChoice } from './firmware.js';

export const AGENT_CHANNEL = 'org.qemu.guest_agent.0';

export function firmwareArgs(fw: FirmwareChoice, vars: string): string[] {
  const a: string[] = [];
  // The SMM build refuses to boot unless its flash can be written only from SMM.
  if (fw.smm) a.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
  a.push('-drive', qemuOpts(undefined, { if: 'pflash', format: 'raw', unit: 0, file: fw.code, readonly: true }));
  a.push('-drive', qemuOpts(undefined, { if: 'pflash', format: 'raw', unit: 1, file: vars }));
  return a;
}

export function agentArgs(socket: string, mmio: boolean): string[] {
  return [
    '-device', `${mmio ? 'virtio-serial-device' : 'virtio-serial-pci'},id=vser0`,
    '-chardev', `socket,id=qga0,path=${qemuEscape(socket)},server=on,wait=off`,
    '-device', `virtserialport,bus=vser0.0,chardev=qga0,name=${AGENT_CHANNEL}`,
  ];
}

/** TPM 2.0 on the CRB interface (what Windows 11 and systemd expect), 1.2 on TIS (CRB is 2.0 only). */
export function tpmArgs(socket: string, version: '2.0' | '1.2'): string[] {
  return [
    '-chardev', `socket,id=chrtpm,path=${qemuEscape(socket)}`,
    '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm',
    '-device', `${version === '2.0' ? 'tpm-crb' : 'tpm-tis'},tpmdev=tpm0`,
  ];
}

export type BootIndexes = { disks: (number | undefined)[]; cdroms: (number | undefined)[]; nics: (number | undefined)[] };

/** bootindex per device under UEFI: classes in boot order (the once class first on an install boot). */
export function uefiBootIndexes(vm: Pick<VmSpec, 'boot' | 'disks' | 'cdroms' | 'nics'>, bootOnce: boolean): BootIndexes {
  const out: BootIndexes = { disks: vm.disks.map(() => undefined), cdroms: vm.cdroms.map(() => undefined), nics: vm.nics.map(() => undefined) };
  const order = [...(bootOnce && vm.boot?.once ? [vm.boot.once] : []), ...(vm.boot?.order ?? ['disk', 'cdrom'])];
  let n = 0;
  for (const cls of [...new Set(order)]) {
    const list = cls === 'disk' ? out.disks : cls === 'cdrom' ? out.cdroms : out.nics;
    for (let i = 0; i < list.length; i++) list[i] = n++;
  }
  return out;
}

/** Root-port ids for hotplug (kvhp0, kvhp1, …): src/vm/device-hotplug.ts finds a free one by this prefix. */
export const HOTPLUG_PORT_PREFIX = 'kvhp';

/**
 * Spare pcie-root-ports for hotplug on q35 (machine.hotplugSlots). Placed after every other
 * device, so the devices of a definition keep the PCI addresses they had without them.
 */
export function hotplugPortArgs(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push('-device', `pcie-root-port,id=${HOTPLUG_PORT_PREFIX}${i},chassis=${i + 1},port=0x${(0x10 + i).toString(16)}`);
  return out;
}
