/** `validate`: files, directories or stored names; every problem of every target at once. */
import fs from 'node:fs';
import { specError, type ErrorIssueList } from './validate-types.js';
import type { Paths } from '../host/paths.js';
import { checkDefinitions } from './definitions.js';
import { defPath, listNames } from '../definition/store.js';

export function validateTargets(paths: Paths, targets: string[]): { kind: string; name: string; source?: string }[] {
  const files: string[] = [];
  const issues: ErrorIssueList = [];
  const list = targets.length ? targets : [...listNames(paths, 'network').map((n) => defPath(paths, 'network', n)), ...listNames(paths, 'vm').map((n) => defPath(paths, 'vm', n))];
  for (const t of list) {
    if (fs.existsSync(t)) files.push(t);
    else if (fs.existsSync(defPath(paths, 'vm', t))) files.push(defPath(paths, 'vm', t));
    else if (fs.existsSync(defPath(paths, 'network', t))) files.push(defPath(paths, 'network', t));
    else issues.push({ path: t, message: 'no such file, VM or network' });
  }
  if (issues.length) throw specError(targets.join(', '), issues);
  if (!files.length) return [];
  return checkDefinitions(paths, files).map((d) => ({ kind: d.kind, name: d.spec.name, source: d.source }));
}
