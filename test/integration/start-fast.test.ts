/**
 * `kvmctl start` through the start fast path (dist/bundle/start.cjs, src/cli/start-fast.ts) with
 * its V8 code cache, on real QEMU: the cache is written, then used; a cache made from other code
 * (a rebuilt or edited start.cjs) or damaged is never run; command lines the fast path does not
 * take go to the full CLI, with the same answers; a CLI start is still a task (src/tasks/cli.ts).
 * Runs a private copy of bin/ + dist/bundle so that writing and spoiling the cache touches no
 * other test's CLI.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { GUEST_CACHE, qemuPidsIn, ROOT, TINY } from '../helpers/kvmctl.js';

const cli = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-fastcli-'));
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kf-'));
const env = { ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: GUEST_CACHE, KVMCTL_TRACE: '1' };
const startCjs = path.join(cli, 'dist/bundle/start.cjs');
const cacheFile = `${startCjs}.cache`;

type Run = { code: number; stdout: string; stderr: string };
function kvmctl(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(cli, 'bin/kvmctl.js'), ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => (clearTimeout(t), resolve({ code: code ?? -1, stdout, stderr })));
  });
}
const ok = async (args: string[], extra?: NodeJS.ProcessEnv) => {
  const r = await kvmctl(args, extra);
  expect(r.code, r.stderr).toBe(0);
  return r;
};
const cacheState = (r: Run) => /trace code cache: (\w+)/.exec(r.stderr)?.[1];

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist/bundle/start.cjs'))) throw new Error('build first: npx tsc -p tsconfig.json && node scripts/bundle.mjs');
  fs.cpSync(path.join(ROOT, 'bin'), path.join(cli, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist/bundle'), path.join(cli, 'dist/bundle'), { recursive: true, filter: (f) => !f.endsWith('.cache') });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(cli, 'package.json'));
  await ensureTestGuest(resolvePaths({ ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: GUEST_CACHE }));
  const f = path.join(home, 'tiny.yaml');
  fs.writeFileSync(f, TINY('tiny'));
  await ok(['apply', '-f', f]);
}, 320_000);

afterAll(() => {
  for (const pid of qemuPidsIn(path.join(home, 'run'))) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-system')) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(cli, { recursive: true, force: true });
  fs.rmSync(home, { recursive: true, force: true });
});

async function startAndKill(extra?: NodeJS.ProcessEnv): Promise<Run> {
  const r = await ok(['start', 'tiny', '--wait', '--json'], extra);
  const out = JSON.parse(r.stdout) as { name: string; pid: number; accel: string; qmpReadyMs: number };
  expect(out).toMatchObject({ name: 'tiny', accel: expect.stringMatching(/kvm|tcg/) });
  expect(JSON.parse((await ok(['status', 'tiny', '--json'])).stdout)).toMatchObject({ state: 'running', pid: out.pid });
  await ok(['kill', 'tiny']);
  return r;
}

describe('start fast path and its code cache', () => {
  it('starts through the fast path; the first run writes the cache, keyed by the file sha256, the next uses it', async () => {
    const first = await startAndKill();
    expect(first.stderr).toContain('start-fast: evaluated');
    expect(first.stderr).not.toContain('commands registered'); // commander never loaded
    expect(cacheState(first)).toBe('none');
    const sha = createHash('sha256').update(fs.readFileSync(startCjs)).digest('hex');
    expect(fs.readFileSync(cacheFile).subarray(0, 200).toString('latin1').split('\n')[0]).toBe(`kvmctl-code-cache 1 ${sha} ${process.version}`);
    expect(cacheState(await startAndKill())).toBe('used');
  });

  it('never runs a cache made from other code: an edited start.cjs is compiled from source and the cache rewritten', async () => {
    const good = fs.readFileSync(cacheFile);
    fs.appendFileSync(startCjs, '\n// rebuilt\n');
    const r = await startAndKill();
    expect(cacheState(r)).toBe('none');
    const sha = createHash('sha256').update(fs.readFileSync(startCjs)).digest('hex');
    expect(fs.readFileSync(cacheFile).subarray(0, 200).toString('latin1')).toContain(sha);
    expect(fs.readFileSync(cacheFile).equals(good)).toBe(false);
    expect(cacheState(await startAndKill())).toBe('used');
  });

  it('a damaged cache with the right key is rejected by V8, the start goes on, the cache is rewritten', async () => {
    const c = fs.readFileSync(cacheFile);
    const nl = c.indexOf(10) + 1;
    fs.writeFileSync(cacheFile, Buffer.concat([c.subarray(0, nl), Buffer.alloc(c.length - nl, 0x5a)]));
    expect(cacheState(await startAndKill())).toBe('rejected');
    expect(cacheState(await startAndKill())).toBe('used');
    expect(cacheState(await startAndKill({ KVMCTL_CODE_CACHE: '0' }))).toBe('off');
  });

  it('leaves other command lines to the full CLI, with the same answers', async () => {
    const two = await kvmctl(['start', 'tiny', 'nope']);
    expect(two.stderr).toContain('commands registered');
    expect(two.code).toBe(2);
    const fast = await kvmctl(['start', 'nope']);
    const full = await kvmctl(['start', 'nope'], { KVMCTL_FAST_START: '0' });
    expect(fast.stderr).toContain('start-fast: evaluated');
    expect(full.stderr).not.toContain('start-fast');
    expect([fast.code, full.code]).toEqual([2, 2]);
    const msg = (r: Run) => r.stderr.split('\n').filter((l) => !l.startsWith('trace')).join('\n');
    expect(msg(fast)).toBe(msg(full));
    expect(msg(fast)).toContain('VM_NOT_FOUND');
    const fastJson = await kvmctl(['start', 'nope', '--json']);
    const fullJson = await kvmctl(['start', 'nope', '--json'], { KVMCTL_FAST_START: '0' });
    expect(JSON.parse(fastJson.stdout)).toEqual(JSON.parse(fullJson.stdout));
    const help = await kvmctl(['start', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--wait-for-guest');
  });

  it('a start that takes longer than a second is a CLI task with its log (no AsyncLocalStorage in the CLI)', async () => {
    const r = await ok(['start', 'tiny', '--wait-for-guest', '--json']);
    expect(r.stderr).toContain('start-fast: evaluated');
    await ok(['kill', 'tiny']);
    const tasks = JSON.parse((await ok(['tasks', 'list', '--json'])).stdout) as { id: string; kind: string; owner: string; state: string; target?: string }[];
    const t = tasks.find((x) => x.kind === 'start' && x.owner === 'cli');
    expect(t, JSON.stringify(tasks)).toMatchObject({ state: 'ok', target: 'tiny' });
    const log = (await ok(['tasks', 'log', t!.id])).stdout;
    expect(log).toContain('kvmctl start tiny');
    expect(log).toMatch(/QMP answered after \d+ ms/);
    expect(log).toMatch(/guest ready after \d+ ms/);
  });
});
