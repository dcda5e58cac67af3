/**
 * YAML → defaults → validation. Every problem is reported at once, each with its path
 * (`nics[1].mac: "52:54:00:zz" is not a MAC address`); unknown keys get a did-you-mean.
 * A file may hold several documents (`---`), each a VM (`kind: vm`, the default) or a network
 * (`kind: network`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { isAlias, parseAllDocuments, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { badInput, type ErrorIssue } from '../errors.js';
import { closest } from './names.js';
import { networkSchema, type NetworkSpec } from './network.js';
import { registerValidator } from './validator.js';
import { vmCrossIssues, vmSchema, type VmSpec } from './vm.js';

export type Definition = ({ kind: 'vm'; spec: VmSpec } | { kind: 'network'; spec: NetworkSpec }) & { source?: string; text?: string };

/** Every key any object in the schemas knows, for did-you-mean on unknown keys. */
const KNOWN_KEYS = new Set<string>();
function collectKeys(s: unknown, seen = new Set<unknown>()): void {
  if (!s || typeof s !== 'object' || seen.has(s)) return;
  seen.add(s);
  const def = (s as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (!def) return;
  const shape = def.shape as Record<string, unknown> | undefined;
  if (shape) for (const [k, v] of Object.entries(shape)) { KNOWN_KEYS.add(k); collectKeys(v, seen); }
  for (const key of ['innerType', 'in', 'out', 'element', 'schema']) collectKeys(def[key], seen);
  for (const o of (def.options as unknown[] | undefined) ?? []) collectKeys(o, seen);
}
collectKeys(vmSchema);
collectKeys(networkSchema);

export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(top)';
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : typeof v === 'string' ? `"${v}"` : `${typeof v} ${String(v)}`;
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const seg of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** Turn zod issues into kvmctl issues: path plus a message that names the problem. */
export function toIssues(err: z.ZodError, input: unknown, prefix = ''): ErrorIssue[] {
  const out: ErrorIssue[] = [];
  const join = (p: string) => (prefix ? (p === '(top)' ? prefix : `${prefix}.${p}`) : p);
  for (const iss of err.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) {
        const guess = closest(key, KNOWN_KEYS);
        // A key valid in another part of a definition (say `mac` in a disk) is still unknown here.
        const elsewhere = KNOWN_KEYS.has(key) ? ' here (it belongs to another part of the definition)' : '';
        out.push({ path: join(formatPath([...iss.path, key])), message: `unknown key "${key}"${elsewhere}${guess && !elsewhere ? ` — did you mean "${guess}"?` : ''}` });
      }
      continue;
    }
    // The raw value, or (after a shorthand such as `boot: floppy` was expanded) the one zod saw.
    const at = 'input' in iss && iss.input !== undefined ? iss.input : valueAt(input, iss.path);
    let message = iss.message;
    if (iss.code === 'invalid_union' && iss.message === 'Invalid input') {
      // zod says only "Invalid input": when one form of the union got past the shape of the
      // value (its problems lie deeper), report that form's problems instead.
      const branches = (iss as { errors?: z.core.$ZodIssue[][] }).errors ?? [];
      let deep = branches.filter((b) => b.some((x) => x.path.length > 0));
      // Else a form that took the value's type and refused its content (a size that is not one).
      if (deep.length === 0) deep = branches.filter((b) => b.length > 0 && b.every((x) => x.code !== 'invalid_type'));
      if (deep.length === 1) {
        out.push(...toIssues({ issues: deep[0]!.map((x) => ({ ...x, path: [...iss.path, ...x.path] })) } as unknown as z.ZodError, input, prefix));
        continue;
      }
      message = `${describe(at)} is not one of the accepted forms here`;
    }
    if (iss.code === 'invalid_type') {
      const expected = iss.expected === 'int' ? 'an integer' : iss.expected;
      message = at === undefined ? `is required (${expected})` : `must be ${expected}, got ${describe(at)}`;
    } else if (iss.code === 'invalid_value' && 'values' in iss) {
      message = `${describe(at)} is not one of ${(iss.values as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (iss.code === 'invalid_format' || (iss.code === 'custom' && at !== undefined && typeof at !== 'object' && !message.includes('"'))) {
      message = `${describe(at)} ${message}`;
    } else if (iss.code === 'too_small' || iss.code === 'too_big') {
      const bound = iss.code === 'too_small' ? `at least ${String(iss.minimum)}` : `at most ${String(iss.maximum)}`;
      message = Array.isArray(at) ? `needs ${bound} item${Number(iss.code === 'too_small' ? iss.minimum : iss.maximum) === 1 ? '' : 's'}` : `${describe(at)} is out of range: must be ${bound}`;
    }
    out.push({ path: join(formatPath(iss.path)), message });
  }
  return out;
}

export type { ParsedDoc } from './validator.js';
import type { ParsedDoc } from './validator.js';

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

/** Where the first alias without an anchor before it is (the YAML library throws only when converting). */
function badAliasOffset(doc: Document.Parsed): number | undefined {
  const anchors = new Set<string>();
  let at: number | undefined;
  visit(doc, {
    Node(_, n) {
      if (isAlias(n)) {
        if (at === undefined && !anchors.has(n.source)) at = n.range?.[0];
      } else if (n.anchor) anchors.add(n.anchor);
    },
  });
  return at;
}

/** Parse and validate the documents of one YAML text. Does not throw for bad specs: issues are returned. */
export function parseDefinitions(text: string, source = '<input>'): ParsedDoc[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: ParsedDoc[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const label = list.length > 1 ? `${source}#${i + 1}` : source;
    if (doc.errors.length > 0) {
      out.push({ kind: 'vm', raw: undefined, label, issues: doc.errors.map((e) => ({ path: `${label}:${e.linePos?.[0]?.line ?? '?'}`, message: `YAML: ${e.message.split('\n')[0]}` })) });
      return;
    }
    let raw: unknown;
    try {
      raw = doc.toJS();
    } catch (e) {
      // e.g. an alias whose anchor is never set: the parser accepts it, conversion throws.
      out.push({ kind: 'vm', raw: undefined, label, issues: [{ path: `${label}:${lineOf(text, badAliasOffset(doc) ?? doc.contents?.range?.[0] ?? 0)}`, message: `YAML: ${(e as Error).message}` }] });
      return;
    }
    if (raw === null || raw === undefined) return; // empty document
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      out.push({ kind: 'vm', raw, label, issues: [{ path: '(top)', message: `a definition must be a mapping of keys, got ${describe(raw)}` }] });
      return;
    }
    const kind = (raw as Record<string, unknown>).kind ?? 'vm';
    if (kind !== 'vm' && kind !== 'network') {
      // Storage definitions name keyrings and monitors: host configuration, never apply or the API (src/definition/storage.ts).
      const message = kind === 'storage' ? 'storage definitions are host configuration: define them with kvmctl storage define -f FILE (as the host\'s administrator), not apply' : `${describe(kind)} is not one of "vm", "network"`;
      out.push({ kind: 'vm', raw, label, issues: [{ path: 'kind', message }] });
      return;
    }
    const schema = kind === 'vm' ? vmSchema : networkSchema;
    const r = schema.safeParse(raw, { reportInput: true });
    const docText = list.length > 1 ? doc.toString() : text;
    out.push(r.success ? { kind, spec: r.data, raw, label, issues: [], text: docText } : { kind, raw, label, issues: kind === 'vm' ? vmIssues(r.error, raw) : toIssues(r.error, raw) });
  });
  return out;
}

/** Validate one object as a VM definition; throws SPEC_INVALID with every issue. */
export function validateVm(raw: unknown, source = '<input>'): VmSpec {
  const r = vmSchema.safeParse(raw, { reportInput: true });
  if (r.success) return r.data;
  throw specError(source, vmIssues(r.error, raw));
}

/** Schema issues plus the cross-field issues zod skipped because a field was already invalid. */
export function vmIssues(err: z.ZodError, raw: unknown): ErrorIssue[] {
  const issues = toIssues(err, raw);
  const seen = new Set(issues.map((i) => `${i.path}\0${i.message}`));
  for (const c of vmCrossIssues(raw)) {
    const i = { path: formatPath(c.path), message: c.message };
    if (!seen.has(`${i.path}\0${i.message}`)) { seen.add(`${i.path}\0${i.message}`); issues.push(i); }
  }
  return issues;
}

export function validateNetwork(raw: unknown, source = '<input>'): NetworkSpec {
  const r = networkSchema.safeParse(raw, { reportInput: true });
  if (r.success) return r.data;
  throw specError(source, toIssues(r.error, raw));
}

export function specError(source: string, issues: ErrorIssue[]) {
  const n = issues.length;
  return badInput(
    'SPEC_INVALID',
    `${source}: ${n} problem${n === 1 ? '' : 's'}:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
    'fix the definition and run kvmctl validate again',
    issues,
  );
}

/** The YAML files of a path: the file itself, or the *.yaml / *.yml files of a directory (sorted). */
export function yamlFilesOf(p: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw badInput('FILE_NOT_FOUND', `${p}: no such file or directory`);
  }
  if (!st.isDirectory()) return [p];
  return fs
    .readdirSync(p)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(p, f));
}

/** Read, parse and validate files; throws one SPEC_INVALID listing every problem of every file. */
export function loadFiles(paths: string[]): Definition[] {
  const issues: ErrorIssue[] = [];
  const defs: Definition[] = [];
  for (const p of paths.flatMap(yamlFilesOf)) {
    const text = p === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(p, 'utf8');
    for (const d of parseDefinitions(text, p)) {
      if (d.issues.length) issues.push(...d.issues.map((i) => ({ path: `${d.label}: ${i.path}`, message: i.message })));
      else defs.push({ kind: d.kind, spec: d.spec, source: p, text: d.text } as Definition);
    }
  }
  if (issues.length) throw specError(paths.join(', '), issues);
  return defs;
}

// Reading stored definitions (src/definition/store.ts) validates through this module once it is loaded.
registerValidator({ parseDefinitions, specError });
