/**
 * The VM management routes' schemas (part of the API contract, src/api/contract.ts): snapshots,
 * logs, the autostart switch — each over the service the CLI uses (src/vm/storage.ts, the VM's
 * runtime files, the definition store).
 */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const snapParams = z.object({ name, snap: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'a snapshot name: letters, digits, "_", "." and "-"' }) });

const overlay = z.object({ name: z.string(), file: z.string(), createdAt: z.string() });
export const snapshotListSchema = z.object({
  vm: z.string(),
  disks: z.array(z.object({ id: z.string(), base: z.string(), top: z.string(), external: z.array(overlay), internal: z.array(z.string()) })),
});
export const snapshotCreateBodySchema = z
  .strictObject({
    /** Default: snap-YYYYMMDD-HHMMSS. */
    name: z.string().optional(),
    /** Only these disk ids (default: every writable disk). */
    disks: z.array(z.string()).optional(),
    /** Don't freeze the guest's filesystems through its agent. */
    noFreeze: z.boolean().optional(),
  })
  .default({});
export const snapshotCreateResultSchema = z.object({
  vm: z.string(),
  name: z.string(),
  mode: z.enum(['external', 'internal']),
  disks: z.array(z.object({ id: z.string(), file: z.string(), backing: z.string().optional() })),
  frozen: z.boolean().optional(),
  note: z.string().optional(),
});
export const snapshotRevertResultSchema = z.object({ vm: z.string(), name: z.string(), mode: z.enum(['external', 'internal']), disks: z.array(z.string()), removed: z.array(z.string()) });
export const snapshotDeleteResultSchema = z.object({ vm: z.string(), name: z.string(), disks: z.array(z.string()) });

export const logParams = z.object({ name, which: z.enum(['qemu', 'serial'], { error: 'qemu or serial' }) });
export const logQuerySchema = z.object({ bytes: z.coerce.number().int().min(1).max(4 * 1024 * 1024).optional() });
export const logResultSchema = z.object({ file: z.string(), sizeBytes: z.number(), text: z.string(), truncated: z.boolean() });

export const autostartBodySchema = z.strictObject({ enabled: z.boolean() });
export const autostartResultSchema = z.object({ name: z.string(), enabled: z.boolean(), action: z.enum(['created', 'configured', 'unchanged']) });

/** A running VM's QEMU options that differ from what its stored definition would start now. */
export const pendingSchema = z.object({ running: z.boolean(), pending: z.boolean(), added: z.array(z.string()), removed: z.array(z.string()), note: z.string().optional() });
