/**
 * Which backups a prune keeps: Proxmox Backup Server's rules, pure. Backups are taken newest
 * first; each rule in turn (last, hourly, daily, weekly, monthly, yearly) keeps the newest backup
 * of each of its N most recent periods that no earlier rule already covers (the older backups of a
 * period it chose are then out for the later rules too); everything no rule keeps is removed. A period an earlier rule already kept a backup in is not counted again. With
 * no rule at all nothing is removed (PBS: "keep everything").
 */
export type KeepRules = { last?: number; hourly?: number; daily?: number; weekly?: number; monthly?: number; yearly?: number };
export const KEEP_ORDER = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

const pad = (n: number) => String(n).padStart(2, '0');

/** ISO 8601 week (year-Www) of a date, in UTC. */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86_400_000 + 1) / 7);
  return `${y}-W${pad(week)}`;
}

function periodOf(rule: (typeof KEEP_ORDER)[number], id: string, at: Date): string {
  switch (rule) {
    case 'last':
      return id;
    case 'hourly':
      return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}T${pad(at.getUTCHours())}`;
    case 'daily':
      return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
    case 'weekly':
      return isoWeek(at);
    case 'monthly':
      return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}`;
    case 'yearly':
      return String(at.getUTCFullYear());
  }
}

export type PruneItem = { id: string; createdAt: string };
export type PrunePlan = { keep: { id: string; by: string }[]; remove: string[] };

export function planPrune(items: PruneItem[], rules: KeepRules): PrunePlan {
  const list = [...items].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
  const kept = new Map<string, string>();
  // PBS marks the older backups of a period a rule has chosen as removed: later rules skip them.
  const dropped = new Set<string>();
  const any = KEEP_ORDER.some((r) => (rules[r] ?? 0) > 0);
  if (!any) return { keep: list.map((b) => ({ id: b.id, by: 'no keep rule given' })), remove: [] };
  for (const rule of KEEP_ORDER) {
    const n = rules[rule] ?? 0;
    if (n <= 0) continue;
    const covered = new Set(list.filter((b) => kept.has(b.id)).map((b) => periodOf(rule, b.id, new Date(b.createdAt))));
    const chosen = new Set<string>();
    for (const b of list) {
      if (kept.has(b.id) || dropped.has(b.id)) continue;
      const p = periodOf(rule, b.id, new Date(b.createdAt));
      if (covered.has(p)) continue;
      if (chosen.has(p)) {
        dropped.add(b.id);
        continue;
      }
      if (chosen.size >= n) break;
      chosen.add(p);
      kept.set(b.id, `keep-${rule}`);
    }
  }
  return { keep: list.filter((b) => kept.has(b.id)).map((b) => ({ id: b.id, by: kept.get(b.id)! })), remove: list.filter((b) => !kept.has(b.id)).map((b) => b.id) };
}
