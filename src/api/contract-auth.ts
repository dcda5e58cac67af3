/**
 * The users/tokens and audit routes' schemas (part of the API contract, src/api/contract.ts), and
 * the roles every route declares (`role`). The token store itself is src/api/users.ts.
 */
import { z } from 'zod';

/** Each includes the one before: viewer reads, operator also runs VMs and opens consoles, admin does everything. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const whoamiSchema = z.object({ user: z.string(), role: z.enum(ROLES), vms: z.string().optional() });
export const tokenViewSchema = z.object({ name: z.string(), role: z.enum(ROLES), vms: z.string().optional(), createdAt: z.string() });
export const tokenListSchema = z.array(tokenViewSchema);
export const tokenCreateBodySchema = z.strictObject({
  name: z.string().min(1),
  role: z.enum(ROLES),
  /** Only VMs whose names match this pattern (`*`, `?`). */
  vms: z.string().min(1).optional(),
});
/** The token itself is in this answer only: it is stored hashed. */
export const tokenCreateResultSchema = tokenViewSchema.extend({ token: z.string() });
export const tokenParams = z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/) });

export const auditQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(10_000).optional(), user: z.string().optional() });
export const auditEntrySchema = z.object({
  at: z.string(),
  user: z.string(),
  role: z.string().optional(),
  method: z.string(),
  route: z.string(),
  target: z.string().optional(),
  status: z.number().int(),
  ms: z.number().optional(),
  ip: z.string().optional(),
});
export const auditListSchema = z.array(auditEntrySchema);
