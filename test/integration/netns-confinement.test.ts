/**
 * Namespace confinement (issue #14): with KVMCTL_NETNS set (or `--netns`), every piece of host
 * networking a VM start makes — the nat network's bridge, dnsmasq, its nftables masquerade,
 * net.ipv4.ip_forward, the VM's tap, QEMU itself — is made inside that namespace, and the ROOT
 * namespace stays byte for byte what it was: `ip -json link`, `ip -json addr`, `nft list
 * ruleset`, ip_forward, and the set of dnsmasq processes in it. (a) `start` with the variable in
 * the environment (no flag), the test guest on a nat network, a DHCP lease from the confined
 * dnsmasq; (b) `install --netns NS` of a VM with a disk and an ISO. Real QEMU (TCG), real
 * iproute2/nft/dnsmasq, in a namespace this file creates and deletes (afterAll, also on failure).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isoTool } from '../../src/disk/cloud-init.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { BIN, makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const haveTools = ['/usr/sbin/nft', '/usr/sbin/dnsmasq'].every((p) => fs.existsSync(p));
const can = canUseNetns().ok && canBootGuest() && haveTools;

const NET = 'cfnat';
const defs = `kind: network
name: ${NET}
type: nat
address: 10.78.0.1/24
dns: { upstream: [] }
---
name: cfvm
memory: 256M
kernel: { builtin: test-guest, append: "kvt.dhcp=eth0 kvt.hostname=cfvm" }
nics: [{ network: ${NET} }]
stopTimeout: 5
`;

/** The network namespace a process is in (`net:[INODE]`), or undefined when it is gone. */
const nsOfPid = (pid: number | string): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
};
/** A process that exited (or is a zombie waiting for its reaper). */
const gone = (pid: number): boolean => {
  try {
    return /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};
/** The same for a named namespace: its bind mount's inode. */
const nsOfName = (name: string) => `net:[${fs.statSync(`/var/run/netns/${name}`).ino}]`;
const ROOT_NS = nsOfPid('self')!;

/** dnsmasq processes whose network namespace is the root's. */
function rootDnsmasq(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'dnsmasq' && nsOfPid(d) === ROOT_NS) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out.sort((a, b) => a - b);
}

type RootSnapshot = { link: string; addr: string; nft: string; ipForward: string; dnsmasq: number[] };
async function rootSnapshot(): Promise<RootSnapshot> {
  return {
    link: (await run(['ip', '-json', 'link'])).stdout,
    addr: (await run(['ip', '-json', 'addr'])).stdout,
    nft: (await run(['nft', 'list', 'ruleset'])).stdout,
    ipForward: fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'),
    dnsmasq: rootDnsmasq(),
  };
}
/** Root unchanged: the same bytes, and no dnsmasq in it that was not there before. */
async function expectRootUnchanged(before: RootSnapshot): Promise<void> {
  const now = await rootSnapshot();
  expect(now.link).toBe(before.link);
  expect(now.addr).toBe(before.addr);
  expect(now.nft).toBe(before.nft);
  expect(now.ipForward).toBe(before.ipForward);
  expect(now.dnsmasq.filter((p) => !before.dnsmasq.includes(p))).toEqual([]);
}

describe.skipIf(!can)('network namespace confinement (KVMCTL_NETNS / --netns)', () => {
  let h: Home;
  let paths: Paths;
  let ns: Netns;
  let before: RootSnapshot;
  let server: ChildProcess | undefined;
  const inNs = async (argv: string[]) => (await ns.exec(argv)).stdout;
  /** What the nat network looks like inside the namespace. */
  const nsState = async () => ({
    links: (JSON.parse(await ns.ip('-json', 'link')) as { ifname: string; ifalias?: string }[]).map((l) => l.ifname),
    nft: await inNs(['nft', 'list', 'ruleset']),
    ipForward: (await inNs(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(),
    dnsmasq: dnsmasqPids(natFiles(paths, NET).conf),
  });

  beforeAll(async () => {
    h = makeHome();
    delete h.env.KVMCTL_NETNS; // (b) must get the namespace from the flag alone
    paths = resolvePaths(h.env);
    ns = await createNetns('kvt-conf');
    await h.apply(defs);
    before = await rootSnapshot();
  }, 120_000);

  afterAll(async () => {
    if (server?.pid && server.exitCode === null) process.kill(server.pid, 'SIGKILL');
    await h?.cli(['net', 'down', NET, '--force', '--netns', ns.name]).catch(() => undefined);
    if (paths) for (const pid of dnsmasqPids(natFiles(paths, NET).conf)) process.kill(pid, 'SIGKILL');
    await h?.cleanup();
    await ns?.destroy();
  }, 60_000);

  it('a KVMCTL_NETNS naming no namespace is exit 2 with the ip netns add hint, and nothing is made anywhere', async () => {
    const r = await h.cli(['start', 'cfvm'], { env: { KVMCTL_NETNS: 'kvt-no-such-ns' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('NETNS_NOT_FOUND');
    expect(r.stderr).toContain('ip netns add kvt-no-such-ns');
    expect(h.pids()).toEqual([]);
    await expectRootUnchanged(before);
    expect((await nsState()).links).toEqual(['lo']);
  }, 60_000);

  it('(a) start with KVMCTL_NETNS in the environment: bridge, dnsmasq, masquerade, ip_forward, tap and QEMU in the namespace; root unchanged; stop and net down clean the namespace', async () => {
    const env = { KVMCTL_NETNS: ns.name };
    const s = await h.cli(['start', 'cfvm', '--wait-for-guest', '--timeout', '150', '--json'], { env, timeoutMs: 200_000 });
    expect(s.code, s.stderr).toBe(0);
    const started = JSON.parse(s.stdout) as { pid: number; argv: string[] };
    expect(started.argv.slice(0, 4)).toEqual(['ip', 'netns', 'exec', ns.name]);
    expect(nsOfPid(started.pid)).toBe(nsOfName(ns.name));

    const during = await nsState();
    expect(during.links).toContain(NET);
    const tap = during.links.find((l) => l !== 'lo' && l !== NET);
    expect(tap, during.links.join(' ')).toBeDefined();
    expect(during.nft).toContain(`table inet kvmctl-${NET}`);
    expect(during.nft).toMatch(/masquerade/);
    expect(during.ipForward).toBe('1');
    expect(during.dnsmasq.length).toBe(1);
    expect(nsOfPid(during.dnsmasq[0]!)).toBe(nsOfName(ns.name));
    // The confined dnsmasq serves the guest: it got a lease from 10.78.0.0/24.
    const ip = await h.cli(['ip', 'cfvm', '--timeout', '60'], { env });
    expect(ip.code, ip.stderr).toBe(0);
    expect(ip.stdout.trim()).toMatch(/^10\.78\.0\.\d+$/);
    const st = await h.cli(['net', 'show', NET], { env });
    expect(st.stdout).toContain('# state: up');
    await expectRootUnchanged(before);

    // restart without a namespace named: it starts again where it ran, not in the root namespace.
    const rs = await h.cli(['restart', 'cfvm', '-t', '2', '--json'], { timeoutMs: 120_000 });
    expect(rs.code, rs.stderr).toBe(0);
    const again = (JSON.parse(rs.stdout) as { started: { pid: number; argv: string[] } }).started;
    expect(again.pid).not.toBe(started.pid);
    expect(again.argv.slice(0, 4)).toEqual(['ip', 'netns', 'exec', ns.name]);
    expect(nsOfPid(again.pid)).toBe(nsOfName(ns.name));
    const tap2 = (await nsState()).links.filter((l) => l !== 'lo' && l !== NET);
    expect(tap2.length).toBe(1);
    await expectRootUnchanged(before);

    // stop (no KVMCTL_NETNS now: the VM's state says where its links are) removes the tap there.
    const stop = await h.cli(['stop', 'cfvm', '--force']);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await nsState()).links).toEqual(['lo', NET]);
    await expectRootUnchanged(before);

    const d = await h.cli(['net', 'down', NET], { env });
    expect(d.code, d.stderr).toBe(0);
    const after = await nsState();
    expect(after.links).toEqual(['lo']);
    expect(after.nft).not.toContain('kvmctl');
    expect(after.ipForward).toBe('0');
    expect(after.dnsmasq).toEqual([]);
    await expectRootUnchanged(before);
  }, 400_000);

  it('(c) kvmctl serve takes KVMCTL_NETNS once at start: a VM started through the API (client without the variable) gets its network and tap in the namespace; root unchanged', async () => {
    const sock = path.join(h.dir, 'api.sock');
    server = spawn(process.execPath, [BIN, 'serve', '--socket', sock, '--no-watch'], { env: { ...h.env, KVMCTL_NETNS: ns.name }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    await new Promise<void>((res, rej) => {
      server!.stderr!.on('data', (d: Buffer) => {
        err += d;
        if (err.includes('listening on')) res();
      });
      server!.once('exit', (c) => rej(new Error(`serve exited ${c}: ${err}`)));
    });
    expect(err).toContain(`in network namespace ${ns.name}`);
    const flag = await h.cli(['--remote', sock, 'start', 'cfvm', '--netns', ns.name]);
    expect(flag.code, flag.stderr).toBe(2);
    expect(flag.stderr).toContain('REMOTE_NETNS');
    const r = await h.cli(['--remote', sock, 'start', 'cfvm', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const started = JSON.parse(r.stdout) as { pid: number; argv: string[] };
    expect(started.argv.slice(0, 4)).toEqual(['ip', 'netns', 'exec', ns.name]);
    expect(nsOfPid(started.pid)).toBe(nsOfName(ns.name));
    const during = await nsState();
    expect(during.links).toContain(NET);
    expect(during.links.length).toBe(3);
    expect(during.nft).toContain(`table inet kvmctl-${NET}`);
    expect(during.dnsmasq.map((p) => nsOfPid(p))).toEqual([nsOfName(ns.name)]);
    await expectRootUnchanged(before);
    const k = await h.cli(['--remote', sock, 'kill', 'cfvm']);
    expect(k.code, k.stderr).toBe(0);
    expect((await nsState()).links.sort()).toEqual([NET, 'lo'].sort());
    const exited = new Promise((res) => server!.once('exit', res));
    process.kill(server.pid!, 'SIGTERM');
    await exited;
    const d = await h.cli(['net', 'down', NET, '--netns', ns.name]);
    expect(d.code, d.stderr).toBe(0);
    expect((await nsState()).links).toEqual(['lo']);
    await expectRootUnchanged(before);
  }, 200_000);

  it('demo refuses a namespace it was given (it makes its own): exit 2, nothing made', async () => {
    const r = await h.cli(['demo'], { env: { KVMCTL_NETNS: ns.name } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('DEMO_NETNS');
    expect(r.stdout).toBe(''); // refused before it began: no step of the demo ran
    await expectRootUnchanged(before);
  }, 60_000);

  it('(d) a bridge network brought up by a confined start stays where it is: status after a crash releases the tap there, net list sees it there without the variable, net up elsewhere is refused, net down takes it down there', async () => {
    await h.apply(`kind: network
name: cfbr
type: host-only
addresses: [10.79.0.1/24]
---
name: cfbrvm
memory: 128M
kernel: { builtin: test-guest }
nics: [{ network: cfbr }]
stopTimeout: 2
`);
    const s = await h.cli(['start', 'cfbrvm', '--json'], { env: { KVMCTL_NETNS: ns.name } });
    expect(s.code, s.stderr).toBe(0);
    const pid = (JSON.parse(s.stdout) as { pid: number }).pid;
    expect((await nsState()).links.length).toBe(3); // lo, cfbr, the VM's tap
    expect((await nsState()).links).toContain('cfbr');
    // QEMU dies behind kvmctl's back (SIGKILL to the QEMU this test's kvmctl started, by PID):
    // status, run without the variable, sees the crash and releases the tap in the namespace.
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !gone(pid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(gone(pid)).toBe(true);
    const st = await h.cli(['status', 'cfbrvm', '--json']);
    expect((JSON.parse(st.stdout) as { state: string }).state).toBe('crashed');
    expect((await nsState()).links).toEqual(['lo', 'cfbr']);
    const list = await h.cli(['net', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { network: string; state: string }[]).find((n) => n.network === 'cfbr')?.state).toBe('up');
    const up = await h.cli(['net', 'up', 'cfbr']);
    expect(up.code, up.stderr).toBe(1);
    expect(up.stderr).toContain('NETWORK_ELSEWHERE');
    expect(up.stderr).toContain(`--netns ${ns.name}`);
    const again = await h.cli(['start', 'cfbrvm']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('NETWORK_ELSEWHERE');
    expect(h.pids().filter((p) => nsOfPid(p) !== undefined)).toEqual([]);
    await expectRootUnchanged(before);
    const d = await h.cli(['net', 'down', 'cfbr']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('removed bridge cfbr');
    expect((await nsState()).links).toEqual(['lo']);
    await expectRootUnchanged(before);
  }, 120_000);

  describe.skipIf(!isoTool())('(b) install', () => {
    it('install --netns NS of a VM with a disk and an ISO: its nat network and tap in the namespace; root unchanged', async () => {
      const dir = path.join(h.dir, 'iso');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'README.TXT'), 'kvmctl confinement test medium\n');
      const iso = path.join(h.images, 'inst.iso');
      await run(['genisoimage', '-quiet', '-o', iso, '-V', 'KVTCONF', dir]);
      fs.writeFileSync(path.join(h.images, 'inst.raw'), Buffer.alloc(1024 * 1024));
      await h.apply(`name: cfinst
memory: 64M
disks: [{ file: ${path.join(h.images, 'inst.raw')}, format: raw }]
nics: [{ network: ${NET} }]
boot: disk
stopTimeout: 2
`);
      const r = await h.cli(['install', 'cfinst', '--iso', iso, '--netns', ns.name, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const started = JSON.parse(r.stdout) as { pid: number; argv: string[] };
      expect(started.argv.slice(0, 4)).toEqual(['ip', 'netns', 'exec', ns.name]);
      expect(started.argv.join(' ')).toContain(`file=${iso},if=ide,media=cdrom`);
      expect(nsOfPid(started.pid)).toBe(nsOfName(ns.name));
      const during = await nsState();
      expect(during.links).toContain(NET);
      expect(during.links.length).toBe(3); // lo, the bridge, the VM's tap
      expect(during.nft).toContain(`table inet kvmctl-${NET}`);
      expect(during.ipForward).toBe('1');
      expect(during.dnsmasq.map((p) => nsOfPid(p))).toEqual([nsOfName(ns.name)]);
      await expectRootUnchanged(before);

      const k = await h.cli(['kill', 'cfinst']);
      expect(k.code, k.stderr).toBe(0);
      expect((await nsState()).links.sort()).toEqual([NET, 'lo'].sort());
      const d = await h.cli(['net', 'down', NET, '--netns', ns.name]);
      expect(d.code, d.stderr).toBe(0);
      expect((await nsState()).links).toEqual(['lo']);
      await expectRootUnchanged(before);
    }, 200_000);
  });
});
