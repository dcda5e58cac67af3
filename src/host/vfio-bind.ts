/**
 * Managed PCI passthrough (`pci[].managed`, default on; libvirt's managed='yes'): before QEMU
 * starts, every device of the IOMMU group of each `pci:` device is bound to vfio-pci through sysfs
 * (`driver_override`, unbind from the current driver, `drivers_probe`), and what was taken is
 * written to `<run>/vms/VM/vfio.json` ahead of each change; on stop, kill, a failed start and when a
 * dead QEMU is found (src/vm/status.ts cleanupDead) each device is given back to the driver it had.
 *
 * Left alone: members already on vfio-pci, PCIe ports/bridges (pcieport) and pci-stub. Refused
 * before anything is written (src/vm/tuning-check.ts): a member the host is using now — an up
 * network interface, a mounted or held block device, the boot VGA (see PciDeviceFact.inUse).
 *
 * The sysfs root is a parameter (KVMCTL_SYSFS, the host fact tests point at a fixture tree); the
 * writer is one too, so a unit test can play the kernel's part. There are no real PCI devices on
 * the development machine: nothing here has run against real hardware.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { VFIO_KEEP_DRIVERS, type TuningFacts } from './tuning-facts.js';

/** One device kvmctl moved to vfio-pci, and the driver it had (undefined: none). */
export type VfioTaken = { address: string; driver?: string };
export type VfioRecord = { sysfs: string; taken: VfioTaken[] };
export type SysfsWrite = (file: string, text: string) => void;

const realWrite: SysfsWrite = (file, text) => fs.writeFileSync(file, text);

const driverOf = (sysRoot: string, addr: string): string | undefined => {
  try {
    return path.basename(fs.readlinkSync(path.join(sysRoot, 'bus/pci/devices', addr, 'driver')));
  } catch {
    return undefined;
  }
};

/** The devices a managed start moves to vfio-pci for these `pci:` addresses, each group once. Pure. */
export function vfioPlan(addrs: string[], f: TuningFacts): VfioTaken[] {
  const want = new Set(addrs);
  const out = new Map<string, VfioTaken>();
  for (const a of addrs) {
    const g = f.iommuGroups.find((x) => x.group === f.pciDevices[a]?.iommuGroup);
    for (const d of g?.devices ?? []) {
      if (d.driver === 'vfio-pci' || out.has(d.address)) continue;
      if (!want.has(d.address) && d.driver && VFIO_KEEP_DRIVERS.has(d.driver)) continue;
      out.set(d.address, { address: d.address, driver: d.driver });
    }
  }
  return [...out.values()];
}

/**
 * Bind the planned devices to vfio-pci. `record` gets the list of what was (or is about to be)
 * taken before each device is touched, so a crash between two writes still gives it back.
 * Throws VFIO_* when a bind does not take; the caller gives back what the record holds.
 */
export function bindVfio(sysRoot: string, plan: VfioTaken[], record: (taken: VfioTaken[]) => void, write: SysfsWrite = realWrite): VfioTaken[] {
  const taken: VfioTaken[] = [];
  if (!plan.length) return taken;
  if (!fs.existsSync(path.join(sysRoot, 'bus/pci/drivers/vfio-pci')))
    throw new KvmError('VFIO_MISSING', 'the vfio-pci driver is not loaded, so no PCI device can be passed through', { exit: 2, hint: 'modprobe vfio-pci (and vfio_iommu_type1); then start again' });
  for (const t of plan) {
    const dev = path.join(sysRoot, 'bus/pci/devices', t.address);
    taken.push(t);
    record([...taken]);
    try {
      write(path.join(dev, 'driver_override'), 'vfio-pci');
      if (driverOf(sysRoot, t.address)) write(path.join(dev, 'driver', 'unbind'), t.address);
      write(path.join(sysRoot, 'bus/pci/drivers_probe'), t.address);
    } catch (e) {
      throw new KvmError('VFIO_BIND_FAILED', `could not bind ${t.address} to vfio-pci: ${e instanceof Error ? e.message : String(e)}`, { hint: 'see dmesg; the devices taken so far were given back' });
    }
    const now = driverOf(sysRoot, t.address);
    if (now !== 'vfio-pci')
      throw new KvmError('VFIO_BIND_FAILED', `${t.address} is on ${now ?? 'no driver'} after the bind, not vfio-pci`, { hint: 'see dmesg (is the IOMMU on, does vfio-pci accept the device?); the devices taken so far were given back' });
  }
  return taken;
}

/**
 * Give each taken device back: clear driver_override, unbind from vfio-pci, and let the kernel
 * probe its driver again (bind to that driver by name when the probe chose another). Never
 * throws: what could not be given back is returned as warnings.
 */
export function releaseVfio(sysRoot: string, taken: VfioTaken[], write: SysfsWrite = realWrite): string[] {
  const warnings: string[] = [];
  for (const t of [...taken].reverse()) {
    const dev = path.join(sysRoot, 'bus/pci/devices', t.address);
    try {
      write(path.join(dev, 'driver_override'), '\n');
      if (driverOf(sysRoot, t.address) === 'vfio-pci') write(path.join(dev, 'driver', 'unbind'), t.address);
      if (!t.driver) continue; // it had no driver: leave it unbound
      try {
        write(path.join(sysRoot, 'bus/pci/drivers_probe'), t.address);
      } catch {
        /* no driver matched: bind by name below */
      }
      const probed = driverOf(sysRoot, t.address);
      if (probed !== t.driver && fs.existsSync(path.join(sysRoot, 'bus/pci/drivers', t.driver))) {
        if (probed) write(path.join(dev, 'driver', 'unbind'), t.address); // a bind to a bound device fails (EBUSY)
        write(path.join(sysRoot, 'bus/pci/drivers', t.driver, 'bind'), t.address);
      }
      const now = driverOf(sysRoot, t.address);
      if (now !== t.driver) warnings.push(`${t.address} is on ${now ?? 'no driver'} after the give-back, not ${t.driver}`);
    } catch (e) {
      warnings.push(`could not give ${t.address} back to ${t.driver ?? 'no driver'}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return warnings;
}

/** The record file of a VM's run dir. */
export const vfioRecordFile = (runDir: string) => path.join(runDir, 'vfio.json');

export function writeVfioRecord(runDir: string, rec: VfioRecord): void {
  const f = vfioRecordFile(runDir);
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(rec));
  fs.renameSync(`${f}.tmp`, f);
}

/** Give back what a VM's record holds (stop, kill, a dead QEMU found) and remove the record. */
export function releaseVfioRecord(runDir: string, write: SysfsWrite = realWrite): string[] {
  const f = vfioRecordFile(runDir);
  let rec: VfioRecord;
  try {
    rec = JSON.parse(fs.readFileSync(f, 'utf8')) as VfioRecord;
  } catch {
    return [];
  }
  const warnings = releaseVfio(rec.sysfs, rec.taken ?? [], write);
  fs.rmSync(f, { force: true });
  return warnings;
}
