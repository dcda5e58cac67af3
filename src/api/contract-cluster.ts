/** The cluster routes' schemas (part of the API contract, src/api/contract.ts): src/cluster/service.ts's status and migration, as they are. */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const clusterHostSchema = z.looseObject({
  name: z.string(),
  alive: z.boolean(),
  addr: z.string().optional(),
  leaseId: z.string().optional(),
  /** Seconds left on the host's etcd lease (its agent renews it). */
  leaseTtlLeft: z.number().optional(),
  memTotal: z.number().optional(),
  /** Memory not committed to the VMs placed there. */
  memFree: z.number().optional(),
  cpus: z.number().optional(),
  vms: z.array(z.string()),
});
export const clusterVmSchema = z.looseObject({
  name: z.string(),
  desired: z.looseObject({ state: z.string(), host: z.string().optional() }).optional(),
  owner: z.string().optional(),
  observed: z.looseObject({ state: z.string().optional(), host: z.string().optional() }).optional(),
  ha: z.boolean(),
  memory: z.number().optional(),
  migration: z.looseObject({ from: z.string(), to: z.string(), state: z.string() }).optional(),
});
export const clusterStatusSchema = z.object({
  prefix: z.string(),
  config: z.record(z.string(), z.unknown()).optional(),
  etcd: z.array(z.looseObject({ endpoint: z.string(), ok: z.boolean(), leader: z.boolean().optional(), version: z.string().optional(), error: z.string().optional() })),
  hosts: z.array(clusterHostSchema),
  vms: z.array(clusterVmSchema),
  /** Recent failovers and migrations, newest first (src/cluster/events.ts; the same records come live on the event stream as kind "cluster"). */
  events: z.array(z.looseObject({ type: z.enum(['failover', 'migration']), vm: z.string(), from: z.string(), to: z.string(), at: z.string(), state: z.string().optional(), message: z.string().optional(), by: z.string() })).optional(),
});
export const migrateBodySchema = z.strictObject({ to: name, timeoutSec: z.number().positive().max(3600).optional(), bwlimit: z.number().int().min(1024 * 1024).optional().describe('bytes/s cap for the memory stream and each disk copy') });
export const migrateResultSchema = z.looseObject({ name: z.string(), from: z.string(), to: z.string(), totalMs: z.number(), state: z.string(), stats: z.record(z.string(), z.unknown()).optional(), disks: z.array(z.string()).optional(), leftBehind: z.array(z.string()).optional() });
export const cancelMigrationResultSchema = z.object({ name: z.string(), id: z.string(), from: z.string(), to: z.string() });
