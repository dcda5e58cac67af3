/**
 * The target network namespace is resolved in one place (src/host/netns-target.ts): --netns,
 * else KVMCTL_NETNS, checked for syntax and existence, and passed down as data. A module that
 * read the variable itself would be a second, unchecked source of truth: the bug this replaces
 * was `start` building a nat network in the root namespace while KVMCTL_NETNS was set.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { NETNS_DIR, resolveNetns } from '../../../src/host/netns-target.js';
import { canUseNetns, createNetns, type Netns } from '../../helpers/netns.js';

const root = path.resolve(import.meta.dirname, '../../..');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Reads of the variable: env.KVMCTL_NETNS, env['KVMCTL_NETNS'], env[NETNS_ENV], { KVMCTL_NETNS } = …env. */
const READS = /\benv\s*(?:\?\.|\.)\s*KVMCTL_NETNS\b|\benv\s*(?:\?\.)?\[\s*(?:['"`]KVMCTL_NETNS['"`]|NETNS_ENV)\s*\]|\{[^}]*\bKVMCTL_NETNS\b[^}]*\}\s*=\s*[\w.]*env\b/;

const err = (f: () => unknown): KvmError => {
  try {
    f();
  } catch (e) {
    if (e instanceof KvmError) return e;
    throw e;
  }
  throw new Error('expected a KvmError');
};

describe('KVMCTL_NETNS is read in one place', () => {
  it('no module under src/ but the resolver reads it', () => {
    const readers = tsFiles(path.join(root, 'src'))
      .filter((f) => READS.test(fs.readFileSync(f, 'utf8')))
      .map((f) => path.relative(root, f));
    // The resolver itself must match, else the pattern finds nothing at all.
    expect(readers).toEqual(['src/host/netns-target.ts']);
  });

  it('the pattern catches the usual ways of reading it', () => {
    for (const s of ['process.env.KVMCTL_NETNS', "process.env['KVMCTL_NETNS']", 'env?.KVMCTL_NETNS', 'const { KVMCTL_NETNS: ns } = process.env']) expect(s).toMatch(READS);
    expect('"default: env KVMCTL_NETNS"').not.toMatch(READS);
  });
});

describe('resolveNetns', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-nsdir-'));
    fs.writeFileSync(path.join(tmp, 'plainfile'), ''); // an empty file, but no namespace mounted on it
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('nothing set: the host namespace (undefined); an empty KVMCTL_NETNS counts as unset', () => {
    expect(resolveNetns({ env: {} })).toBeUndefined();
    expect(resolveNetns({ env: { KVMCTL_NETNS: '' } })).toBeUndefined();
  });

  it('a bad name is exit 2 BAD_NETNS, whether from the flag or the environment', () => {
    for (const bad of ['../etc', 'a/b', '-x', '.', 'x'.repeat(65), 'sp ace']) {
      const e = err(() => resolveNetns({ flag: bad, env: {}, dir: tmp }));
      expect([e.code, e.exit]).toEqual(['BAD_NETNS', 2]);
      expect(e.message).toContain('--netns');
    }
    const e = err(() => resolveNetns({ env: { KVMCTL_NETNS: 'a/b' }, dir: tmp }));
    expect([e.code, e.exit]).toEqual(['BAD_NETNS', 2]);
    expect(e.message).toContain('KVMCTL_NETNS');
    // An empty --netns is a mistake, not "unset".
    expect(err(() => resolveNetns({ flag: '', env: {}, dir: tmp })).code).toBe('BAD_NETNS');
  });

  it('a namespace that does not exist is exit 2 NETNS_NOT_FOUND with the ip netns add hint; a plain file is not a namespace', () => {
    for (const name of ['nope', 'plainfile']) {
      const e = err(() => resolveNetns({ env: { KVMCTL_NETNS: name }, dir: tmp }));
      expect([e.code, e.exit]).toEqual(['NETNS_NOT_FOUND', 2]);
      expect(e.hint).toContain(`ip netns add ${name}`);
      expect(e.hint).toContain('unset KVMCTL_NETNS');
    }
    const f = err(() => resolveNetns({ flag: 'nope', env: {}, dir: tmp }));
    expect(f.message).toContain('--netns');
    expect(f.hint).toBe('create it first: ip netns add nope');
  });

  describe.skipIf(!canUseNetns().ok)('with a real namespace', () => {
    let ns: Netns;
    beforeAll(async () => {
      ns = await createNetns('kvt-nst');
    });
    afterAll(async () => {
      await ns?.destroy();
    });

    it('an existing namespace resolves; the flag wins over the environment', () => {
      expect(resolveNetns({ env: { KVMCTL_NETNS: ns.name } })).toBe(ns.name);
      expect(resolveNetns({ flag: ns.name, env: { KVMCTL_NETNS: 'missing-one' } })).toBe(ns.name);
      expect(err(() => resolveNetns({ flag: 'missing-one', env: { KVMCTL_NETNS: ns.name } })).code).toBe('NETNS_NOT_FOUND');
      expect(fs.existsSync(path.join(NETNS_DIR, ns.name))).toBe(true);
    });
  });
});
