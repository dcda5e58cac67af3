/**
 * Backup schedules, pure: the definition's `backup.schedule` text and when it is next due.
 *
 *   hourly | daily | weekly         at minute 0 / 00:00 / Monday 00:00
 *   every 6h | every 30m            from the last run (or from when kvmctl serve first saw it)
 *   HH:MM | daily HH:MM             every day at that time
 *   weekly DAY HH:MM                DAY = mon … sun
 *
 * Times are the host's local time. A run missed while `kvmctl serve` was down happens once, as
 * soon as it is back (like anacron), not once per missed slot.
 */
import { z } from 'zod';

export type Schedule =
  | { kind: 'interval'; ms: number }
  | { kind: 'hourly'; minute: number }
  | { kind: 'daily'; hour: number; minute: number }
  | { kind: 'weekly'; day: number; hour: number; minute: number };

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export function parseSchedule(text: string): Schedule | string {
  const t = text.trim().toLowerCase().split(/\s+/);
  const hm = (s: string | undefined): [number, number] | undefined => {
    const m = s?.match(/^([01]?\d|2[0-3]):([0-5]\d)$/);
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  };
  if (t.length === 1 && t[0] === 'hourly') return { kind: 'hourly', minute: 0 };
  if (t.length === 1 && t[0] === 'daily') return { kind: 'daily', hour: 0, minute: 0 };
  if (t.length === 1 && t[0] === 'weekly') return { kind: 'weekly', day: 1, hour: 0, minute: 0 };
  if (t.length === 1 && hm(t[0])) return { kind: 'daily', hour: hm(t[0])![0], minute: hm(t[0])![1] };
  if (t.length === 2 && t[0] === 'daily' && hm(t[1])) return { kind: 'daily', hour: hm(t[1])![0], minute: hm(t[1])![1] };
  if (t.length === 3 && t[0] === 'weekly' && DAYS.includes(t[1]!.slice(0, 3)) && hm(t[2])) return { kind: 'weekly', day: DAYS.indexOf(t[1]!.slice(0, 3)), hour: hm(t[2])![0], minute: hm(t[2])![1] };
  if (t.length === 2 && t[0] === 'every') {
    const m = t[1]!.match(/^(\d+)(m|h|d)$/);
    if (m) {
      const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
      if (ms < 5 * 60_000) return 'an interval must be at least 5m';
      return { kind: 'interval', ms };
    }
  }
  return 'is not a schedule: use hourly, daily, weekly, HH:MM, daily HH:MM, weekly DAY HH:MM or every N(m|h|d)';
}

/** The first time strictly after `after` the schedule is due (an interval counts from `after`). */
export function nextRun(s: Schedule, after: Date): Date {
  if (s.kind === 'interval') return new Date(after.getTime() + s.ms);
  const d = new Date(after.getTime());
  d.setSeconds(0, 0);
  if (s.kind === 'hourly') {
    d.setMinutes(s.minute);
    if (d <= after) d.setHours(d.getHours() + 1);
    return d;
  }
  d.setHours(s.hour, s.minute, 0, 0);
  if (s.kind === 'daily') {
    if (d <= after) d.setDate(d.getDate() + 1);
    return d;
  }
  d.setDate(d.getDate() + ((s.day - d.getDay() + 7) % 7));
  if (d <= after) d.setDate(d.getDate() + 7);
  return d;
}

const keep = z.number().int().min(0).max(10_000).optional();
/** `backup:` in a VM definition: what `kvmctl serve` runs. */
export const backupSpecSchema = z.strictObject({
  schedule: z.string().superRefine((v, ctx) => {
    const r = parseSchedule(v);
    if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
  }),
  /** Prune after each scheduled backup with these rules (PBS semantics); none: keep everything. */
  keep: z.strictObject({ last: keep, hourly: keep, daily: keep, weekly: keep, monthly: keep, yearly: keep }).optional(),
  /** Freeze the guest's filesystems through the agent (default true). */
  freeze: z.boolean().default(true),
});
export type BackupSpec = z.infer<typeof backupSpecSchema>;
