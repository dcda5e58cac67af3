/** Sizes with units: 512M, 4G, 4GiB, 30G, 1T, or a plain number of bytes. */
const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

/** Parse a size into bytes; returns undefined when it is not a size. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return undefined;
  const mult = UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return undefined;
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The shortest exact form QEMU accepts: 4G, 512M, 1536M, 4096K, or bytes. */
export function formatSize(bytes: number): string {
  for (const [suffix, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${suffix}`;
  }
  return String(bytes);
}
