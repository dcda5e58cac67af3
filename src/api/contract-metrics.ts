/**
 * Metric history and task routes' schemas (part of the API contract, src/api/contract.ts).
 * History comes in columns, the layout uPlot draws: `t` (unix seconds) and one array per field,
 * null where a value is missing (no balloon, the first CPU sample, a gap while the VM was stopped).
 */
import { z } from 'zod';

export const METRIC_RANGES = ['1h', '1d', '30d'] as const;
export const historyQuerySchema = z.object({ range: z.enum(METRIC_RANGES).default('1h') });
export const historySchema = z.object({
  range: z.enum(METRIC_RANGES),
  /** Seconds between samples at this range: the sample interval (1h, 1d) or 30× it (30d). */
  stepSec: z.number(),
  fields: z.array(z.string()),
  t: z.array(z.number()),
  series: z.record(z.string(), z.array(z.number().nullable())),
  /** What the last sampling pass cost (host history only). */
  sampler: z.object({ intervalMs: z.number(), lastTickMs: z.number(), lastTickCpuMs: z.number(), lastTickVms: z.number() }).optional(),
});
export type HistoryDto = z.infer<typeof historySchema>;

/* ------------------------------------------------------------------ tasks */

export const TASK_STATES = ['running', 'ok', 'failed', 'cancelled'] as const;
export const taskLogLineSchema = z.object({ at: z.string(), line: z.string() });
export const taskSummarySchema = z.object({
  id: z.string(),
  /** What it does: the API route's id (startVm, createDisk, createBackup, …) or a CLI command. */
  kind: z.string(),
  /** The VM (or image, network) it works on. */
  target: z.string().optional(),
  /** Who started it: the API user or token name when there is one, "api" (the token), "local" (the unix socket), "cli". */
  owner: z.string(),
  state: z.enum(TASK_STATES),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  /** 0..100 when the operation reports progress, else null. */
  progress: z.number().nullable(),
  cancellable: z.boolean(),
  logLines: z.number().int(),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).optional(),
});
export const taskSchema = taskSummarySchema.extend({ log: z.array(taskLogLineSchema), result: z.unknown().optional() });
export type TaskSummaryDto = z.infer<typeof taskSummarySchema>;
export type TaskDto = z.infer<typeof taskSchema>;
export const taskListSchema = z.array(taskSummarySchema);
export const taskParams = z.object({ id: z.string().regex(/^[a-z0-9-]{1,40}$/, { error: 'must be a task id such as mj3k2a1-0007' }) });
export const taskListQuerySchema = z.object({
  vm: z.string().optional(),
  state: z.enum(TASK_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export const taskLogQuerySchema = z.object({ since: z.coerce.number().int().min(0).default(0) });
export const taskLogSchema = z.object({ id: z.string(), state: z.enum(TASK_STATES), lines: z.array(taskLogLineSchema), next: z.number().int() });
