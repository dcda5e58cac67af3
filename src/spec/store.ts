/**
 * Definition files on disk: `<config>/vms/NAME.yaml` and `<config>/networks/NAME.yaml`.
 * Written atomically (temp file + rename); the original YAML text a user applied is kept as it
 * was (comments included) so the files stay pleasant to read and keep in git.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { parseDefinitions, specError } from './load.js';
import { NAME_RE, NAME_RULE, closest } from './names.js';
import type { NetworkSpec } from './network.js';
import type { VmSpec } from './vm.js';

export type Kind = 'vm' | 'network';

function dirOf(paths: Paths, kind: Kind): string {
  return kind === 'vm' ? paths.vmDefs : paths.netDefs;
}

export function defPath(paths: Paths, kind: Kind, name: string): string {
  if (!NAME_RE.test(name)) throw badInput('BAD_NAME', `"${name}" is not a valid name: it ${NAME_RULE}`);
  return path.join(dirOf(paths, kind), `${name}.yaml`);
}

export function listNames(paths: Paths, kind: Kind): string[] {
  try {
    return fs
      .readdirSync(dirOf(paths, kind))
      .filter((f) => f.endsWith('.yaml') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

export function exists(paths: Paths, kind: Kind, name: string): boolean {
  return fs.existsSync(defPath(paths, kind, name));
}

function readDef(paths: Paths, kind: Kind, name: string): VmSpec | NetworkSpec {
  const file = defPath(paths, kind, name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    const guess = closest(name, listNames(paths, kind));
    throw badInput(
      kind === 'vm' ? 'VM_NOT_FOUND' : 'NETWORK_NOT_FOUND',
      `no ${kind === 'vm' ? 'VM' : 'network'} named "${name}"`,
      guess ? `did you mean "${guess}"?` : `define it with kvmctl apply -f FILE (kvmctl ${kind === 'vm' ? 'list' : 'net list'} shows what exists)`,
    );
  }
  const docs = parseDefinitions(text, file);
  const doc = docs[0];
  if (!doc || docs.length !== 1) throw new KvmError('DEFINITION_CORRUPT', `${file} must hold exactly one definition`, { hint: 'edit the file or re-apply it' });
  if (doc.issues.length) throw specError(file, doc.issues);
  if (doc.kind !== kind) throw new KvmError('DEFINITION_CORRUPT', `${file} holds a ${doc.kind}, not a ${kind}`);
  return doc.spec!;
}

export function readVm(paths: Paths, name: string): VmSpec {
  return readDef(paths, 'vm', name) as VmSpec;
}

export function readNetwork(paths: Paths, name: string): NetworkSpec {
  return readDef(paths, 'network', name) as NetworkSpec;
}

export function readAllNetworks(paths: Paths): Map<string, NetworkSpec> {
  return new Map(listNames(paths, 'network').map((n) => [n, readNetwork(paths, n)]));
}

/** Write a definition's text atomically. */
export function writeDef(paths: Paths, kind: Kind, name: string, text: string): string {
  const file = defPath(paths, kind, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${name}.yaml.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text.endsWith('\n') ? text : `${text}\n`);
  fs.renameSync(tmp, file);
  return file;
}

export function removeDef(paths: Paths, kind: Kind, name: string): void {
  readDef(paths, kind, name); // not found → clear error
  fs.rmSync(defPath(paths, kind, name));
}
