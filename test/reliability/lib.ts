/**
 * Shared bits of the reliability suite: a seeded PRNG (runs are reproducible: KVT_SEED=N), the
 * real CLI run against a given KVMCTL_HOME, a snapshot of a directory tree (to prove that bad
 * input wrote nothing), bounded parallelism, and the counts each test writes to
 * test-output/reliability-NAME.json (docs/reliability.md is written from those).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, GUEST_CACHE, ROOT } from '../helpers/kvmctl.js';

/** mulberry32: small, fast, good enough to pick delays and branches reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SEED = Number(process.env.KVT_SEED ?? 0x5eed);

export type Cli = { code: number; stdout: string; stderr: string; ms: number };

/** Run bin/kvmctl.js with KVMCTL_HOME=home; stdin is `input` (or empty). */
export function cliIn(home: string, args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: GUEST_CACHE },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 });
    });
    child.stdin.end(o.input ?? '');
  });
}

/** dist/ being rewritten by a concurrent `tsc` (several engineers share the tree) shows as a module error. */
export const DIST_REBUILDING = /SyntaxError: The requested module|ERR_MODULE_NOT_FOUND|Cannot find module '\/.*\/dist\//;

/** Run `fn` again (up to 5 times, 2 s apart) while its CLI result shows dist/ being rebuilt. */
export async function retryDist<T extends { code: number; stderr: string }>(fn: () => Promise<T>): Promise<T> {
  let r = await fn();
  for (let i = 0; i < 5 && r.code !== 0 && DIST_REBUILDING.test(r.stderr); i++) {
    await sleep(2000);
    r = await fn();
  }
  return r;
}

/** Every entry under dir with its type, size, mode and mtime: two equal snapshots = nothing written. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      out.set(path.relative(dir, p), `${st.isDirectory() ? 'd' : 'f'} ${st.size} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

export function diffSnapshots(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of b) if (a.get(k) !== v) out.push(`${a.has(k) ? 'changed' : 'added'} ${k}`);
  for (const k of a.keys()) if (!b.has(k)) out.push(`removed ${k}`);
  return out;
}

/** Map with at most `limit` promises in flight; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** test-output/reliability-NAME.json: the figures docs/reliability.md reports. */
export function writeReport(name: string, data: Record<string, unknown>): void {
  const dir = path.join(ROOT, 'test-output');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `reliability-${name}.json`), `${JSON.stringify({ at: new Date().toISOString(), seed: SEED, ...data }, null, 2)}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
