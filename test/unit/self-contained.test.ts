/**
 * Tests are self-contained: a user's clone has no team notes dir beside the checkout ("shared"),
 * so no test, helper or fixture loader may read from it. Fixtures copied from there live in
 * test/fixtures/ with a note of their source.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : /\.(ts|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

describe('tests are self-contained', () => {
  it('no test, helper or bench script reads the team notes dir beside the checkout', () => {
    const self = path.join(root, 'test/unit/self-contained.test.ts');
    const offenders = [...files(path.join(root, 'test')), ...files(path.join(root, 'bench'))]
      .filter((f) => f !== self)
      .filter((f) => /['"`][^'"`\n]*\.\.\/shared\//.test(fs.readFileSync(f, 'utf8')))
      .map((f) => path.relative(root, f));
    expect(offenders).toEqual([]);
  });

  it('the seed fixture the golden tests read is in the repository and names its source', () => {
    const seed = fs.readFileSync(path.join(root, 'test/fixtures/import/seed-exam_vm.sh'), 'utf8');
    expect(seed).toMatch(/verbatim from shared\/seed\/README\.md/);
    expect(seed).toContain('/usr/bin/qemu-system-x86_64');
  });
});
