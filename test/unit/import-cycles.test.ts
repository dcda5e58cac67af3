// Fails on any import cycle among src/**/*.ts (issue #19 item 4). Counts static
// `import … from`, `export … from`, side-effect `import '…'` and dynamic `import('…')`
// of relative paths; type-only imports count too (the known cycles ran through types).
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, dirname, resolve, relative } from 'node:path';

const SRC = resolve(__dirname, '../../src');

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const SPEC_RE = /(?:\bimport|\bexport)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|\bimport\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function resolveSpec(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  const cands = [base.replace(/\.js$/, '.ts'), base + '.ts', join(base, 'index.ts'), base];
  return cands.find((c) => c.endsWith('.ts') && existsSync(c));
}

export function importGraph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of walk(SRC)) {
    const text = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const deps = new Set<string>();
    for (const m of text.matchAll(SPEC_RE)) {
      const r = resolveSpec(f, m[1] ?? m[2]);
      if (r) deps.add(r);
    }
    g.set(f, [...deps]);
  }
  return g;
}

/** Each elementary cycle reported once, via DFS back edges (Tarjan-free, small graph). */
export function findCycles(g: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 1);
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (state.get(d) === 1) {
        const cyc = stack.slice(stack.indexOf(d));
        const key = [...cyc].sort().join('|');
        if (!seen.has(key)) { seen.add(key); cycles.push([...cyc, d]); }
      } else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of g.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

describe('import graph of src/', () => {
  it('has no import cycles', () => {
    const cycles = findCycles(importGraph()).map((c) => c.map((p) => relative(SRC, p)).join(' → '));
    expect(cycles, `import cycles:\n${cycles.join('\n')}`).toEqual([]);
  });
});
