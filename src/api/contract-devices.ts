/**
 * A VM's disks and NICs (part of the API contract, src/api/contract.ts): what it has (sizes, layers,
 * MACs), a disk's resize (live through QMP block_resize when the VM runs, as `kvmctl disk resize`),
 * and adding or removing a disk or NIC: in the stored definition and, while the VM runs, hotplugged
 * (src/vm/devices.ts). `live`: true = now in the running VM or not at all, false = the definition
 * only, left out = live when it can be, else the definition only (the answer says why).
 */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const deviceParams = z.object({ name, id: name });

export const devicesSchema = z.object({
  disks: z.array(
    z.object({
      id: z.string(),
      file: z.string(),
      top: z.string(),
      layers: z.number().int(),
      interface: z.string(),
      readOnly: z.boolean(),
      format: z.string().optional(),
      virtualSize: z.number().optional(),
      exists: z.boolean(),
    }),
  ),
  nics: z.array(z.object({ id: z.string(), attach: z.string(), model: z.string(), mac: z.string() })),
});

export const diskResizeBodySchema = z.strictObject({ size: z.union([z.string().min(1), z.number()]), shrink: z.boolean().optional() });
export const diskResizeResultSchema = z.object({ path: z.string(), from: z.number(), to: z.number(), warnings: z.array(z.string()), live: z.string().optional() });

const diskAttachCommon = {
  id: name.optional(),
  interface: z.enum(['virtio', 'scsi', 'ide', 'sata', 'nvme']).optional(),
  readOnly: z.boolean().optional(),
  live: z.boolean().optional(),
};
export const diskAttachBodySchema = z.union([
  /** An image in a storage root (relative: the images dir). */
  z.strictObject({ file: z.string().min(1), ...diskAttachCommon }),
  /** An RBD volume, STORAGE/VOLUME (kvmctl volume list). */
  z.strictObject({ volume: z.string().min(1), ...diskAttachCommon }),
]);
const liveQuery = z.enum(['true', 'false']).optional();
export const diskDetachQuerySchema = z.object({ deleteImage: z.enum(['true', 'false']).optional(), live: liveQuery });
export const nicRemoveQuerySchema = z.object({ live: liveQuery });

export const nicAddBodySchema = z.union([
  z.strictObject({ network: name, model: z.string().optional(), id: name.optional(), live: z.boolean().optional() }),
  z.strictObject({ user: z.literal(true), model: z.string().optional(), id: name.optional(), live: z.boolean().optional() }),
]);
export const deviceChangeResultSchema = z.object({
  name: z.string(),
  action: z.enum(['created', 'configured', 'unchanged']),
  id: z.string(),
  deleted: z.string().optional(),
  pendingRestart: z.boolean(),
  /** Changed in the running VM now (hotplug). */
  live: z.boolean().optional(),
  /** Why a running VM was not changed live (it changes at its next start). */
  why: z.string().optional(),
  /** The QEMU device and the hotplug port it is on. */
  device: z.string().optional(),
  bus: z.string().optional(),
});
