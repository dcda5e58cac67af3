/**
 * A 3-host cluster on one machine, for tests: a bridge in a namespace of its own, and per host a
 * namespace linked to it by a veth (10.77.0.N/24), one member of a real 3-member etcd cluster
 * (Debian's etcd-server, data under a temp dir), its own KVMCTL_HOME and a `kvmctl agent`. Every
 * address lives inside these namespaces; every process is ended by PID; `destroy()` deletes it all.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnDetached, run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { isAlive } from '../../src/vm/proc.js';
import { BIN, GUEST_CACHE, qemuProcessesMentioning, type CliResult } from './kvmctl.js';
import { createNetns, type Netns } from './netns.js';

export type TestHost = {
  name: string;
  ip: string;
  ns: Netns;
  home: string;
  paths: Paths;
  env: NodeJS.ProcessEnv;
  etcdPid?: number;
  agentPid?: number;
  cli(args: string[], timeoutMs?: number): Promise<CliResult>;
  startAgent(): Promise<number>;
  /** QEMU processes started from this host's KVMCTL_HOME (by /proc/PID/cmdline). */
  qemus(): number[];
};

export type TestCluster = { dir: string; bridge: Netns; hosts: TestHost[]; urls: string; destroy(): Promise<void> };

/** Busybox's ping (the host has no ping): the static busybox the test guest is built from, unpacked into `dir`. */
export async function busyboxPing(dir: string): Promise<string | undefined> {
  const debs = path.join(GUEST_CACHE, 'debs');
  const deb = fs.existsSync(debs) ? fs.readdirSync(debs).find((f) => f.startsWith('busybox-static_')) : undefined;
  if (!deb) return undefined;
  await run(['dpkg-deb', '-x', path.join(debs, deb), path.join(dir, 'bb')]);
  return path.join(dir, 'bb/bin/busybox');
}

export function etcdAvailable(): boolean {
  return fs.existsSync('/usr/bin/etcd');
}

export async function killPid(pid: number | undefined, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    return;
  }
  for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Pids of processes whose command line mentions `text` (the watchdogs, by their feed file path). */
export function pidsMentioning(text: string, what: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes(text) && cmd.includes(what)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * `lan`: each host also gets a bridge br0 holding its eth0 (the address moves to br0), so a guest
 * on a kvmctl bridge network with `interface: br0` is on the shared segment on any host.
 */
export async function makeCluster(n = 3, opts: { ttl?: number; margin?: number; memory?: string; lan?: boolean } = {}): Promise<TestCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kc-'));
  const bridge = await createNetns('kvt');
  await bridge.ip('link', 'add', 'br0', 'type', 'bridge');
  await bridge.ip('link', 'set', 'br0', 'up');
  const hosts: TestHost[] = [];
  const cluster: TestCluster = {
    dir,
    bridge,
    hosts,
    urls: '',
    destroy: async () => {
      for (const h of hosts) await killPid(h.agentPid);
      for (const h of hosts) for (const p of pidsMentioning(h.home, 'watchdog')) await killPid(p);
      for (const h of hosts) for (const p of h.qemus()) await killPid(p);
      for (const h of hosts) await killPid(h.etcdPid);
      for (const h of hosts) await h.ns.destroy();
      await bridge.destroy();
      if (!process.env.KVT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 1; i <= n; i++) {
      const ns = await createNetns('kvt');
      const ip = `10.77.0.${i}`;
      await run(['ip', '-n', bridge.name, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await bridge.ip('link', 'set', `p${i}`, 'master', 'br0');
      await bridge.ip('link', 'set', `p${i}`, 'up');
      await ns.ip('link', 'set', 'eth0', 'up');
      if (opts.lan) {
        await ns.ip('link', 'add', 'br0', 'type', 'bridge');
        await ns.ip('link', 'set', 'eth0', 'master', 'br0');
        await ns.ip('link', 'set', 'br0', 'up');
      }
      await ns.ip('addr', 'add', `${ip}/24`, 'dev', opts.lan ? 'br0' : 'eth0');
      const home = path.join(dir, `h${i}`);
      fs.mkdirSync(home);
      const env = { ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: GUEST_CACHE };
      const h: TestHost = {
        name: `h${i}`,
        ip,
        ns,
        home,
        paths: resolvePaths({ KVMCTL_HOME: home }),
        env,
        cli: (args, timeoutMs = 90_000) =>
          new Promise((resolve, reject) => {
            const t0 = Date.now();
            const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
            let stdout = '';
            let stderr = '';
            child.stdout.on('data', (d) => (stdout += d));
            child.stderr.on('data', (d) => (stderr += d));
            const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
            child.on('error', reject);
            child.on('close', (code) => {
              clearTimeout(timer);
              resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 });
            });
          }),
        startAgent: async () => {
          const log = fs.openSync(path.join(dir, `agent-h${i}.log`), 'a');
          try {
            const c = await spawnDetached(['ip', 'netns', 'exec', ns.name, process.execPath, BIN, 'agent', '--host', `h${i}`, '--addr', ip, '--memory', opts.memory ?? '1G'], {
              stdio: ['ignore', log, log],
              env: env as Record<string, string>,
            });
            h.agentPid = c.pid;
            return c.pid;
          } finally {
            fs.closeSync(log);
          }
        },
        qemus: () => qemuProcessesMentioning(home),
      };
      hosts.push(h);
    }
    const peers = hosts.map((h) => `${h.name}=http://${h.ip}:2380`).join(',');
    cluster.urls = hosts.map((h) => `http://${h.ip}:2379`).join(',');
    for (const h of hosts) {
      const log = fs.openSync(path.join(dir, `etcd-${h.name}.log`), 'a');
      try {
        const c = await spawnDetached(
          ['ip', 'netns', 'exec', h.ns.name, 'etcd', '--name', h.name, '--data-dir', path.join(dir, `etcd-${h.name}`), '--listen-client-urls', `http://${h.ip}:2379`, '--advertise-client-urls', `http://${h.ip}:2379`, '--listen-peer-urls', `http://${h.ip}:2380`, '--initial-advertise-peer-urls', `http://${h.ip}:2380`, '--initial-cluster', peers, '--initial-cluster-state', 'new', '--initial-cluster-token', path.basename(dir), '--heartbeat-interval', '100', '--election-timeout', '1000', '--pre-vote', '--log-level', 'warn'],
          { stdio: ['ignore', log, log] },
        );
        h.etcdPid = c.pid;
      } finally {
        fs.closeSync(log);
      }
    }
    // Wait for a healthy cluster.
    const t0 = Date.now();
    for (;;) {
      const r = await hosts[0]!.ns.exec(['etcdctl', '--endpoints', cluster.urls, 'endpoint', 'health'], { allowFailure: true, timeoutMs: 10_000 });
      if (r.exitCode === 0) break;
      if (Date.now() - t0 > 30_000) throw new Error(`etcd did not become healthy: ${r.stderr}`);
      await new Promise((r2) => setTimeout(r2, 300));
    }
    const init = await hosts[0]!.cli(['cluster', 'init', '--etcd', cluster.urls, '--ttl', String(opts.ttl ?? 3), '--margin', String(opts.margin ?? 1000), '--host', 'h1', '--addr', hosts[0]!.ip]);
    if (init.code !== 0) throw new Error(`cluster init: ${init.stderr}`);
    for (const h of hosts.slice(1)) {
      const j = await h.cli(['cluster', 'join', '--etcd', cluster.urls, '--host', h.name, '--addr', h.ip]);
      if (j.code !== 0) throw new Error(`cluster join: ${j.stderr}`);
    }
    return cluster;
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}

/** Poll fn until it gives a truthy value; errors count as not yet (the last one is in the timeout message). */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e; // e.g. a CLI call during an etcd election: try again
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
