/**
 * An initramfs writer: the "newc" cpio format (what the kernel unpacks), written here because a
 * fresh machine has no cpio binary, then gzip-compressed with node:zlib.
 *
 * newc: every entry is a 110-byte ASCII header ("070701" + 13 eight-digit hex fields), the name
 * with its NUL, padding to 4 bytes, the data, padding to 4 bytes. The archive ends with an entry
 * named "TRAILER!!!". Symlinks store their target as data; device nodes carry rdev major/minor.
 *
 * Also here, because they decide what goes into the initramfs: reading a kernel module's
 * `.modinfo` (its `depends=`) and ordering modules so that each comes after what it needs.
 */
import { gzipSync } from 'node:zlib';

export type CpioEntry =
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'file'; name: string; data: Buffer | string; mode?: number }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'char' | 'block'; name: string; major: number; minor: number; mode?: number };

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

const MAGIC = '070701';
const TRAILER = 'TRAILER!!!';

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function header(f: { ino: number; mode: number; nlink: number; mtime: number; size: number; rmajor?: number; rminor?: number; nameSize: number }): string {
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  return (
    MAGIC +
    [f.ino, f.mode, 0, 0, f.nlink, f.mtime, f.size, 0, 0, f.rmajor ?? 0, f.rminor ?? 0, f.nameSize, 0].map(hex8).join('')
  );
}

/** Names in the archive are relative ("bin/busybox"), never absolute or with "..". */
function cleanName(name: string): string {
  const n = name.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!n || n.split('/').some((s) => s === '..' || s === '')) throw new RangeError(`bad cpio entry name: ${JSON.stringify(name)}`);
  return n;
}

/**
 * Write a newc cpio archive. Owner is root (0:0) for everything; `mtime` (seconds) is the same for
 * every entry so that the same inputs give the same bytes.
 */
export function writeCpio(entries: readonly CpioEntry[], opts: { mtime?: number } = {}): Buffer {
  const mtime = opts.mtime ?? 0;
  const parts: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer, nlink: number, rmajor?: number, rminor?: number) => {
    const nameBuf = Buffer.from(`${name}\0`, 'utf8');
    const h = Buffer.from(header({ ino: name === TRAILER ? 0 : ino++, mode, nlink, mtime, size: data.length, rmajor, rminor, nameSize: nameBuf.length }), 'ascii');
    parts.push(h, nameBuf, Buffer.alloc(pad4(h.length + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const name = cleanName(e.name);
    if (seen.has(name)) throw new RangeError(`duplicate cpio entry: ${name}`);
    seen.add(name);
    switch (e.type) {
      case 'dir':
        push(name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0), 2);
        break;
      case 'file':
        push(name, S_IFREG | (e.mode ?? 0o644), typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data, 1);
        break;
      case 'symlink':
        push(name, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8'), 1);
        break;
      case 'char':
      case 'block':
        push(name, (e.type === 'char' ? S_IFCHR : S_IFBLK) | (e.mode ?? 0o600), Buffer.alloc(0), 1, e.major, e.minor);
        break;
    }
  }
  push(TRAILER, 0, Buffer.alloc(0), 1);
  return Buffer.concat(parts);
}

/** The cpio archive, gzip-compressed (the kernel's CONFIG_RD_GZIP is everywhere). */
export function buildInitramfs(entries: readonly CpioEntry[], opts: { mtime?: number; compress?: 'gzip' | 'none' } = {}): Buffer {
  const cpio = writeCpio(entries, opts);
  return opts.compress === 'none' ? cpio : gzipSync(cpio, { level: 6 });
}

/**
 * Every entry after its parent directory: parents that are not listed are added (mode 0755), and a
 * listed directory that comes after its children moves up to before the first of them (the kernel
 * does not create missing parents while unpacking).
 */
export function withParentDirs(entries: readonly CpioEntry[]): CpioEntry[] {
  const listedDirs = new Map(entries.filter((e) => e.type === 'dir').map((e) => [cleanName(e.name), e]));
  const emitted = new Set<string>();
  const out: CpioEntry[] = [];
  const emit = (name: string, e: CpioEntry) => {
    if (emitted.has(name) && e.type === 'dir') return; // other duplicates reach writeCpio, which refuses them
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!emitted.has(dir)) emit(dir, listedDirs.get(dir) ?? { type: 'dir', name: dir });
    }
    emitted.add(name);
    out.push(e);
  };
  for (const e of entries) emit(cleanName(e.name), e);
  return out;
}

/* ---------------------------------------------------------------- kernel modules ---------- */

/** Module names compare with "-" and "_" as the same character (as the kernel does). */
export const modKey = (name: string) => name.replace(/-/g, '_');

/**
 * The `key=value` strings of a kernel module's `.modinfo` ELF section (an uncompressed .ko).
 * Returns undefined when the file is not a 64-bit little-endian ELF or has no such section.
 */
export function readModinfo(ko: Buffer): Map<string, string[]> | undefined {
  if (ko.length < 64 || ko.readUInt32BE(0) !== 0x7f454c46 || ko[4] !== 2 || ko[5] !== 1) return undefined;
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  if (shoff + shnum * shentsize > ko.length || shstrndx >= shnum) return undefined;
  const sec = (i: number) => {
    const at = shoff + i * shentsize;
    return { name: ko.readUInt32LE(at), offset: Number(ko.readBigUInt64LE(at + 0x18)), size: Number(ko.readBigUInt64LE(at + 0x20)) };
  };
  const strtab = sec(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const nameStart = strtab.offset + s.name;
    const nameEnd = ko.indexOf(0, nameStart);
    if (ko.toString('latin1', nameStart, nameEnd) !== '.modinfo') continue;
    const info = new Map<string, string[]>();
    for (const kv of ko.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      info.set(k, [...(info.get(k) ?? []), kv.slice(eq + 1)]);
    }
    return info;
  }
  return undefined;
}

/** A module's dependencies from its modinfo (`depends=a,b`). */
export function moduleDepends(info: Map<string, string[]> | undefined): string[] {
  return (info?.get('depends') ?? []).flatMap((d) => d.split(',')).filter(Boolean);
}

/**
 * Order modules so that each is loaded after everything it depends on, keeping the wanted order
 * otherwise. Dependencies that are not wanted but exist (`depsOf` knows them) are pulled in just
 * before their first user. Names `depsOf` does not know (undefined) are returned in `missing`.
 * Keys in `order` use "_" (see modKey).
 */
export function orderModules(
  wanted: readonly string[],
  depsOf: (key: string) => readonly string[] | undefined,
): { order: string[]; missing: string[] } {
  const order: string[] = [];
  const missing: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (name: string) => {
    const k = modKey(name);
    if (done.has(k) || visiting.has(k)) return;
    const d = depsOf(k);
    if (!d) {
      if (!missing.includes(name)) missing.push(name);
      return;
    }
    visiting.add(k);
    for (const dep of d) visit(dep);
    visiting.delete(k);
    done.add(k);
    order.push(k);
  };
  for (const w of wanted) visit(w);
  return { order, missing };
}
