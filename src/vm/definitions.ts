/**
 * Declarative definitions: apply (validate everything, then write), validate, remove.
 * Nothing is written when any definition is invalid.
 */
import fs from 'node:fs';
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { storageRoots } from '../host/storage-roots.js';
import { capacityIssues, hostCapacity } from './capacity.js';
import { vmPathIssues } from './path-check.js';
import { crossDefinitionIssues } from '../definition/cross.js';
import { loadFiles, specError, type Definition } from '../definition/load.js';
import type { NetworkSpec } from '../definition/network.js';
import { defPath, listNames, readAllNetworks, readVm, removeDef, writeDef } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { stringify } from 'yaml';

export type ApplyResult = { kind: 'vm' | 'network'; name: string; action: 'created' | 'configured' | 'unchanged'; file: string };

/** Every known VM and network, with the given definitions taking the place of stored ones. */
function merged(paths: Paths, defs: Definition[]): { vms: VmSpec[]; nets: NetworkSpec[] } {
  const vms = new Map<string, VmSpec>();
  for (const n of listNames(paths, 'vm')) {
    try {
      vms.set(n, readVm(paths, n));
    } catch {
      /* a broken stored file is reported by validate, not here */
    }
  }
  const nets = readAllNetworks(paths);
  for (const d of defs) {
    if (d.kind === 'vm') vms.set(d.spec.name, d.spec);
    else nets.set(d.spec.name, d.spec);
  }
  return { vms: [...vms.values()], nets: [...nets.values()] };
}

export function checkDefinitions(paths: Paths, files: string[]): Definition[] {
  return checkLoadedDefinitions(paths, loadFiles(files), files.join(', '));
}

/** The checks of `checkDefinitions` on definitions already parsed (the API's request bodies). */
export function checkLoadedDefinitions(paths: Paths, defs: Definition[], label: string): Definition[] {
  const seen = new Map<string, string>();
  const dupes = [];
  for (const d of defs) {
    const key = `${d.kind}/${d.spec.name}`;
    if (seen.has(key)) dupes.push({ path: key, message: `defined twice (${seen.get(key)} and ${d.source})` });
    seen.set(key, d.source ?? '');
  }
  const all = merged(paths, defs);
  const names = new Set(defs.map((d) => `${d.kind}/${d.spec.name}`));
  // Report cross issues that involve what is being applied.
  const roots = storageRoots(paths);
  const host = defs.some((d) => d.kind === 'vm') ? hostCapacity(paths) : undefined;
  const capacity = defs.flatMap((d) => (d.kind === 'vm' && host ? capacityIssues(d.spec, host).map((i) => ({ ...i, path: `vm/${d.spec.name}: ${i.path}` })) : []));
  const confined = defs.flatMap((d) => (d.kind === 'vm' ? vmPathIssues(d.spec, paths, roots).map((i) => ({ ...i, path: `vm/${d.spec.name}: ${i.path}` })) : []));
  const issues = [...dupes, ...capacity, ...confined, ...crossDefinitionIssues(all.vms, all.nets, paths.images).filter((i) => names.has(i.path.split(':')[0]!))];
  if (issues.length) throw specError(label, issues);
  if (defs.length === 0) throw badInput('NOTHING_TO_APPLY', `${label}: no definitions found`, 'a definition is a YAML mapping with name: (and kind: network for networks)');
  return defs;
}

export function applyDefinitions(paths: Paths, files: string[]): ApplyResult[] {
  return applyLoadedDefinitions(paths, checkDefinitions(paths, files));
}

/** Write definitions that passed `checkLoadedDefinitions`. */
export function applyLoadedDefinitions(paths: Paths, defs: Definition[]): ApplyResult[] {
  return defs.map((d) => {
    const file = defPath(paths, d.kind, d.spec.name);
    const text = d.text ?? stringify(d.spec);
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    const normalized = text.endsWith('\n') ? text : `${text}\n`;
    if (old === normalized) return { kind: d.kind, name: d.spec.name, action: 'unchanged', file };
    writeDef(paths, d.kind, d.spec.name, normalized);
    return { kind: d.kind, name: d.spec.name, action: old === undefined ? 'created' : 'configured', file };
  });
}

export function removeVmDefinition(paths: Paths, name: string): void {
  removeDef(paths, 'vm', name);
}
