/**
 * A definition in a request body ({yaml} text or a {definition} object) → parsed, validated
 * definitions with plain issue paths (`nics[0].mac`) so the UI can show each at its field.
 */
import { stringify } from 'yaml';
import { badInput } from '../errors.js';
import { parseDefinitions, specError, type Definition } from '../definition/load.js';
import type { DefinitionBody } from './contract.js';

export function parseBody(body: DefinitionBody, want: 'vm' | 'network' | 'any'): Definition[] {
  const text = 'yaml' in body ? body.yaml : stringify(body.definition);
  const docs = parseDefinitions(text, 'request body');
  if (docs.length !== 1) {
    throw badInput('NOT_ONE_DEFINITION', `the request body holds ${docs.length} definitions`, 'send exactly one VM or network definition per request');
  }
  const d = docs[0]!;
  if (d.issues.length) throw specError('request body', d.issues);
  if (want !== 'any' && d.kind !== want) {
    throw badInput('WRONG_KIND', `the request body holds a ${d.kind} definition, not a ${want}`, want === 'network' ? 'add kind: network' : 'use /api/networks for networks', [{ path: 'kind', message: `must be ${want}` }]);
  }
  // Stored as sent (YAML comments kept; an object as its own YAML, not with the defaults filled in).
  return [{ kind: d.kind, spec: d.spec, source: 'request body', text: d.text ?? text } as Definition];
}
