/**
 * ISO images and CD-ROM media (part of the API contract, src/api/contract.ts): the images root's
 * ISO folder (src/disk/iso-upload.ts), an upload streamed as the raw request body, and a running
 * VM's CD-ROM drives (src/vm/storage.ts cdromVm).
 */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const isoSchema = z.object({ name: z.string(), path: z.string(), sizeBytes: z.number(), modified: z.string() });
export const isoListSchema = z.object({ dir: z.string(), maxUploadBytes: z.number(), isos: z.array(isoSchema) });
/** The file name (validated again by the service: a plain name ending in .iso). */
export const isoParams = z.object({ file: z.string().min(1).max(200) });
export const isoUploadQuerySchema = z.object({ replace: z.enum(['true', 'false']).optional() });

export const cdromStateSchema = z.object({ id: z.string(), inserted: z.string().optional(), trayOpen: z.boolean().optional() });
export const cdromListSchema = z.object({ running: z.boolean(), drives: z.array(cdromStateSchema.extend({ defined: z.string().optional() })) });
export const cdromBodySchema = z.union([
  /** An image in a storage root (relative: the images dir, e.g. iso/debian.iso). */
  z.strictObject({ op: z.literal('insert'), file: z.string().min(1), id: name.optional() }),
  z.strictObject({ op: z.literal('eject'), id: name.optional(), force: z.boolean().optional() }),
]);
