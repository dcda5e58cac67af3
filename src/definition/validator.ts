/**
 * The definition validator (src/definition/load.ts: the YAML parser and zod, most of the CLI's code by
 * size) is loaded only when a definition has to be validated. store.ts reads definitions
 * synchronously: a cache hit (src/definition/definition-cache.ts) needs no validator, a miss uses the
 * one registered here. load.ts registers itself whenever it is imported, by anything;
 * `prepareDefinitions` (src/definition/store.ts), which the CLI runs before a command, loads it when a
 * stored definition misses the cache.
 */
import type { ErrorIssue, KvmError } from '../errors.js';
import type { NetworkSpec } from './network.js';
import type { VmSpec } from './vm.js';

/** One YAML document of a definition file, parsed and validated (src/definition/load.ts makes them). */
export type ParsedDoc = { kind: 'vm' | 'network'; spec?: VmSpec | NetworkSpec; raw: unknown; issues: ErrorIssue[]; label: string; /** this document's own YAML text */ text?: string };

/** What load.ts provides (declared here, so this module does not import it: imports point down). */
export type Validator = { parseDefinitions(text: string, source?: string): ParsedDoc[]; specError(source: string, issues: ErrorIssue[]): KvmError };

/** `undefined` (tests): as in a CLI process that has not needed it yet. */
let validator: Validator | undefined;

export function registerValidator(v: Validator | undefined): void {
  validator = v;
}

export function currentValidator(): Validator | undefined {
  return validator;
}
