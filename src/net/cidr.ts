/** IPv4/IPv6 prefixes as numbers, for overlap checks. Pure. */
export type Prefix = { v: 4 | 6; addr: bigint; len: number };

function parseV6(s: string): bigint | undefined {
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const side = (x: string) => (x === '' ? [] : x.split(':'));
  const head = side(parts[0]!);
  const tail = parts.length === 2 ? side(parts[1]!) : [];
  // Embedded IPv4 at the end (::ffff:1.2.3.4).
  const last = (tail.length ? tail : head).at(-1);
  if (last && last.includes('.')) {
    const v4 = parseV4(last);
    if (v4 === undefined) return undefined;
    const arr = tail.length ? tail : head;
    arr.splice(arr.length - 1, 1, ((v4 >> 16n) & 0xffffn).toString(16), (v4 & 0xffffn).toString(16));
  }
  const missing = 8 - head.length - tail.length;
  if (parts.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(parts.length === 2 ? missing : 0).fill('0'), ...tail];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

function parseV4(s: string): bigint | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1, 5).map(Number);
  if (o.some((x) => x > 255)) return undefined;
  return BigInt(((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!);
}

export function parsePrefix(cidr: string): Prefix | undefined {
  const [a, l] = cidr.split('/');
  if (a === undefined || l === undefined || !/^\d+$/.test(l)) return undefined;
  const len = Number(l);
  if (a.includes(':')) {
    const addr = parseV6(a);
    return addr === undefined || len > 128 ? undefined : { v: 6, addr, len };
  }
  const addr = parseV4(a);
  return addr === undefined || len > 32 ? undefined : { v: 4, addr, len };
}

/** True when the two prefixes share any address. */
export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.v !== b.v) return false;
  const bits = a.v === 4 ? 32 : 128;
  const len = Math.min(a.len, b.len);
  const shift = BigInt(bits - len);
  return a.addr >> shift === b.addr >> shift;
}

export function cidrOverlap(a: string, b: string): boolean {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  return !!pa && !!pb && overlaps(pa, pb);
}
