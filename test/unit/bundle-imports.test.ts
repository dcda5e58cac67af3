/**
 * The shipped CLI is an esbuild bundle. A lazy `await import('pkg')` of a CommonJS package comes
 * back there as `{ default }`, so its named exports are undefined at run time (it happened:
 * `net show` and `show` crashed with "stringify is not a function" only in the bundle). Lazy
 * imports of npm packages are allowed only for ESM-only packages; CommonJS ones go through a
 * small local module with a static import (src/definition/yaml-out.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Whether a package is ESM for Node ("type": "module" in its package.json). */
function isEsm(pkg: string): boolean {
  const name = pkg.startsWith('@') ? pkg.split('/').slice(0, 2).join('/') : pkg.split('/')[0]!;
  const json = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { type?: string };
  return json.type === 'module';
}

describe('lazy imports in the bundled CLI', () => {
  it('every lazy import of an npm package is of an ESM package', () => {
    const found: string[] = [];
    const bad: string[] = [];
    for (const f of tsFiles(path.join(root, 'src'))) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/await import\('([^.'][^']*)'\)/g)) {
        const spec = m[1]!;
        if (spec.startsWith('node:')) continue;
        found.push(spec);
        if (!isEsm(spec)) bad.push(`${path.relative(root, f)}: ${spec}`);
      }
    }
    expect(found).toContain('execa');
    expect(bad).toEqual([]);
  });

  it('the check catches a CommonJS package (yaml is CommonJS for Node)', () => {
    expect(isEsm('yaml')).toBe(false);
    expect(isEsm('execa')).toBe(true);
  });
});
