/**
 * The backup routes' schemas (part of the API contract, src/api/contract.ts). The repository is
 * always the host's default (host.json backup.repository, else <data>/backups): an API client
 * cannot point kvmctl at another directory.
 */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const backupParams = z.object({ name, id: z.string().regex(/^(\d{8}T\d{6}Z(-\d+)?|latest)$/, { error: 'must be a backup ID such as 20261207T065338Z, or latest' }) });

const manifestDisk = z.looseObject({ id: z.string(), file: z.string(), kind: z.enum(['full', 'incremental']), virtualSize: z.number(), fileSize: z.number(), sha256: z.string() });
export const backupManifestSchema = z.looseObject({
  id: z.string(),
  vm: z.string(),
  createdAt: z.string(),
  kind: z.enum(['full', 'incremental']),
  parent: z.string().optional(),
  frozen: z.boolean(),
  /** The VM's state at the backup: a stopped VM's disks were at rest. */
  vmState: z.string(),
  note: z.string().optional(),
  disks: z.array(manifestDisk),
  durationMs: z.number(),
});
export const backupListSchema = z.array(backupManifestSchema);

export const backupCreateBodySchema = z
  .strictObject({
    /** auto (default): incremental whenever it is safe, else full with the reason. */
    mode: z.enum(['auto', 'full', 'incremental']).optional(),
    /** false: do not freeze the guest's filesystems through the agent. */
    freeze: z.boolean().optional(),
    /** Bandwidth limit of the copy, per second and disk (e.g. "50M"; QEMU's block job speed). */
    bwlimit: z.union([z.string().min(1), z.number().int().positive()]).optional(),
  })
  .optional();
export const backupCreateResultSchema = z.object({ repo: z.string(), dir: z.string(), manifest: backupManifestSchema, bytes: z.number(), reason: z.string().optional() });

export const backupVerifyResultSchema = z.object({
  backup: z.string(),
  ok: z.boolean(),
  problems: z.array(z.string()),
  disks: z.array(z.object({ id: z.string(), files: z.number(), sha256: z.string(), ok: z.boolean() })),
});

export const backupRestoreBodySchema = z.strictObject({ as: name.optional(), force: z.boolean().optional() }).optional();
export const backupRestoreResultSchema = z.object({
  vm: z.string(),
  from: z.string(),
  definition: z.enum(['created', 'kept']),
  disks: z.array(z.object({ id: z.string(), file: z.string(), replaced: z.boolean() })),
  nvram: z.string().optional(),
  tpm: z.string().optional(),
});

const keep = z.number().int().min(0).max(10_000).optional();
export const backupPruneBodySchema = z.strictObject({ keepLast: keep, keepHourly: keep, keepDaily: keep, keepWeekly: keep, keepMonthly: keep, keepYearly: keep, dryRun: z.boolean().optional() });
export const backupPruneResultSchema = z.object({
  vm: z.string(),
  kept: z.array(z.object({ id: z.string(), by: z.string() })),
  removed: z.array(z.string()),
  merged: z.array(z.object({ into: z.string(), from: z.string(), disks: z.array(z.string()) })),
  dryRun: z.boolean(),
  anchors: z.object({ removed: z.array(z.string()), failed: z.array(z.string()) }).optional(),
});

export const backupTasksSchema = z.array(
  z.object({
    vm: z.string(),
    schedule: z.string(),
    next: z.string(),
    running: z.boolean(),
    last: z.object({ at: z.string(), ok: z.boolean(), id: z.string().optional(), kind: z.string().optional(), reason: z.string().optional(), error: z.string().optional(), pruned: z.number().optional() }).optional(),
  }),
);
