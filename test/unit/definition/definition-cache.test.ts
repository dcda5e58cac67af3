/**
 * The cache of validated definitions (src/definition/definition-cache.ts): a hit needs no validator
 * (no zod, no YAML parser), any edit revalidates, corrupt entries are misses, invalid definitions
 * are never cached and fail exactly as before, a new build invalidates everything, removed
 * definitions leave nothing behind. Then the same through the built CLI, including that `list`,
 * `status` and `cmdline` with a warm cache load neither zod nor the YAML parser.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { resolvePaths, type Paths } from '../../../src/host/paths.js';
import * as cache from '../../../src/definition/definition-cache.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { listNames, prepareDefinitions, readNetwork, readVm, removeDef, writeDef } from '../../../src/definition/store.js';
import { currentValidator, registerValidator } from '../../../src/definition/validator.js';
import { BIN, ROOT } from '../../helpers/kvmctl.js';

const VM = 'name: web\nmemory: 512M\ncpu: { count: 2 }\nnics: [{ network: lan, mac: "52:54:00:12:34:56" }]\n';
const NET = 'kind: network\nname: lan\ntype: bridge\n';

let dir: string;
let paths: Paths;
const entry = (kind: 'vm' | 'network', name: string) => cache.entryFile(paths, kind, name);
/** What reading without the cache gives: the validator's own answer. */
const validated = (text: string) => parseDefinitions(text, 'x')[0]!.spec;
/** As in a CLI process that has not needed the validator. */
const withoutValidator = () => registerValidator(undefined);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdc-'));
  paths = resolvePaths({ KVMCTL_HOME: dir });
  withoutValidator();
  cache.setBuildIdentityForTests(undefined);
});
afterEach(async () => {
  cache.discardWrites();
  cache.setBuildIdentityForTests(undefined);
  await import('../../../src/definition/store.js').then((v) => v.loadValidator());
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('definition cache', () => {
  it('a hit needs no validator and equals a validation; entries are 0600 in a 0700 directory', async () => {
    writeDef(paths, 'vm', 'web', VM);
    writeDef(paths, 'network', 'lan', NET);
    await prepareDefinitions(paths); // misses: loads the validator, validates and caches both
    expect(currentValidator()).toBeDefined();
    expect(fs.statSync(entry('vm', 'web')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(entry('vm', 'web'))).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(paths.cache, 'definitions')).mode & 0o777).toBe(0o700);
    for (const d of [paths.data, paths.cache]) expect(fs.statSync(d).mode & 0o055, d).toBe(0o055 & ~process.umask()); // not made private
    withoutValidator();
    await prepareDefinitions(paths); // all hits: nothing loaded
    expect(currentValidator()).toBeUndefined();
    expect(readVm(paths, 'web')).toEqual(validated(VM));
    expect(readVm(paths, 'web')).toStrictEqual(JSON.parse(JSON.stringify(validated(VM))));
    expect(readNetwork(paths, 'lan')).toEqual(validated(NET));
    expect(readVm(paths, 'web')).not.toBe(readVm(paths, 'web')); // a fresh object per read
  });

  it('any edit misses: never served stale, revalidated once the validator is there', async () => {
    writeDef(paths, 'vm', 'web', VM);
    await prepareDefinitions(paths);
    withoutValidator();
    writeDef(paths, 'vm', 'web', VM.replace('512M', '1G'));
    expect(() => readVm(paths, 'web')).toThrow(/DEFINITION_CHANGED|changed while kvmctl was running/);
    await prepareDefinitions(paths);
    expect(currentValidator()).toBeDefined();
    withoutValidator();
    expect(readVm(paths, 'web').memory).toBe(1024 ** 3); // cached by prepareDefinitions
    writeDef(paths, 'vm', 'web', `${VM.replace('512M', '1G')}# a comment\n`); // even a comment
    expect(() => readVm(paths, 'web')).toThrow(KvmError);
  });

  it('a corrupt, truncated, foreign or unreadable entry is a miss, and is replaced', async () => {
    writeDef(paths, 'vm', 'web', VM);
    await prepareDefinitions(paths);
    const good = fs.readFileSync(entry('vm', 'web'), 'utf8');
    const bad = ['', '{', 'null', '[]', '{"key":"0","spec":{"name":"evil"}}', JSON.stringify({ ...JSON.parse(good), spec: 'x' }), good.slice(0, good.length / 2)];
    for (const b of bad) {
      fs.writeFileSync(entry('vm', 'web'), b);
      withoutValidator();
      expect(() => readVm(paths, 'web'), b).toThrow(/changed while kvmctl was running/);
      await prepareDefinitions(paths);
      expect(readVm(paths, 'web')).toEqual(validated(VM));
      expect(fs.readFileSync(entry('vm', 'web'), 'utf8')).toBe(good);
    }
    fs.rmSync(entry('vm', 'web'));
    fs.mkdirSync(entry('vm', 'web')); // a directory where the entry should be: read and write fail
    expect(readVm(paths, 'web')).toEqual(validated(VM));
  });

  it('an invalid definition is never cached and fails as before (exit 2, file, path, message)', async () => {
    writeDef(paths, 'vm', 'web', VM);
    await prepareDefinitions(paths);
    const bad = VM.replace('"52:54:00:12:34:56"', '"52:54:00:zz:34:56"');
    writeDef(paths, 'vm', 'web', bad);
    const file = path.join(paths.vmDefs, 'web.yaml');
    const want = (() => {
      const issues = parseDefinitions(bad, file)[0]!.issues;
      expect(issues.length).toBeGreaterThan(0);
      return issues;
    })();
    for (let i = 0; i < 2; i++) {
      const { specError } = await import('../../../src/definition/load.js');
      let got: unknown;
      try {
        readVm(paths, 'web');
      } catch (e) {
        got = e;
      }
      expect(got).toBeInstanceOf(KvmError);
      const e = got as KvmError;
      expect(e.code).toBe('SPEC_INVALID');
      expect(e.exit).toBe(2);
      expect(e.message).toBe(specError(file, want).message);
      expect(e.message).toContain('nics[0].mac');
      expect(e.issues).toEqual(want);
      expect(fs.readFileSync(entry('vm', 'web'), 'utf8')).not.toContain('zz'); // the old entry, unused
    }
    fs.rmSync(entry('vm', 'web'));
    await prepareDefinitions(paths);
    expect(() => readVm(paths, 'web')).toThrow(/nics\[0\]\.mac/);
    expect(fs.existsSync(entry('vm', 'web'))).toBe(false);
    writeDef(paths, 'vm', 'two', `${NET}---\n${VM}`); // two documents: corrupt, not cached
    expect(() => readVm(paths, 'two')).toThrow(/exactly one definition/);
    expect(fs.existsSync(entry('vm', 'two'))).toBe(false);
  });

  it('another build identity misses everything', async () => {
    writeDef(paths, 'vm', 'web', VM);
    await prepareDefinitions(paths);
    withoutValidator();
    expect(readVm(paths, 'web')).toEqual(validated(VM));
    cache.setBuildIdentityForTests('some other build');
    expect(() => readVm(paths, 'web')).toThrow(/changed while kvmctl was running/);
    await prepareDefinitions(paths);
    expect(currentValidator()).toBeDefined();
    withoutValidator();
    expect(readVm(paths, 'web')).toEqual(validated(VM)); // re-cached for this build
    cache.setBuildIdentityForTests(undefined);
    expect(() => readVm(paths, 'web')).toThrow(/changed while kvmctl was running/);
  });

  it('the build identity covers the version, Node and the code that validates', () => {
    const id = cache.buildIdentity();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    cache.setBuildIdentityForTests(undefined);
    expect(cache.buildIdentity()).toBe(id); // stable while nothing changed
    const schema = path.join(ROOT, 'src/definition/vm.ts');
    const st = fs.statSync(schema);
    try {
      fs.utimesSync(schema, st.atime, new Date(st.mtimeMs + 2000)); // "edited"
      cache.setBuildIdentityForTests(undefined);
      expect(cache.buildIdentity()).not.toBe(id);
    } finally {
      fs.utimesSync(schema, st.atimeMs / 1000, st.mtimeMs / 1000);
      cache.setBuildIdentityForTests(undefined);
    }
  });

  it('removing a definition removes its entry; it is no longer listed', async () => {
    writeDef(paths, 'vm', 'web', VM);
    await prepareDefinitions(paths);
    expect(fs.existsSync(entry('vm', 'web'))).toBe(true);
    removeDef(paths, 'vm', 'web');
    expect(fs.existsSync(entry('vm', 'web'))).toBe(false);
    expect(listNames(paths, 'vm')).toEqual([]);
    expect(() => readVm(paths, 'web')).toThrow(/no VM named "web"/);
  });

  it('deferred writes: nothing on disk until flushed, nothing at all when discarded', async () => {
    writeDef(paths, 'vm', 'web', VM);
    cache.deferWrites();
    await prepareDefinitions(paths);
    withoutValidator(); // validated once by prepareDefinitions: later reads hit the held-back entry
    expect(readVm(paths, 'web')).toEqual(validated(VM));
    expect(fs.existsSync(path.join(paths.cache, 'definitions'))).toBe(false);
    cache.discardWrites();
    expect(fs.existsSync(path.join(paths.cache, 'definitions'))).toBe(false);
    cache.deferWrites();
    await prepareDefinitions(paths);
    readVm(paths, 'web');
    expect(fs.existsSync(entry('vm', 'web'))).toBe(false);
    cache.flushWrites();
    expect(fs.existsSync(entry('vm', 'web'))).toBe(true);
  });
});

describe('definition cache through the built CLI', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kdc-'));
  const hooks = path.join(home, 'hooks.mjs');
  const register = path.join(home, 'register.mjs');
  fs.writeFileSync(hooks, "export async function load(url, c, next) { const r = await next(url, c); if (url.startsWith('file:')) process._rawDebug('LOADED ' + url); return r; }\n");
  fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`);
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  const cli = (args: string[], trace = false) =>
    new Promise<{ code: number; stdout: string; stderr: string; loaded: string[] }>((resolve, reject) => {
      const child = spawn(process.execPath, [...(trace ? ['--import', register] : []), BIN, ...args], { env: { ...process.env, KVMCTL_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => {
        const loaded = [...stderr.matchAll(/^LOADED file:\/\/(.*)$/gm)].map((m) => m[1]!);
        resolve({ code: code ?? -1, stdout, stderr: stderr.replace(/^LOADED .*\n/gm, ''), loaded });
      });
    });
  /** Modules of zod or of the YAML parser among those loaded (bundle chunks are told by their content). */
  const heavy = (files: string[]) =>
    files.filter((f) => /\/node_modules\/(zod|yaml)\//.test(f) || /\bZodError\b|\bparseAllDocuments\b/.test(fs.readFileSync(f, 'utf8')));

  it('list, status and cmdline with a warm cache load neither zod nor the YAML parser', async () => {
    // the seed keeps its monitor socket and share under /home/kvm-admin: the operator made it a storage root
    fs.mkdirSync(path.join(home, 'config'), { recursive: true });
    fs.writeFileSync(path.join(home, 'config/host.json'), JSON.stringify({ storage: { roots: ['/home/kvm-admin'] } }));
    expect((await cli(['apply', '-f', path.join(ROOT, 'examples/exam_vm.yaml')])).code).toBe(0);
    const first = await cli(['list'], true);
    expect(first.code, first.stderr).toBe(0);
    expect(heavy(first.loaded).length).toBeGreaterThan(0); // cold: validated
    for (const args of [['list'], ['status', 'exam_vm'], ['cmdline', 'exam_vm', '--json']]) {
      const r = await cli(args, true);
      expect(r.code, r.stderr).toBe(0);
      expect(heavy(r.loaded), args.join(' ')).toEqual([]);
    }
    expect((await cli(['list'])).stdout).toMatch(/^exam_vm\s+stopped\s+-\s+8\s+4G/m);
  }, 60_000);

  it('an edit is seen at once; an invalid edit gives exit 2 with path and message every time; rm unlists', async () => {
    const file = path.join(home, 'config/vms/exam_vm.yaml');
    const orig = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, orig.replace('count: 8', 'count: 4'));
    expect((await cli(['list'])).stdout).toMatch(/^exam_vm\s+stopped\s+-\s+4\s+4G/m);
    fs.writeFileSync(file, orig.replace('memory: 4G', 'memory: 4Q'));
    for (const args of [['status', 'exam_vm'], ['cmdline', 'exam_vm'], ['status', 'exam_vm']]) {
      const r = await cli(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^error: SPEC_INVALID: .*exam_vm\.yaml: 1 problem/m);
      expect(r.stderr).toMatch(/^ {2}memory: .+/m);
    }
    fs.writeFileSync(file, orig);
    fs.writeFileSync(path.join(home, 'data/cache/definitions/vm/exam_vm.json'), '{ not json');
    expect((await cli(['list'])).stdout).toMatch(/^exam_vm\s+stopped\s+-\s+8\s+4G/m);
    expect((await cli(['rm', 'exam_vm'])).code).toBe(0);
    expect((await cli(['list'])).stdout).toMatch(/no VMs defined/);
    expect(fs.existsSync(path.join(home, 'data/cache/definitions/vm/exam_vm.json'))).toBe(false);
  }, 60_000);
});
