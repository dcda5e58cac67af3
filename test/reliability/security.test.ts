/**
 * The security review of docs/security.md, one test per claim: no shell anywhere; names cannot
 * escape their directories; runtime dir, socket and token modes; QEMU under seccomp (-sandbox on);
 * runAs really drops privileges (a throw-away system user made and deleted here); the API refuses
 * unauthenticated TCP requests. Real QEMU (TCG), no guest boot needed (QMP-ready is enough).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../src/errors.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths } from '../../src/host/paths.js';
import { NAME_RE } from '../../src/definition/names.js';
import { defPath } from '../../src/definition/store.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { BIN, makeHome, ROOT, type Home } from '../helpers/kvmctl.js';
import { mapLimit, retryDist, SEED, sleep, writeReport } from './lib.js';

const SRC = path.join(ROOT, 'src');
const report: Record<string, unknown> = {};

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? tsFiles(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : []));
}
/** Source without comments (so a comment that mentions `exec(` does not count, and nothing hides in one). */
function code(file: string): string {
  return fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}
const rel = (f: string) => path.relative(ROOT, f);

describe('no shell anywhere', () => {
  const files = tsFiles(SRC);
  const EXEC = path.join(SRC, 'host/exec.ts');

  it('only src/host/exec.ts imports child_process or execa', () => {
    const importers = files.filter((f) => /from ['"](node:)?child_process['"]|from ['"]execa['"]|require\(['"](node:)?child_process['"]\)|import\(['"](node:)?child_process['"]\)/.test(code(f)));
    expect(importers.map(rel)).toEqual(['src/host/exec.ts']);
    report.sourceFilesScanned = files.length;
  });

  it('no shell: true, exec/execSync/execFile, spawnSync, or sh -c in any argv', () => {
    const hits: string[] = [];
    const forbidden: [RegExp, string][] = [
      [/shell:\s*true/, 'shell: true'],
      [/\bexecSync\b|\bexecFileSync\b|\bspawnSync\b|\bexecFile\b/, 'exec*Sync / execFile / spawnSync'],
      [/child_process\.exec\b/, 'child_process.exec'],
      [/\/bin\/(ba|da)?sh\s+-c\b|\b(ba|da)?sh -c\b/, 'sh -c in a string'],
      [/['"](\/bin\/)?(ba|da)?sh['"]\s*,\s*['"]-c['"]/, "['sh', '-c', …] argv"],
      [/\bexecaCommand(Sync)?\b/, 'execaCommand (a command string)'],
    ];
    for (const f of files) {
      const c = code(f);
      for (const [re, what] of forbidden) if (re.test(c)) hits.push(`${rel(f)}: ${what}`);
      // A bare exec( call is allowed only for a function the file itself defines (RegExp .exec is a method call).
      if (/(?<![.\w$])exec\(/.test(c) && !/function exec\(|const exec\s*=/.test(c)) hits.push(`${rel(f)}: bare exec(`);
    }
    expect(hits).toEqual([]);
  });

  it('exec.ts itself spawns without a shell', () => {
    const c = code(EXEC);
    expect(c).toMatch(/shell:\s*false/);
    expect(c).not.toMatch(/shell:\s*(true|['"])/);
    // every spawn/execa call in it takes a program and an argument array
    const calls = [...c.matchAll(/\b(spawn|execa)\(([^,)]+),/g)].map((m) => m[2]!.trim());
    expect(calls.length).toBeGreaterThan(0);
    for (const first of calls) expect(first).toMatch(/^(file|argv\[0\]|prog|cmd|bin)!?$/);
  });

  it('"#!/bin/sh" appears only in scripts kvmctl writes for others to run (boot config export, the guest\'s init, the guest\'s time-sync gate)', () => {
    const withSh = files.filter((f) => /\/bin\/sh/.test(code(f))).map(rel).sort();
    const allowed = ['src/guest/init-script.ts', 'src/guest/test-guest.ts', 'src/guest/time-sync.ts', 'src/net/export/script.ts'];
    for (const f of withSh) expect(allowed, `${f} mentions /bin/sh`).toContain(f);
  });
});

describe('names cannot escape their directories', () => {
  const paths = resolvePaths({ KVMCTL_HOME: '/nonexistent/kvt-home' });

  it('NAME_RE refuses separators, dot-dot, NUL, control characters and leading dots/dashes', () => {
    for (const n of ['../x', '..', '.', 'a/b', '/abs', 'a\\b', 'a\0b', 'a\nb', '.hidden', '-rf', '', 'x'.repeat(65), 'a b', 'a;b', '$(id)']) expect(NAME_RE.test(n), JSON.stringify(n)).toBe(false);
    for (const n of ['exam_vm', 'web-1', 'a.b', 'X9', 'v'.repeat(64)]) expect(NAME_RE.test(n), n).toBe(true);
  });

  it('definition paths are built only from valid names and stay in their directory (property, 2000 names)', () => {
    let refused = 0;
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('..', '../x', 'a/../../b', '/etc/passwd', 'a\0b', 'ok')), fc.constantFrom('vm' as const, 'network' as const), (name, kind) => {
        let p: string;
        try {
          p = defPath(paths, kind, name);
        } catch (e) {
          expect(e).toBeInstanceOf(KvmError);
          expect((e as KvmError).code).toBe('BAD_NAME');
          expect((e as KvmError).exit).toBe(2);
          refused++;
          return;
        }
        const dir = kind === 'vm' ? paths.vmDefs : paths.netDefs;
        expect(path.dirname(p)).toBe(dir);
        expect(path.basename(p)).toBe(`${name}.yaml`);
        expect(path.resolve(p).startsWith(`${dir}/`)).toBe(true);
      }),
      { numRuns: 2000, seed: SEED },
    );
    report.namesRefused = refused;
  });

  it('every CLI command that takes a VM name refuses traversal with exit 2 and writes nothing', async () => {
    const h = makeHome();
    fs.rmSync(path.join(h.dir, 'data'), { recursive: true }); // makeHome's empty images dir: the home starts empty
    try {
      const runs = ['start', 'stop', 'kill', 'status', 'show', 'rm', 'logs', 'pause'].flatMap((cmd) => ['../../etc/passwd', 'a/b', '..', '/tmp/x'].map((n) => [cmd, n]));
      await mapLimit(runs, 4, async (args) => {
        const r = await retryDist(() => h.cli(args));
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/BAD_NAME|VM_NOT_FOUND/);
      });
      expect(fs.readdirSync(h.dir)).toEqual([]);
      report.cliTraversalRefusals = runs.length;
    } finally {
      await h.cleanup();
    }
  }, 300_000);
});

const canVm = process.getuid?.() === 0 && canBootGuest();

type ProcStatus = { Uid: number[]; Gid: number[]; Seccomp: number; NoNewPrivs: number; CapEff: string };
function procStatus(pid: number): ProcStatus {
  const t = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const f = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(t)?.[1]?.trim() ?? '';
  return { Uid: f('Uid').split(/\s+/).map(Number), Gid: f('Gid').split(/\s+/).map(Number), Seccomp: Number(f('Seccomp')), NoNewPrivs: Number(f('NoNewPrivs')), CapEff: f('CapEff') };
}
const mode = (p: string) => fs.statSync(p).mode & 0o7777;

describe.skipIf(!canVm)('a started VM: runtime modes, seccomp, privilege drop', () => {
  let h: Home;
  let user: string | undefined;
  let uid = -1;
  beforeAll(async () => {
    h = makeHome();
    // The runAs user must be able to reach its runtime dir (preflight refuses otherwise).
    fs.chmodSync(h.dir, 0o711);
    user = `kvmtest-${randomBytes(3).toString('hex')}`;
    await run(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    uid = Number((await run(['id', '-u', user])).stdout);
    await h.apply(`name: plain\nmemory: 128M\nkernel: { builtin: test-guest }\n`);
    await h.apply(`name: dropped\nmemory: 128M\nkernel: { builtin: test-guest }\nrunAs: ${user}\n`);
  }, 320_000);
  afterAll(async () => {
    await h?.cli(['kill', 'plain']).catch(() => undefined);
    await h?.cli(['kill', 'dropped']).catch(() => undefined);
    await h?.cleanup();
    if (user) await run(['userdel', user], { allowFailure: true });
  });

  it('without runAs: runtime dir 0750, sockets not connectable by others, QEMU under seccomp with -sandbox on', async () => {
    const s = await retryDist(() => h.cli(['start', 'plain', '--json']));
    expect(s.code, s.stderr).toBe(0);
    const { pid, argv } = JSON.parse(s.stdout) as { pid: number; argv: string[] };
    const dir = path.join(h.dir, 'run/vms/plain');
    expect(mode(dir)).toBe(0o750);
    for (const sock of ['qmp.sock', 'serial.sock']) {
      const m = mode(path.join(dir, sock));
      expect(m & 0o002, `${sock} mode ${m.toString(8)}`).toBe(0); // connect() needs write permission
    }
    expect(mode(path.join(dir, 'qemu.pid')) & 0o022).toBe(0);
    const sb = argv.indexOf('-sandbox');
    expect(sb).toBeGreaterThan(0);
    expect(argv[sb + 1]).toMatch(/^on,.*elevateprivileges=deny.*spawn=deny/);
    const st = procStatus(pid);
    expect(st.Seccomp).toBe(2); // SECCOMP_MODE_FILTER
    report.plain = { dirMode: mode(dir).toString(8), qmpSockMode: mode(path.join(dir, 'qmp.sock')).toString(8), seccomp: st.Seccomp, noNewPrivs: st.NoNewPrivs, sandbox: argv[sb + 1] };
    expect((await retryDist(() => h.cli(['kill', 'plain']))).code).toBe(0);
  }, 120_000);

  it('with runAs: QEMU runs as that user (all four uids), under seccomp; sockets 0660 for the user and the kvm group', async () => {
    const s = await retryDist(() => h.cli(['start', 'dropped', '--json']));
    expect(s.code, s.stderr).toBe(0);
    const { pid, argv } = JSON.parse(s.stdout) as { pid: number; argv: string[] };
    expect(argv.join(' ')).toMatch(new RegExp(`-runas ${user}|-run-with user=${user}`));
    const st = procStatus(pid);
    expect(st.Uid).toEqual([uid, uid, uid, uid]); // real, effective, saved, filesystem
    expect(st.Gid.every((g) => g !== 0)).toBe(true);
    expect(st.CapEff).toBe('0000000000000000');
    expect(st.Seccomp).toBe(2);
    const dir = path.join(h.dir, 'run/vms/dropped');
    const kvm = Number((await run(['getent', 'group', 'kvm'], { allowFailure: true })).stdout.split(':')[2] ?? NaN);
    for (const sock of ['qmp.sock', 'serial.sock']) {
      const p = path.join(dir, sock);
      expect(mode(p), sock).toBe(0o660);
      expect(fs.statSync(p).uid, sock).toBe(uid);
      if (Number.isFinite(kvm)) expect(fs.statSync(p).gid, sock).toBe(kvm);
    }
    expect(mode(dir) & 0o007).toBe(0);
    // kvmctl still controls it (QMP over the 0660 socket, as root) and stops it.
    const q = await retryDist(() => h.cli(['status', 'dropped', '--json']));
    expect(JSON.parse(q.stdout).state).toBe('running');
    report.runAs = { user, uid, procUid: st.Uid, procGid: st.Gid, capEff: st.CapEff, seccomp: st.Seccomp, dirMode: mode(dir).toString(8), qmpSockMode: mode(path.join(dir, 'qmp.sock')).toString(8) };
    const k = await retryDist(() => h.cli(['kill', 'dropped', '--json']));
    expect(k.code, k.stderr).toBe(0);
    expect(JSON.parse((await retryDist(() => h.cli(['status', 'dropped', '--json']))).stdout).state).not.toBe('running');
  }, 120_000);
});

describe.skipIf(process.getuid?.() !== 0)('the API refuses unauthenticated TCP requests', () => {
  let h: Home;
  let child: ChildProcess | undefined;
  let url = '';
  beforeAll(async () => {
    h = makeHome();
    await h.apply(`name: api-vm\nmemory: 128M\n`);
    child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--no-watch'], { env: h.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const end = Date.now() + 30_000;
    while (!/listening on (https?:\/\/\S+)/.test(err) && Date.now() < end && child.exitCode === null) await sleep(100);
    url = /listening on (https?:\/\/[^\s;]+)/.exec(err)?.[1] ?? '';
    if (!url) throw new Error(`kvmctl serve did not start: ${err}`);
  }, 60_000);
  afterAll(async () => {
    if (child?.pid && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('close', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await h?.cleanup();
  });

  it('no token and a wrong token get 401 on every API route tried; the right one gets 200; the token file is 0600', async () => {
    const tokenFile = path.join(h.dir, 'config/token');
    expect(mode(tokenFile)).toBe(0o600);
    const token = fs.readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    const routes: [string, string][] = [['GET', '/api/vms'], ['GET', '/api/vms/api-vm'], ['POST', '/api/vms/api-vm/start'], ['DELETE', '/api/vms/api-vm'], ['GET', '/api/networks'], ['GET', '/metrics'], ['GET', '/api/openapi.json']];
    const results: Record<string, number[]> = {};
    for (const [method, p] of routes) {
      const codes: number[] = [];
      for (const auth of [undefined, 'Bearer wrong', `Bearer ${token}x`, `Basic ${Buffer.from(`x:${token}`).toString('base64')}`, token]) {
        const r = await fetch(`${url}${p}`, { method, headers: auth ? { authorization: auth } : {} });
        codes.push(r.status);
        expect(r.status, `${method} ${p} with ${auth ?? 'no auth'}`).toBe(401);
      }
      results[`${method} ${p}`] = codes;
    }
    // The definition is still there and not started: refused requests changed nothing.
    const ok = await fetch(`${url}/api/vms`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    const list = (await ok.json()) as { name: string; state: string }[] | { vms: { name: string; state: string }[] };
    const vms = Array.isArray(list) ? list : list.vms;
    expect(vms.find((v) => v.name === 'api-vm')?.state).toBe('stopped');
    // A traversal name through the API, authenticated: refused as bad input, not a 500.
    const bad = await fetch(`${url}/api/vms/..%2F..%2Fetc%2Fpasswd`, { headers: { authorization: `Bearer ${token}` } });
    expect([400, 404]).toContain(bad.status);
    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    report.api = { url: url.replace(/:\d+$/, ':PORT'), refused: Object.values(results).flat().length, traversalStatus: bad.status };
    writeReport('security', report);
  }, 60_000);
});
