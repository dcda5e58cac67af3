/** QEMU option values: a comma inside a value is written twice (`file=a,,b.img` means "a,b.img"). */
export function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/** Build `first,key=val,key2=val2` with values escaped; undefined/false entries are left out. */
export function qemuOpts(first: string | undefined, kv: Record<string, string | number | boolean | undefined>): string {
  const parts: string[] = first !== undefined ? [first] : [];
  for (const [k, v] of Object.entries(kv)) {
    if (v === undefined || v === false) continue;
    parts.push(`${k}=${v === true ? 'on' : qemuEscape(String(v))}`);
  }
  return parts.join(',');
}
