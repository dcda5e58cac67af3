/**
 * Validated definitions, cached on disk so that `list`, `status`, `cmdline`, `start` … neither
 * load nor run zod (nor the YAML parser) for a definition they have seen before:
 *   <data>/cache/definitions/{vm,network}/NAME.json  { key, spec }
 * `key` = sha256 of the build identity, the kind, the name and the file's exact text. An entry is
 * used only when its key matches the definition file as it is now, so any edit revalidates, and
 * only valid definitions are ever stored (an invalid one is validated — and rejected — every time).
 * An unreadable, corrupt or foreign entry is a miss; a failed write is ignored.
 *
 * Build identity: CACHE_FORMAT (bump it when the entry format changes), kvmctl's version, Node's
 * version, and the size + mtime of the code that validates: this module's own file (a bundle
 * chunk, tsc's output or the source) and, where they exist beside it, the schema modules. Every
 * build (`tsc`, the esbuild bundle) rewrites those files, so an upgrade or a rebuild can never be
 * served entries made by an older schema.
 *
 * Writes are atomic (temp file + rename, 0600 in a 0700 directory: a definition may hold
 * cloud-init secrets). The CLI defers them until a command succeeded (`deferWrites`), so a
 * command given bad input writes nothing, cache included.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Paths } from '../host/paths.js';

/** Bump when the entry format or the meaning of a cached spec changes. */
export const CACHE_FORMAT = 1;

export type DefKind = 'vm' | 'network';

/** The schema modules, relative to this one (present in tsc's output and in the sources). */
const SCHEMA_MODULES = ['./vm', './network', './load', './units', './names', '../disk/cloud-init-schema', '../net/nat/ipv4'];

let identity: string | undefined;
/** Set by the bundler (esbuild `define`); undefined in tsc's output and the sources. */
declare const __KVMCTL_BUILD__: string | undefined;

function fileStamp(u: URL): string | undefined {
  try {
    const st = fs.statSync(u);
    return `${u.pathname} ${st.size} ${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

function kvmctlVersion(): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kvmctl') return String(pkg.version);
    } catch {
      /* keep looking upwards */
    }
  }
  return 'unknown';
}

/** What must not change for an entry to stay valid (computed once per process). */
export function buildIdentity(): string {
  if (identity !== undefined) return identity;
  // A bundle carries the hash of the sources it was built from (scripts/bundle.mjs): its two
  // entries (the CLI and the start fast path) are separate files that must share one cache.
  const code = typeof __KVMCTL_BUILD__ === 'string' ? `build ${__KVMCTL_BUILD__}` : (fileStamp(new URL(import.meta.url)) ?? `code ${import.meta.url}`);
  const parts = [`format ${CACHE_FORMAT}`, `kvmctl ${kvmctlVersion()}`, `node ${process.version}`, code];
  // They exist beside tsc's output and the sources; from a bundle chunk these paths find nothing
  // (or tsc's output, rebuilt with it), and the chunk's own stamp is what changes.
  for (const m of SCHEMA_MODULES) for (const ext of ['.js', '.ts']) parts.push(fileStamp(new URL(`${m}${ext}`, import.meta.url)) ?? '');
  identity = createHash('sha256').update(parts.join('\n')).digest('hex');
  return identity;
}

/** For tests: pretend another build is running. */
export function setBuildIdentityForTests(id: string | undefined): void {
  identity = id;
}

export function entryKey(kind: DefKind, name: string, text: string): string {
  return createHash('sha256').update(`${buildIdentity()}\0${kind}\0${name}\0`).update(text).digest('hex');
}

export function entryFile(paths: Paths, kind: DefKind, name: string): string {
  return path.join(paths.cache, 'definitions', kind, `${name}.json`);
}

/** The cached spec for this exact definition text, or undefined (no entry, stale, corrupt, unreadable). */
export function lookup(paths: Paths, kind: DefKind, name: string, text: string): unknown {
  const file = entryFile(paths, kind, name);
  const key = entryKey(kind, name, text);
  let raw = pending?.get(file);
  if (raw === undefined) {
    try {
      raw = fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  }
  try {
    const e = JSON.parse(raw) as { key?: unknown; spec?: unknown };
    if (e && typeof e === 'object' && e.key === key && e.spec && typeof e.spec === 'object') return e.spec;
  } catch {
    /* corrupt: a miss */
  }
  return undefined;
}

/** Entries not written yet (file → JSON), while writes are deferred; lookups see them. */
let pending: Map<string, string> | undefined;

/** Hold writes until `flushWrites` (the command succeeded) or `discardWrites` (it failed). */
export function deferWrites(): void {
  pending ??= new Map();
}

export function flushWrites(): void {
  const list = pending ?? new Map<string, string>();
  pending = undefined;
  for (const [file, json] of list) write(file, json);
}

export function discardWrites(): void {
  pending = undefined;
}

/** Remember a spec that was just validated from `text` (held back while `deferWrites` is on). */
export function store(paths: Paths, kind: DefKind, name: string, text: string, spec: unknown): void {
  const json = JSON.stringify({ key: entryKey(kind, name, text), kind, name, spec });
  // Only what JSON gives back unchanged is cached (no undefined, NaN, Date …): a hit must equal a validation.
  if (!isDeepStrictEqual((JSON.parse(json) as { spec: unknown }).spec, spec)) return;
  const file = entryFile(paths, kind, name);
  if (pending) pending.set(file, json);
  else write(file, json);
}

function write(file: string, json: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    // Only definitions/ and below are private: data/ holds images that QEMU (runAs) must reach.
    const kindDir = path.dirname(file);
    fs.mkdirSync(path.dirname(path.dirname(kindDir)), { recursive: true });
    fs.mkdirSync(kindDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, json, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* nothing more to do: a stray temp file never matches a definition */
    }
  }
}

/** Forget a definition's entry (its file was removed). */
export function forget(paths: Paths, kind: DefKind, name: string): void {
  const file = entryFile(paths, kind, name);
  pending?.delete(file);
  try {
    fs.rmSync(file, { force: true });
  } catch {
    /* an entry that cannot be removed is harmless: it never matches another file */
  }
}
