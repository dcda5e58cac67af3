/**
 * No HTTP 500 for a user's mistake: every non-WebSocket route of kvmctl serve gets seeded random
 * bad bodies, names and query strings (KVT_SEED; a few hundred cases) against a private home with
 * one real running test guest (so QMP and monitor errors are real), and no reply is a 500 or
 * carries a stack trace. The server's network actions go to a namespace the test creates; the
 * root namespace's links are the same afterwards. Also: capacity errors with their numbers, and
 * a QMP error as 422.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routes } from '../../src/api/contract.js';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths } from '../../src/host/paths.js';
import { GUEST_CACHE, qemuPidsIn } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';
import { prng, SEED } from './lib.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kfz-'));
const paths = resolvePaths({ KVMCTL_HOME: home });
const ksm = fs.mkdtempSync(path.join(os.tmpdir(), 'kfz-ksm-'));
let s: KvmServer;
let ns: Netns;
const oldEnv = { ksm: process.env.KVMCTL_KSM_ROOT, cache: process.env.KVMCTL_GUEST_CACHE };
const links = async () => (await run(['ip', '-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim()).filter(Boolean).sort();
let rootLinks: string[];

const NAMES = ['fz', 'idle', 'nope', '..', '%2e%2e', '..%2f..%2fetc', 'a'.repeat(90), '$(id)', 'FZ', '-rf', 'x y', '%00'];
const JUNK: unknown[] = [null, [], 'text', 42, true, {}, { yaml: '' }, { yaml: ':\n  - [' }, { yaml: 'name: ../x\n' }, { definition: [] }, { definition: { name: 'q', cpu: 'many' } },
  { yaml: 'name: big\nkernel: { builtin: test-guest }\ncpu: { count: 999 }\nmemory: 900G\n' }, { yaml: 'name: pw\nkernel: { builtin: test-guest }\ndisks: [{ file: /etc/passwd }]\n' },
  { yaml: 'kind: network\nname: n1\ntype: nat\naddress: 300.1.1.1/24\n' }, { yaml: 'kind: network\nname: n2\ntype: bridge\nforwardDelay: -1\n' },
  { execute: '' }, { execute: 'no-such-command' }, { execute: 'block_resize', arguments: { device: 'nope', size: -1 } }, { execute: 'human-monitor-command', arguments: 7 },
  { command: '' }, { command: 'no_such_hmp' }, { command: 'info status' }, { timeoutSec: -5 }, { timeoutSec: 'soon' }, { force: 'yes' }, { waitForGuest: 12 },
  { path: '../../etc/passwd', size: '1M' }, { path: 'a.raw', size: '-1' }, { path: 'b.qcow2', size: '1P' }, { path: 'c.raw', size: '1M', format: 'exe' }, { path: '/dev/null', size: 1 },
  { pagesToScan: -1 }, { sleepMs: 'x' }, { unknownKey: 1 }, 'x'.repeat(5000)];
const QUERIES = ['', '?path=', '?path=/etc/passwd', '?path=../x', '?path=%00', '?since=-1', '?since=abc', '?replace=maybe', '?force=2', '?x=1&x=2', '?path=a.raw'];

describe.skipIf(!canUseNetns().ok)('API fuzz: no 500, no stack trace', () => {
  beforeAll(async () => {
    ns = await createNetns('kfz');
    rootLinks = await links();
    for (const [f, v] of Object.entries({ run: 0, pages_to_scan: 100, sleep_millisecs: 20, pages_shared: 0, pages_sharing: 0, pages_unshared: 0, full_scans: 0 })) fs.writeFileSync(path.join(ksm, f), `${v}\n`);
    process.env.KVMCTL_KSM_ROOT = ksm;
    process.env.KVMCTL_GUEST_CACHE = GUEST_CACHE;
    s = await buildServer({ paths, netns: ns.name, reconcileMs: 500 });
    for (const n of ['fz', 'idle']) {
      const r = await s.app.inject({ method: 'POST', url: '/api/vms', payload: { yaml: `name: ${n}\nmemory: 64M\nkernel: { builtin: test-guest }\n` } });
      expect(r.statusCode, r.body).toBe(200);
    }
    const st = await s.app.inject({ method: 'POST', url: '/api/vms/fz/start', payload: {} });
    expect(st.statusCode, st.body).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    for (const pid of qemuPidsIn(paths.run)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await ns?.destroy();
    process.env.KVMCTL_KSM_ROOT = oldEnv.ksm;
    if (oldEnv.ksm === undefined) delete process.env.KVMCTL_KSM_ROOT;
    if (oldEnv.cache === undefined) delete process.env.KVMCTL_GUEST_CACHE;
    else process.env.KVMCTL_GUEST_CACHE = oldEnv.cache;
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(ksm, { recursive: true, force: true });
  });

  it('a QMP error is 422 with a hint; capacity is 422 with the numbers', async () => {
    const q = await s.app.inject({ method: 'POST', url: '/api/vms/fz/qmp', payload: { execute: 'no-such-command' } });
    expect(q.statusCode, q.body).toBe(422);
    expect(q.json()).toMatchObject({ code: 'QMP_ERROR', hint: expect.any(String) });
    const big = await s.app.inject({ method: 'POST', url: '/api/vms', payload: { yaml: 'name: big\nkernel: { builtin: test-guest }\ncpu: { count: 999 }\nmemory: 900G\n' } });
    expect(big.statusCode, big.body).toBe(422);
    const cpus = os.availableParallelism();
    expect(big.body).toContain(`999 vCPUs is more than this host allows: ${cpus} CPUs × overcommit 4 = ${cpus * 4}`);
    expect(big.body).toMatch(/900G is more than this host has: RAM \S+ \+ swap \S+ × overcommit 1 = \S+/);
    expect(fs.existsSync(path.join(paths.vmDefs, 'big.yaml'))).toBe(false);
  });

  it(`seeded cases (seed ${SEED}) over every route: never 500, never a stack trace`, async () => {
    const r = prng(SEED);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
    const bad: string[] = [];
    const statuses = new Map<number, number>();
    let n = 0;
    for (const [key, route] of Object.entries(routes)) {
      if ('websocket' in route && route.websocket) continue;
      const per = key === 'hostCheck' || key === 'openapi' ? 2 : 12;
      for (let i = 0; i < per; i++) {
        const url = route.path.replace(/:name/, pick(NAMES)) + pick(QUERIES);
        const payload = route.method === 'GET' || route.method === 'DELETE' ? undefined : pick(JUNK);
        const res = await s.app.inject({ method: route.method, url, ...(payload === undefined ? {} : typeof payload === 'string' ? { payload, headers: { 'content-type': 'application/json' } } : { payload: payload as object }) });
        n++;
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode >= 500 && res.statusCode < 503) bad.push(`${route.method} ${url} ${JSON.stringify(payload)?.slice(0, 80)} → ${res.statusCode} ${res.body.slice(0, 200)}`);
        if (/\n\s+at .+:\d+:\d+|node_modules\/|\.ts:\d+/.test(res.body)) bad.push(`${route.method} ${url} → stack trace in ${res.body.slice(0, 200)}`);
      }
    }
    console.log('api fuzz', { seed: SEED, cases: n, statuses: Object.fromEntries(statuses) });
    expect(n).toBeGreaterThan(300);
    expect(bad).toEqual([]);
    expect(await links()).toEqual(rootLinks);
  }, 300_000);
});
