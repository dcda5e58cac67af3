/**
 * NAT networks with real guests (TCG) in namespaces of their own: a "host" namespace with the nat
 * network, and an "upstream" namespace reached through a veth that plays the outside world (it
 * has no route to the guests' subnet, so only masquerading gets their traffic back). The host
 * namespace has a Docker-like ruleset (ip filter FORWARD policy drop + DOCKER-USER), so every
 * guest check below is also the coexistence check; after `net down` the ruleset must be byte for
 * byte what it was. Two guests: natvm takes a dynamic lease, natvm2 a fixed address (static
 * lease) and serves HTTP through a port forward. Nothing here touches the root namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const haveTools = ['/usr/sbin/nft', '/usr/sbin/dnsmasq'].every((p) => fs.existsSync(p));
// Needs root (namespaces), QEMU + the test guest, nftables and dnsmasq-base (scripts/setup.sh).
const can = canUseNetns().ok && canBootGuest() && haveTools;

const DOCKERISH = `table ip filter {
	chain DOCKER-USER {
		return
	}
	chain DOCKER {
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		jump DOCKER-USER
		oifname "docker0" ct state established,related accept
		oifname "docker0" jump DOCKER
		iifname "docker0" oifname != "docker0" accept
		iifname "docker0" oifname "docker0" accept
	}
}
table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "docker0" ip saddr 172.17.0.0/16 masquerade
	}
}
`;

const defs = `kind: network
name: natnet
type: nat
address: 10.77.0.1/24
dns: { upstream: [], domain: kvt.test, hosts: { upstream.kvt.test: 10.99.0.2 } }
forwards: [{ proto: tcp, hostPort: 8080, guest: natvm2, guestPort: 80 }]
---
name: natvm
memory: 256M
kernel: { builtin: test-guest, append: "kvt.dhcp=eth0 kvt.hostname=natvm" }
nics: [{ network: natnet }]
stopTimeout: 5
---
name: natvm2
memory: 256M
kernel: { builtin: test-guest, append: "kvt.dhcp=eth0 kvt.hostname=natvm2" }
nics: [{ network: natnet, ip: 10.77.0.50 }]
stopTimeout: 5
`;

describe.skipIf(!can)('nat network with guests (namespaces, Docker-like ruleset)', () => {
  let h: Home;
  let paths: Paths;
  let host: Netns;
  let up: Netns;
  let listener: ChildProcess | undefined;
  let before = '';
  const nft = async (ns: Netns) => (await ns.exec(['nft', 'list', 'ruleset'])).stdout;

  beforeAll(async () => {
    h = makeHome();
    paths = resolvePaths(h.env);
    host = await createNetns('kvt-nath');
    up = await createNetns('kvt-natu');
    await host.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'wan0', 'netns', up.name);
    await host.ip('addr', 'add', '10.99.0.1/24', 'dev', 'up0');
    await host.ip('link', 'set', 'up0', 'up');
    await up.ip('addr', 'add', '10.99.0.2/24', 'dev', 'wan0');
    await up.ip('link', 'set', 'wan0', 'up');
    await host.ip('route', 'add', 'default', 'via', '10.99.0.2');
    await run(['ip', 'netns', 'exec', host.name, 'nft', '-f', '-'], { input: DOCKERISH });
    before = await nft(host);
    // The outside world: tells every TCP client the address it saw the connection come from.
    listener = spawn('ip', ['netns', 'exec', up.name, process.execPath, '-e', "require('net').createServer((s)=>s.end('PEER='+s.remoteAddress.replace(/^::ffff:/,'')+'\\n')).listen(9000,'10.99.0.2',()=>console.log('LISTENING'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      listener!.stdout!.on('data', (d: Buffer) => d.toString().includes('LISTENING') && res());
      listener!.once('exit', (c) => rej(new Error(`listener exited ${c}`)));
    });
    await h.apply(defs);
  }, 300_000);

  afterAll(async () => {
    if (listener?.pid && listener.exitCode === null) process.kill(listener.pid, 'SIGKILL');
    await h?.cli(['net', 'down', 'natnet', '--force', '--netns', host.name]).catch(() => undefined);
    for (const pid of dnsmasqPids(natFiles(paths, 'natnet').conf)) process.kill(pid, 'SIGKILL');
    await h?.cleanup();
    await host?.destroy();
    await up?.destroy();
  }, 60_000);

  const sh = async (vm: string, cmd: string) => (await serialExec(paths, vm, cmd, 40_000)).output;

  it('guests get DHCP leases (dynamic and static), resolve names, reach upstream masqueraded, serve through a port forward; net down restores the ruleset byte for byte', async () => {
    const u = await h.cli(['net', 'up', 'natnet', '--netns', host.name]);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toContain('DOCKER-USER');
    const during = await nft(host);
    expect(during).toContain('table inet kvmctl-natnet');
    expect(during).toMatch(/chain DOCKER-USER \{\n\t\tiifname "natnet" accept comment "kvmctl:net=natnet"\n\t\toifname "natnet" accept comment "kvmctl:net=natnet"\n\t\treturn/);
    expect((await host.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('1');

    const t0 = Date.now();
    const [s1, s2] = await Promise.all([
      h.cli(['start', 'natvm', '--netns', host.name, '--wait-for-guest', '--timeout', '150']),
      h.cli(['start', 'natvm2', '--netns', host.name, '--wait-for-guest', '--timeout', '150']),
    ]);
    expect(s1.code, s1.stderr).toBe(0);
    expect(s2.code, s2.stderr).toBe(0);
    console.log(`two guests up in ${Date.now() - t0} ms`);

    // DHCP: a dynamic lease from the upper half, and the static lease of natvm2's fixed ip:.
    const ip1 = await h.cli(['ip', 'natvm', '--timeout', '60']);
    expect(ip1.code, ip1.stderr).toBe(0);
    const addr1 = ip1.stdout.trim();
    expect(addr1).toMatch(/^10\.77\.0\.(1[2-9]\d|2[0-5]\d)$/);
    expect(await sh('natvm', 'ip -4 -o addr show dev eth0')).toContain(`inet ${addr1}/24`);
    const ip2 = await h.cli(['ip', 'natvm2', '--timeout', '60']);
    expect(ip2.stdout.trim(), ip2.stderr).toBe('10.77.0.50');
    expect(await sh('natvm2', 'ip -4 -o addr show dev eth0')).toContain('inet 10.77.0.50/24');

    // DNS from dnsmasq: an extra name, the other VM's name, and this VM's own lease name.
    expect(await sh('natvm', 'nslookup upstream.kvt.test')).toContain('10.99.0.2');
    expect(await sh('natvm', 'nslookup natvm2.kvt.test')).toContain('10.77.0.50');
    expect(await sh('natvm2', 'nslookup natvm')).toContain(addr1);

    // Out through the masquerade (and through Docker's FORWARD policy drop): upstream sees the host.
    // (busybox nc, not wget: the static busybox's wget crashes in its resolver)
    expect(await sh('natvm', 'nc -w 10 10.99.0.2 9000 </dev/null')).toContain('PEER=10.99.0.1');
    expect(await sh('natvm2', 'nc -w 10 10.99.0.2 9000 </dev/null')).toContain('PEER=10.99.0.1');

    // In through the port forward: upstream → host 10.99.0.1:8080 → natvm2:80.
    await sh('natvm2', 'mkdir -p /tmp/www && echo GUEST2-HTTP-OK >/tmp/www/index.html && httpd -p 80 -h /tmp/www && echo started');
    const get = await up.exec([process.execPath, '-e', "require('http').get('http://10.99.0.1:8080/',r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(b))}).on('error',e=>{console.log('ERR '+e.message);})"], { timeoutMs: 20_000 });
    expect(get.stdout).toContain('GUEST2-HTTP-OK');
    // Nothing else gets in: upstream cannot reach a guest address directly (no route, and dropped).
    const status = await h.cli(['net', 'show', 'natnet', '--netns', host.name]);
    expect(status.stdout).toContain('# state: up');

    // net down refuses while the guests run, then undoes everything once they are stopped.
    const busy = await h.cli(['net', 'down', 'natnet', '--netns', host.name]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('NETWORK_BUSY');
    for (const vm of ['natvm', 'natvm2']) expect((await h.cli(['stop', vm, '--force'])).code).toBe(0);
    const d = await h.cli(['net', 'down', 'natnet', '--netns', host.name]);
    expect(d.code, d.stderr).toBe(0);
    expect(await nft(host)).toBe(before);
    expect((await host.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('0');
    expect(dnsmasqPids(natFiles(paths, 'natnet').conf)).toEqual([]);
    expect(await host.ip('-br', 'link')).not.toMatch(/natnet|^kv/m);
    expect(fs.existsSync(path.join(paths.run, 'nat-sysctl'))).toBe(true);
    expect(fs.readdirSync(path.join(paths.run, 'nat-sysctl'))).toEqual([]);
  }, 400_000);
});
