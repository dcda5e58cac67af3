/**
 * CPU and node lists ("0-3,6") and hugepage sizes: zod-free, so argv and start (hot paths) can
 * use them without loading the schema (test/unit/definition/definition-cache.test.ts checks that).
 */
/** "0-3,6" | 5 | [0, 1] → sorted unique CPU (or node) numbers. undefined when not a valid list. */
export function parseCpuList(v: unknown): number[] | undefined {
  const out = new Set<number>();
  const one = (n: unknown): boolean => {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 4096) return out.add(n), true;
    return false;
  };
  if (typeof v === 'number') return one(v) ? [...out] : undefined;
  if (Array.isArray(v)) return v.length > 0 && v.every(one) ? [...out].sort((a, b) => a - b) : undefined;
  if (typeof v !== 'string' || !v.trim()) return undefined;
  for (const part of v.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b >= 4096) return undefined;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** The list as `taskset -c` and QEMU's `host-nodes=` write it: "0-3,6". */
export function formatCpuList(xs: readonly number[]): string {
  const s = [...new Set(xs)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    parts.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export const HUGEPAGE_BYTES: Record<'2M' | '1G', number> = { '2M': 2 * 1024 * 1024, '1G': 1024 * 1024 * 1024 };
