/**
 * The volume routes' schemas (part of the API contract, src/api/contract.ts): RBD volumes of a
 * named storage (src/storage/volumes.ts, docs/storage-ceph.md). Storages themselves are host
 * configuration and have no write routes (only a read-only list and check); volumes are data, like disk images.
 */
import { z } from 'zod';

const ident = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'must be a name: letters, digits, "_", "." and "-"' });
const volume = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, { error: 'must be a volume name: letters, digits, "_", "." and "-"' });

export const storageParams = z.object({ storage: ident });
export const volumeParams = z.object({ storage: ident, volume });
export const volumeListSchema = z.array(z.object({ volume: z.string(), size: z.number(), snapshot: z.string().optional(), protected: z.boolean().optional(), parent: z.string().optional() }));
export const volumeInfoSchema = z.object({
  storage: z.string(),
  volume: z.string(),
  size: z.number(),
  features: z.array(z.string()),
  parent: z.string().optional(),
  snapshots: z.number(),
  /** Clients that have the image open (any host). */
  watchers: z.array(z.string()),
  /** VM definitions on this host that name it. */
  usedBy: z.array(z.object({ vm: z.string(), disk: z.string() })),
});
/** size: "20G" or bytes. */
export const volumeCreateBodySchema = z.strictObject({ volume, size: z.union([z.string(), z.number()]) });
export const volumeCreateResultSchema = z.object({ volume: z.string(), size: z.number() });
export const volumeResizeBodySchema = z.strictObject({ size: z.union([z.string(), z.number()]), shrink: z.boolean().optional() });
export const volumeResizeResultSchema = z.object({ volume: z.string(), from: z.number(), to: z.number(), live: z.string().optional() });
export const volumeRemoveResultSchema = z.object({ removed: z.string() });
/** A named storage as listed (src/storage/defs.ts storageSummary): never the key, nor the keyring's path. */
export const storageListSchema = z.array(z.object({
  name: z.string(),
  type: z.enum(['dir', 'rbd']).optional(),
  description: z.string().optional(),
  path: z.string().optional(),
  pool: z.string().optional(),
  namespace: z.string().optional(),
  monitors: z.array(z.string()).optional(),
  conf: z.string().optional(),
  user: z.string().optional(),
  /** The definition no longer validates: why. */
  error: z.string().optional(),
}));
export const storageCheckSchema = z.object({
  storage: z.string(),
  type: z.string(),
  ok: z.boolean(),
  free: z.number().optional(),
  checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })),
});
