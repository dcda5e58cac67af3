/**
 * The definition validator (src/spec/load.ts: the YAML parser and zod, most of the CLI's code by
 * size) is loaded only when a definition has to be validated. store.ts reads definitions
 * synchronously: a cache hit (src/spec/definition-cache.ts) needs no validator, a miss uses the
 * one registered here. load.ts registers itself whenever it is imported, by anything;
 * `prepareDefinitions` (src/spec/store.ts), which the CLI runs before a command, loads it when a
 * stored definition misses the cache.
 */
import type * as Load from './load.js';

export type Validator = Pick<typeof Load, 'parseDefinitions' | 'specError'>;

/** `undefined` (tests): as in a CLI process that has not needed it yet. */
let validator: Validator | undefined;

export function registerValidator(v: Validator | undefined): void {
  validator = v;
}

export function currentValidator(): Validator | undefined {
  return validator;
}

export async function loadValidator(): Promise<Validator> {
  if (!validator) registerValidator(await import('./load.js'));
  return validator!;
}
