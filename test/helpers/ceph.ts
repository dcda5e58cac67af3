/**
 * A real single-host Ceph cluster for tests (issue #21): one mon, one mgr, one OSD (memstore: the
 * objects live in the OSD's memory, so no loop device or sparse file is needed and nothing is
 * left on disk), from Debian's ceph-mon / ceph-mgr / ceph-osd 16.2 packages.
 *
 * Isolation: every daemon runs inside a network namespace this harness creates (test/helpers/
 * netns.ts), bound to 127.0.0.1 of that namespace's loopback; its config, keyrings, mon store,
 * sockets, pid files and logs are under one temp dir (`-c DIR/ceph.conf`, never /etc/ceph, never
 * /var/lib/ceph). A client reaches the mon only from inside the namespace: QEMU and kvmctl's own
 * `rbd` calls are run there (kvmctl --netns NS / KVMCTL_NETNS), as a second host would be in the
 * cluster tests. `stop()` ends the daemons by PID (SIGTERM, SIGKILL after 2 s: memstore keeps nothing worth a clean shutdown), deletes the
 * namespace and the dir; a process 'exit' hook does the same if a test file dies without afterAll.
 *
 * Start time measured here (2 cores, loaded): mon ≈ 0.4 s, OSD ≈ 3.6–5.3 s, mgr ≈ 0.2–3.9 s until `ceph
 * df` has numbers, pool create + `rbd pool init` ≈ 4–6 s; ≈ 8–14 s in all (`timings` has this run's).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../src/host/exec.js';
import { canUseNetns, createNetns, type Netns } from './netns.js';

export type Ceph = {
  netns: Netns;
  dir: string;
  /** The cluster's ceph.conf (admin use; kvmctl's storage is given `monitors` + the client keyring). */
  conf: string;
  fsid: string;
  /** The mon's address as a client names it (msgr2 port). */
  monitor: string;
  pool: string;
  /** A restricted client (`profile rbd` on the pool) for kvmctl: its name without "client." and its keyring file (0600). */
  user: string;
  keyring: string;
  /** The client's base64 key (tests check it never shows on a command line). */
  key: string;
  /** Milliseconds of each start phase. */
  timings: { mon: number; osd: number; mgr: number; pool: number; total: number };
  /** `ceph -c CONF ARGS…` as admin, in the namespace. */
  ceph(...args: string[]): Promise<string>;
  /** `rbd -c CONF ARGS…` as admin, in the namespace. */
  rbd(...args: string[]): Promise<string>;
  stop(): Promise<void>;
};

const BINS = ['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/ceph-mgr', '/usr/bin/ceph', '/usr/bin/rbd', '/usr/bin/ceph-authtool', '/usr/bin/monmaptool'];

export function canRunCeph(): { ok: boolean; why?: string } {
  const ns = canUseNetns();
  if (!ns.ok) return ns;
  const missing = BINS.filter((b) => !fs.existsSync(b));
  if (missing.length) return { ok: false, why: `Ceph is not installed (${missing.join(', ')} missing: apt-get install ceph-mon ceph-osd ceph-mgr ceph-common, scripts/setup.sh)` };
  if (!fs.existsSync('/usr/lib/x86_64-linux-gnu/qemu/block-rbd.so')) return { ok: false, why: "QEMU's rbd driver is missing (apt-get install qemu-block-extra)" };
  return { ok: true };
}

const live = new Set<{ procs: ChildProcess[]; ns: string; dir: string }>();

function conf(dir: string, fsid: string, ip: string): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:${ip}:3300,v1:${ip}:6789]
mon initial members = a
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = ${2 * 1024 ** 3}
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
keyring = ${dir}/$name.keyring
mon data = ${dir}/mon/$name
osd data = ${dir}/osd/$name
mgr data = ${dir}/mgr/$name
mgr initial modules =
[client.admin]
keyring = ${dir}/admin.keyring
`;
}

/**
 * Start the cluster (≈ 10 s). Throws with the daemon's log tail when a step fails.
 * `bridge`: also plug the cluster into a bridge of another namespace (a veth, `ip` on the cluster's
 * side) so that several "hosts" (test/helpers/cluster.ts) reach the mon at `ip`; else it listens on
 * 127.0.0.1 of its own namespace only.
 */
export async function startCeph(o: { pool?: string; user?: string; bridge?: { netns: string; dev: string; ip: string; prefix: number } } = {}): Promise<Ceph> {
  const t0 = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kceph-'));
  const ns = await createNetns('kceph');
  const rec = { procs: [] as ChildProcess[], ns: ns.name, dir };
  live.add(rec);
  const fsid = randomUUID();
  const pool = o.pool ?? 'rbd';
  const user = o.user ?? 'kvmctl';
  const cfg = path.join(dir, 'ceph.conf');
  const ip = o.bridge?.ip ?? '127.0.0.1';
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const p of rec.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await Promise.all(
      rec.procs.map(
        (p) =>
          new Promise<void>((res) => {
            if (p.exitCode !== null || p.signalCode !== null) return res();
            const t = setTimeout(() => p.kill('SIGKILL'), 2000);
            p.once('exit', () => { clearTimeout(t); res(); });
          }),
      ),
    );
    await ns.destroy();
    if (!process.env.KVT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    live.delete(rec);
  };
  const inNs = (argv: string[], timeoutMs = 60_000) => run(['ip', 'netns', 'exec', ns.name, ...argv], { timeoutMs });
  const logTail = (name: string) => {
    try {
      return fs.readFileSync(path.join(dir, 'log', `${name}.log`), 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  };
  /** A daemon in the foreground (-f), so the PID we hold is the daemon's (ip netns exec execs in place). */
  const daemon = (argv: string[]) => {
    const p = spawn('ip', ['netns', 'exec', ns.name, ...argv, '-f', '-c', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
    p.once('exit', (code, sig) => {
      if (!stopping) process.stderr.write(`ceph harness: ${argv[0]} exited (${code ?? sig}) ${err}\n`);
    });
    rec.procs.push(p);
  };
  try {
    for (const d of ['run', 'log', 'mon', 'osd', 'mgr']) fs.mkdirSync(path.join(dir, d));
    if (o.bridge) {
      const b = o.bridge;
      const port = `kc${ns.name.slice(-6)}`; // ≤ 15 characters, unique per cluster
      await run(['ip', '-n', b.netns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await run(['ip', '-n', b.netns, 'link', 'set', port, 'master', b.dev]);
      await run(['ip', '-n', b.netns, 'link', 'set', port, 'up']);
      await ns.ip('link', 'set', 'eth0', 'up');
      await ns.ip('addr', 'add', `${b.ip}/${b.prefix}`, 'dev', 'eth0');
    }
    fs.writeFileSync(cfg, conf(dir, fsid, ip));
    const admin = path.join(dir, 'admin.keyring');
    const monKey = path.join(dir, 'mon.a.keyring');
    await run(['ceph-authtool', '--create-keyring', monKey, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await run(['ceph-authtool', '--create-keyring', admin, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *', '--cap', 'mds', 'allow *']);
    await run(['ceph-authtool', monKey, '--import-keyring', admin]);
    await run(['monmaptool', '--create', '--addv', 'a', `[v2:${ip}:3300,v1:${ip}:6789]`, '--fsid', fsid, path.join(dir, 'monmap')]);
    await run(['ceph-mon', '-c', cfg, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap'), '--keyring', monKey]);
    daemon(['ceph-mon', '-i', 'a']);
    const ceph = async (...args: string[]) => (await inNs(['ceph', '-c', cfg, '--connect-timeout', '30', ...args])).stdout;
    const rbd = async (...args: string[]) => (await inNs(['rbd', '-c', cfg, ...args])).stdout;
    await ceph('mon', 'stat').catch((e) => { throw new Error(`ceph-mon did not answer: ${(e as Error).message}\n${logTail('mon.a')}`); });
    const tMon = performance.now();

    const uuid = randomUUID();
    const id = (await ceph('osd', 'new', uuid)).trim();
    fs.mkdirSync(path.join(dir, 'osd', `osd.${id}`));
    await inNs(['ceph-osd', '-c', cfg, '-i', id, '--no-mon-config', '--mkfs', '--osd-uuid', uuid, '--mkkey']);
    await ceph('auth', 'add', `osd.${id}`, 'osd', 'allow *', 'mon', 'allow profile osd', 'mgr', 'allow profile osd', '-i', path.join(dir, `osd.${id}.keyring`));
    daemon(['ceph-osd', '-i', id]);
    await waitFor(async () => (JSON.parse(await ceph('osd', 'stat', '--format', 'json')) as { num_up_osds: number }).num_up_osds === 1, 60_000, () => `the OSD did not come up\n${logTail(`osd.${id}`)}`);
    const tOsd = performance.now();

    fs.mkdirSync(path.join(dir, 'mgr', 'mgr.x'));
    await ceph('auth', 'get-or-create', 'mgr.x', 'mon', 'allow profile mgr', 'osd', 'allow *', 'mds', 'allow *', '-o', path.join(dir, 'mgr.x.keyring'));
    daemon(['ceph-mgr', '-i', 'x']);
    await ceph('osd', 'pool', 'create', pool, '8');
    await rbd('pool', 'init', pool);
    const tPool = performance.now();
    // The mgr reports usage (`ceph df`, which `kvmctl storage check` reads): wait until it has numbers.
    await waitFor(async () => (JSON.parse(await ceph('df', '--format', 'json')) as { stats: { total_bytes: number } }).stats.total_bytes > 0, 90_000, () => `the mgr reported no usage\n${logTail('mgr.x')}`);
    const tMgr = performance.now();

    const keyring = path.join(dir, `client.${user}.keyring`);
    await ceph('auth', 'get-or-create', `client.${user}`, 'mon', 'profile rbd', 'osd', `profile rbd pool=${pool}`, 'mgr', `profile rbd pool=${pool}`, '-o', keyring);
    fs.chmodSync(keyring, 0o600);
    const key = /key\s*=\s*(\S+)/.exec(fs.readFileSync(keyring, 'utf8'))![1]!;
    const total = performance.now() - t0;
    return {
      netns: ns, dir, conf: cfg, fsid, monitor: `${ip}:3300`, pool, user, keyring, key,
      timings: { mon: Math.round(tMon - t0), osd: Math.round(tOsd - tMon), pool: Math.round(tPool - tOsd), mgr: Math.round(tMgr - tPool), total: Math.round(total) },
      ceph, rbd, stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function waitFor(check: () => Promise<boolean>, ms: number, why: () => string): Promise<void> {
  const end = Date.now() + ms;
  let delay = 100;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

// Last resort if a test process exits without its afterAll: end the daemons, remove what we made.
process.once('exit', () => {
  for (const r of live) {
    for (const p of r.procs) if (p.exitCode === null && p.signalCode === null) try { p.kill('SIGKILL'); } catch { /* gone */ }
    spawnSync('ip', ['netns', 'del', r.ns], { stdio: 'ignore' });
    fs.rmSync(r.dir, { recursive: true, force: true });
  }
});
