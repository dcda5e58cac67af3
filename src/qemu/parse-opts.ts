/**
 * QEMU's `key=val,key2=val2` option syntax, read back (the inverse of `qemuOpts` in escape.ts):
 * `,,` inside a value is a literal comma (`file=a,,b.img` → "a,b.img"); a first element without
 * `=` is the value of the option's implied key (`-netdev tap,id=n0` → type "tap"); a later element
 * without `=` is a flag, `key` → on and `nokey` → off (QEMU's legacy form: `nowait` → wait=off).
 */
import { qemuEscape } from './escape.js';

export class QemuOpts {
  constructor(readonly pairs: [string, string][]) {}

  /** The last value given for key (QEMU: the last one wins). */
  get(key: string): string | undefined {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i]![0] === key) return this.pairs[i]![1];
    return undefined;
  }
  /** Every value given for a repeatable key (`hostfwd=`). */
  all(key: string): string[] {
    return this.pairs.filter(([k]) => k === key).map(([, v]) => v);
  }
  has(key: string): boolean {
    return this.pairs.some(([k]) => k === key);
  }
  keys(): string[] {
    return [...new Set(this.pairs.map(([k]) => k))];
  }
  /** Keys not in `known`, in order. */
  unknown(known: Iterable<string>): string[] {
    const k = new Set(known);
    return this.keys().filter((x) => !k.has(x));
  }
  /** A copy with only these keys (or without them). */
  pick(keys: Iterable<string>): QemuOpts {
    const k = new Set(keys);
    return new QemuOpts(this.pairs.filter(([x]) => k.has(x)));
  }
  omit(keys: Iterable<string>): QemuOpts {
    const k = new Set(keys);
    return new QemuOpts(this.pairs.filter(([x]) => !k.has(x)));
  }
  /** Serialise again, values escaped; the implied key (if given) is written first without its name. */
  toString(implied?: string): string {
    const parts: string[] = [];
    const first = implied !== undefined ? this.pairs.find(([k]) => k === implied) : undefined;
    if (first) parts.push(qemuEscape(first[1]));
    for (const p of this.pairs) if (p !== first) parts.push(`${p[0]}=${qemuEscape(p[1])}`);
    return parts.join(',');
  }
  /** `key=value` pairs for messages. */
  describe(keys: string[]): string {
    return keys.map((k) => `${k}=${this.get(k)}`).join(',');
  }
}

/** Parse QEMU's option syntax. `implied` names the key of a leading value without `=`. */
export function parseOpts(text: string, implied?: string): QemuOpts {
  const pairs: [string, string][] = [];
  let i = 0;
  let first = true;
  while (i < text.length) {
    // The key runs to '=' or ','.
    let j = i;
    while (j < text.length && text[j] !== '=' && text[j] !== ',') j++;
    const hasValue = text[j] === '=';
    if (first && implied !== undefined && !hasValue) {
      const [v, end] = readValue(text, i);
      pairs.push([implied, v]);
      i = end + 1;
      first = false;
      continue;
    }
    first = false;
    const key = text.slice(i, j);
    if (!hasValue) {
      if (key !== '') {
        if (key.startsWith('no') && key.length > 2) pairs.push([key.slice(2), 'off']);
        else pairs.push([key, 'on']);
      }
      i = j + 1;
      continue;
    }
    const [v, end] = readValue(text, j + 1);
    pairs.push([key, v]);
    i = end + 1;
  }
  return new QemuOpts(pairs);
}

/** A value up to the next single ',', with ',,' unescaped. Returns [value, index of the ',' or end]. */
function readValue(text: string, i: number): [string, number] {
  let v = '';
  while (i < text.length) {
    if (text[i] === ',') {
      if (text[i + 1] === ',') {
        v += ',';
        i += 2;
        continue;
      }
      break;
    }
    v += text[i++];
  }
  return [v, i];
}

/** QEMU's booleans: on/off, yes/no, true/false (and y/n). undefined when it is none of those. */
export function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.toLowerCase();
  if (['on', 'yes', 'true', 'y'].includes(s)) return true;
  if (['off', 'no', 'false', 'n'].includes(s)) return false;
  return undefined;
}
