/**
 * Definition files on disk: `<config>/vms/NAME.yaml` and `<config>/networks/NAME.yaml`.
 * Written atomically (temp file + rename); the original YAML text a user applied is kept as it
 * was (comments included) so the files stay pleasant to read and keep in git.
 * Reading one validates it, unless the definition cache holds this exact text already
 * (src/definition/definition-cache.ts): the validator (YAML + zod) is loaded only on a miss
 * (src/definition/validator.ts), so this module must not import load.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import * as cache from './definition-cache.js';
import { NAME_RE, NAME_RULE, closest } from './names.js';
import type { NetworkSpec } from './network.js';
import { currentValidator, registerValidator, type Validator } from './validator.js';
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
  } catch (e) {
    const names = listNames(paths, kind);
    // There but unreadable: suggesting the name just typed would be no help.
    if (names.includes(name)) throw new KvmError('DEFINITION_UNREADABLE', `${file}: ${(e as Error).message}`, { hint: 'check the file\'s permissions' });
    const guess = closest(name, names);
    const caseOnly = guess !== undefined && guess.toLowerCase() === name.toLowerCase();
    throw badInput(
      kind === 'vm' ? 'VM_NOT_FOUND' : 'NETWORK_NOT_FOUND',
      `no ${kind === 'vm' ? 'VM' : 'network'} named "${name}"`,
      guess ? `${caseOnly ? 'names are case-sensitive: ' : ''}did you mean "${guess}"?` : `define it with kvmctl apply -f FILE (kvmctl ${kind === 'vm' ? 'list' : 'net list'} shows what exists)`,
    );
  }
  const hit = cache.lookup(paths, kind, name, text);
  if (hit) return hit as VmSpec | NetworkSpec;
  const v = currentValidator();
  if (!v) {
    // prepareDefinitions loaded the validator if anything missed the cache when the command began.
    if (prepared) throw new KvmError('DEFINITION_CHANGED', `${file} changed while kvmctl was running`, { hint: 'run the command again' });
    throw new Error(`reading ${file}: the definition validator is not loaded (await prepareDefinitions() or loadValidator() first)`);
  }
  const docs = v.parseDefinitions(text, file);
  const doc = docs[0];
  if (!doc || docs.length !== 1) throw new KvmError('DEFINITION_CORRUPT', `${file} must hold exactly one definition`, { hint: 'edit the file or re-apply it' });
  if (doc.issues.length) throw v.specError(file, doc.issues);
  if (doc.kind !== kind) throw new KvmError('DEFINITION_CORRUPT', `${file} holds a ${doc.kind}, not a ${kind}`);
  cache.store(paths, kind, name, text, doc.spec);
  return doc.spec!;
}

let prepared = false;

/** Load the validator (load.ts registers itself when imported). */
export async function loadValidator(): Promise<Validator> {
  if (!currentValidator()) registerValidator(await import('./load.js'));
  return currentValidator()!;
}

/**
 * Make reading stored definitions possible without the validator loaded up front: when a stored
 * definition misses the cache, the validator is loaded now (async) so that the synchronous reads
 * that follow can validate, and every definition that missed is validated (and cached) at once —
 * after an upgrade one command pays for all, not each command for the ones it did not read.
 * `eager`: load the validator regardless (long-running commands, whose definitions may change
 * while they run).
 */
export async function prepareDefinitions(paths: Paths, opts: { eager?: boolean } = {}): Promise<void> {
  prepared = true;
  if (currentValidator()) return;
  if (opts.eager) {
    await loadValidator();
    return;
  }
  const missed: [Kind, string][] = [];
  for (const kind of ['network', 'vm'] as const) {
    for (const name of listNames(paths, kind)) {
      let text: string;
      try {
        text = fs.readFileSync(defPath(paths, kind, name), 'utf8');
      } catch {
        continue; // gone, or unreadable: reading it reports that without a validator
      }
      if (!cache.lookup(paths, kind, name, text)) missed.push([kind, name]);
    }
  }
  if (!missed.length) return;
  await loadValidator();
  for (const [kind, name] of missed) {
    try {
      readDef(paths, kind, name);
    } catch {
      /* invalid (never cached): reported when the command reads it */
    }
  }
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
  cache.forget(paths, kind, name);
}
