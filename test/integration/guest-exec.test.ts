/**
 * `kvmctl guest exec` and agent-reported addresses on the real Debian 12 guest (issue #15), in a
 * network namespace of its own with a kvmctl nat network: the image is kvmctl's cached Debian build
 * (.cache/guest/debian-12; built when missing), booted as an overlay under plain UEFI (no Secure
 * Boot or TPM: their cost is measured in debian-guest.test.ts) with the agent. Through the CLI:
 * piped stdin (binary, 1 MiB), stdout and stderr apart, exit codes and signals, --no-stdin, --env,
 * --timeout killing the program in the guest (exit 124) with what it wrote; `list --wide` and
 * `show` with the lease and the agent's address marked by source; then through the API in-process:
 * exec, bad input as 400 before the agent is asked, the VM detail's addresses.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const can =
  canBootGuest() &&
  canUseNetns().ok &&
  process.getuid?.() === 0 &&
  ['/usr/bin/mmdebstrap', '/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/sbin/dnsmasq', '/usr/sbin/nft'].every((f) => fs.existsSync(f));
let h: Home;
let paths: Paths;
let ns: Netns;
let api: KvmServer | undefined;
const defs = `kind: network
name: gxnat
type: nat
address: 10.81.0.1/24
dns: { upstream: [] }
---
name: gx
profile: server
firmware: uefi
memory: 768M
cpu: { count: 2 }
disks:
  - file: gx.qcow2
nics: [{ network: gxnat }]
stopTimeout: 30
`;
const gexec = (args: string[], o: { input?: string | Buffer } = {}) => h.cli(['guest', 'exec', 'gx', ...args], { timeoutMs: 150_000, input: o.input as string });

beforeAll(async () => {
  if (!can) return;
  h = makeHome();
  paths = resolvePaths(h.env);
  ns = await createNetns('kvt-gx');
}, 60_000);
afterAll(async () => {
  if (!can) return;
  await api?.close();
  await h?.cli(['stop', 'gx', '--force'], { timeoutMs: 60_000 }).catch(() => undefined);
  await h?.cli(['net', 'down', 'gxnat', '--force', '--netns', ns.name]).catch(() => undefined);
  for (const pid of dnsmasqPids(natFiles(paths, 'gxnat').conf)) process.kill(pid, 'SIGKILL');
  await h?.cleanup();
  await ns?.destroy();
}, 120_000);

describe.skipIf(!can)('guest exec and agent addresses on the Debian 12 guest', () => {
  it('boots the Debian overlay on a nat network to a running agent', async () => {
    const img = await h.cli(['image', 'debian-12', '--disk', 'gx.qcow2'], { timeoutMs: 1_500_000 });
    expect(img.code, img.stderr).toBe(0);
    await h.apply(defs);
    expect((await h.cli(['net', 'up', 'gxnat', '--netns', ns.name])).code).toBe(0);
    const s = await h.cli(['start', 'gx', '--netns', ns.name], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    const p = await h.cli(['guest', 'ping', 'gx', '--wait', '400', '--json'], { timeoutMs: 420_000 });
    expect(p.code, p.stderr).toBe(0);
    console.log(`Debian 12 (TCG, UEFI) agent up ${JSON.parse(p.stdout).waitedMs} ms after start`);
  }, 1_600_000);

  it('piped stdin reaches the program byte for byte (1 MiB, binary); stdout and stderr stay apart; the exit code is ours', async () => {
    const data = crypto.randomBytes(1024 * 1024);
    const want = crypto.createHash('sha256').update(data).digest('hex');
    const t0 = Date.now();
    const r = await h.cli(['guest', 'exec', 'gx', '--', '/usr/bin/sha256sum'], { timeoutMs: 150_000, input: data as unknown as string });
    console.log(`guest exec with 1 MiB of stdin: ${Date.now() - t0} ms (CLI start to exit)`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(' ')[0]).toBe(want);
    const e = await gexec(['--', '/bin/sh', '-c', 'read x; echo "out:$x"; echo err >&2; exit 7'], { input: 'hello\n' });
    expect(e).toMatchObject({ code: 7, stdout: 'out:hello\n' });
    expect(e.stderr).toBe('err\n');
    expect((await gexec(['--', '/bin/false'])).code).toBe(1);
    const sig = await gexec(['--', '/bin/sh', '-c', 'kill -TERM $$']);
    expect(sig.code).toBe(143); // 128 + SIGTERM
    const t1 = Date.now();
    const big = await gexec(['--', '/usr/bin/head', '-c', '8388608', '/dev/zero']);
    console.log(`guest exec with 8 MiB of stdout: ${Date.now() - t1} ms`);
    expect(big.code, big.stderr).toBe(0);
    expect(big.stdout.length).toBe(8388608);
  }, 300_000);

  it('--no-stdin sends nothing; --env sets the environment; --json has the outcome', async () => {
    const n = await gexec(['--no-stdin', '--', '/bin/cat'], { input: 'not sent\n' });
    expect(n).toMatchObject({ code: 0, stdout: '' });
    const env = await gexec(['--env', 'GREETING=hi there', '--', '/usr/bin/env']);
    expect(env.stdout.trim()).toBe('GREETING=hi there'); // the whole environment
    const j = await h.cli(['--json', 'guest', 'exec', 'gx', '--', '/bin/echo', 'a'], { timeoutMs: 150_000 });
    expect(JSON.parse(j.stdout)).toMatchObject({ exitCode: 0, status: 0, stdout: 'a\n', stderr: '', timedOut: false });
    const bad = await gexec(['--env', 'NOEQUALS', '--', '/bin/true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/BAD_VALUE/);
  }, 200_000);

  it('--timeout kills the program in the guest (with its children), prints what it wrote, exits 124', async () => {
    const t0 = Date.now();
    const r = await gexec(['--timeout', '4', '--', '/bin/sh', '-c', 'echo started; sleep 300; echo never']);
    const ms = Date.now() - t0;
    console.log(`guest exec --timeout 4: ended after ${ms} ms`);
    expect(r.code, r.stderr).toBe(124);
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(/killed \/bin\/sh \(pid \d+\) in the guest/);
    expect(ms).toBeLessThan(30_000);
    const left = await gexec(['--', '/usr/bin/pgrep', '-f', 'sleep 300']);
    expect(left.code).toBe(1); // nothing left running
  }, 200_000);

  it('list --wide and show mark the lease and the agent address by source', async () => {
    const lease = await h.cli(['ip', 'gx', '--timeout', '120'], { timeoutMs: 150_000 });
    expect(lease.code, lease.stderr).toBe(0);
    const ip = lease.stdout.trim();
    // networkd may need a moment after the lease before the agent sees the address
    let rows: { name: string; addresses: { ip: string; sources: string[] }[]; agent: string }[] = [];
    for (let i = 0; i < 20; i++) {
      rows = JSON.parse((await h.cli(['list', '--wide', '--json'])).stdout);
      if (rows[0]?.addresses.find((a) => a.ip === ip)?.sources.length === 2) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(rows[0]!.addresses.find((a) => a.ip === ip)).toMatchObject({ sources: ['lease', 'agent'] });
    expect(rows[0]!.agent).toMatch(/answered|cached/);
    const t0 = Date.now();
    const text = await h.cli(['list', '--wide']);
    console.log(`list --wide (answer kept): ${Date.now() - t0} ms`);
    expect(text.stdout).toMatch(/ADDRESSES/);
    expect(text.stdout).toContain(`${ip} (lease, agent)`);
    const show = JSON.parse((await h.cli(['show', 'gx', '--json'])).stdout);
    expect(show.addresses.agentState).toBe('answered');
    expect(show.addresses.list.find((a: { ip: string }) => a.ip === ip).sources).toEqual(['lease', 'agent']);
  }, 200_000);

  it('the API runs a program (stdin, exit code), refuses bad input with 400 before asking the agent, and the VM detail has the addresses', async () => {
    api = await buildServer({ paths, watch: false, netns: ns.name });
    const post = (payload: unknown) => api!.app.inject({ method: 'POST', url: '/api/vms/gx/agent/exec', payload: payload as object });
    const r = await post({ argv: ['/usr/bin/wc', '-c'], inputBase64: Buffer.from([1, 2, 3, 0]).toString('base64') });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ exitCode: 0, status: 0, stdout: '4\n', timedOut: false });
    const code = await post({ argv: ['/bin/sh', '-c', 'printf "\\377"; exit 3'] });
    expect(code.json()).toMatchObject({ exitCode: 3, status: 3, stdoutBase64: '/w==' }); // not UTF-8: the bytes too
    for (const [body, what] of [
      [{ argv: [] }, /argv/],
      [{ argv: ['/bin/true'], input: 'a', inputBase64: 'YQ==' }, /not both/],
      [{ argv: ['/bin/true'], env: ['X'] }, /NAME=VALUE/],
      [{ argv: ['/bin/true'], inputBase64: 'not base64!' }, /base64/],
      [{ argv: ['/bin/true'], timeoutSec: 99999 }, /timeoutSec/],
      [{ argv: ['/bin/true'], extra: 1 }, /extra|Unrecognized/i],
    ] as const) {
      const b = await post(body);
      expect(b.statusCode, JSON.stringify(body)).toBe(400);
      expect(b.body).toMatch(what);
    }
    const none = await api.app.inject({ method: 'POST', url: '/api/vms/nope/agent/exec', payload: { argv: ['/bin/true'] } });
    expect(none.statusCode).toBe(404);
    const d = await api.app.inject({ url: '/api/vms/gx' });
    expect(d.statusCode).toBe(200);
    expect(d.json().addresses.addresses.some((a: { sources: string[] }) => a.sources.includes('agent'))).toBe(true);
    const a = await api.app.inject({ url: '/api/vms/gx/addresses' });
    expect(a.json().agentState).toMatch(/answered|cached/);
  }, 200_000);

  it('a stopped VM: exec is a 409 and no addresses are shown; dnsmasq is gone after net down', async () => {
    expect((await h.cli(['stop', 'gx', '--method', 'agent'], { timeoutMs: 120_000 })).code).toBe(0);
    const r = await api!.app.inject({ method: 'POST', url: '/api/vms/gx/agent/exec', payload: { argv: ['/bin/true'] } });
    expect(r.statusCode).toBe(409);
    expect(r.json().code).toBe('VM_NOT_RUNNING');
    expect((await api!.app.inject({ url: '/api/vms/gx/addresses' })).json()).toMatchObject({ agentState: 'not-running', addresses: [] });
    expect((await h.cli(['net', 'down', 'gxnat', '--netns', ns.name])).code).toBe(0);
    expect(dnsmasqPids(natFiles(paths, 'gxnat').conf)).toEqual([]);
  }, 200_000);
});
