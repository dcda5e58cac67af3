/**
 * A VM's tuned hardware (part of the API contract, src/api/contract.ts; docs/tuning.md): the
 * memory balloon target, the vCPU count (hotplug up to cpu.maxCount, re-pinned), the pinning QEMU's
 * threads really have (/proc), usb-host devices plugged into a running VM, the host's USB devices
 * and the definition's PCI passthrough devices. The service is src/vm/hotplug.ts and
 * src/vm/hardware.ts, as the CLI's `kvmctl memory|cpu|usb`. Nothing here changes the definition.
 */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const usbParams = z.object({ name, id: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,31}$/) });

export const balloonSchema = z.object({ name: z.string(), memory: z.number(), actual: z.number(), target: z.number().optional() });
/** "512M", "2G" or bytes; 64M … memory.size. */
export const balloonBodySchema = z.strictObject({ size: z.union([z.string().min(1), z.number().int().positive()]) });

export const cpuInfoSchema = z.object({ name: z.string(), running: z.boolean(), boot: z.number().int(), max: z.number().int(), present: z.number().int().optional() });
export const cpuSetBodySchema = z.strictObject({ count: z.number().int().min(1).max(1024) });
const pinEntry = z.object({ tid: z.number().int(), cpus: z.string(), what: z.string() });
export const cpuSetResultSchema = z.object({
  name: z.string(),
  before: z.number().int(),
  after: z.number().int(),
  added: z.array(z.string()),
  removed: z.array(z.string()).optional(),
  pinned: z.array(pinEntry).optional(),
});

export const pinningSchema = z.object({
  name: z.string(),
  pid: z.number().int(),
  /** The definition has cpu.pin. */
  pinned: z.boolean(),
  threads: z.array(z.object({ tid: z.number().int(), what: z.string(), wanted: z.string().optional(), actual: z.string().optional(), matches: z.boolean() })),
});

export const usbPluggedSchema = z.array(z.object({ id: z.string(), vendor: z.string().optional(), product: z.string().optional(), bus: z.number().int().optional(), port: z.string().optional() }));
/** VENDOR:PRODUCT in hex (046d:c52b) or BUS-PORT (1-1.4); id: the QEMU device id (default usbhotN). */
export const usbAttachBodySchema = z.strictObject({ device: z.string().min(1).max(40), id: z.string().min(1).max(32).optional() });
export const usbAttachResultSchema = z.object({
  name: z.string(),
  id: z.string(),
  device: z.union([z.object({ vendor: z.string(), product: z.string() }), z.object({ bus: z.number().int(), port: z.string() })]),
});
export const usbDetachResultSchema = z.object({ name: z.string(), id: z.string() });

export const hostUsbSchema = z.array(
  z.object({
    address: z.string(),
    bus: z.number().int(),
    port: z.string(),
    vendor: z.string(),
    product: z.string(),
    manufacturer: z.string().optional(),
    name: z.string().optional(),
    speed: z.string().optional(),
    driver: z.string().optional(),
  }),
);

export const pciDevicesSchema = z.array(
  z.object({
    host: z.string(),
    managed: z.boolean(),
    multifunction: z.boolean().optional(),
    rom: z.string().optional(),
    /** The host driver bound now (vfio-pci while the VM has it). */
    driver: z.string().optional(),
    iommuGroup: z.number().int().optional(),
    /** This VM's start moved it to vfio-pci (its stop gives it back). */
    takenByKvmctl: z.boolean(),
  }),
);
