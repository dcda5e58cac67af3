/** Names of VMs, networks, NIC ids, share ids: safe as file names, QEMU ids and YAML keys. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const NAME_RULE = 'must be 1–64 characters of letters, digits, "_", "." or "-", starting with a letter or digit';
/** Linux interface names: at most 15 bytes, no "/", whitespace or ":" (IFNAMSIZ - 1). */
export const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
export const IFNAME_RULE = 'must be an interface name of 1–15 characters (letters, digits, "_", "." or "-")';
/** An RBD image (volume) or snapshot name: Ceph allows more, kvmctl keeps to names that need no quoting anywhere. */
export const VOLUME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
export const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** True when the MAC's first octet has the multicast (group) bit set. */
export function isMulticastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

/** Levenshtein distance, for did-you-mean suggestions. */
export function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** The candidate nearest to `word`, never `word` itself (a key valid elsewhere, a name being looked up). */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    if (c === word) continue;
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
