/**
 * VMs on RBD volumes in the kvmctl cluster (#21): three hosts (namespaces on a shared bridge,
 * real etcd, real agents: test/helpers/cluster.ts) and the real Ceph of test/helpers/ceph.ts
 * plugged into the same bridge (mon at 10.77.0.200). Each host defines the same rbd storage.
 * Live migration moves the VM without copying its disk: the guest reads on the destination what it
 * wrote to the volume on the source, and the image's one watcher (the client that has it open)
 * moves from the source host's address to the destination's. HA failover: the owner of an HA VM
 * is cut off (its bridge port down: no etcd, no Ceph); it fences its QEMU, and the host that
 * restarts the VM first breaks the dead owner's exclusive lock and blocklists its client
 * (src/storage/fence.ts), so the new QEMU writes at once instead of after the 30 s watch timeout.
 * Placement knows which host reaches which storage (src/cluster/storage-reach.ts): h1 also defines
 * `cephone` (the same pool under another name), h2 `cephdead` (monitors at an address where nobody
 * answers); start, start --on and migrate leave out or refuse the hosts that cannot reach a VM's storage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { etcdAvailable, makeCluster, type TestCluster, type TestHost, until } from '../helpers/cluster.js';

const ceph = canRunCeph();
const why = !ceph.ok ? ceph.why : !etcdAvailable() ? 'etcd-server is not installed (scripts/setup.sh installs it)' : undefined;
let c: TestCluster | undefined;
let k: Ceph | undefined;
const h = (name: string) => c!.hosts.find((x) => x.name === name)!;

async function ok(x: TestHost, args: string[], timeoutMs?: number): Promise<string> {
  const r = await x.cli(args, timeoutMs);
  expect(r.code, `${x.name}: ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
const guestReady = (x: TestHost, vm: string) => {
  try {
    return fs.readFileSync(path.join(x.home, 'run/vms', vm, 'serial.log'), 'utf8').includes('KVMCTL-GUEST-READY');
  } catch {
    return false;
  }
};
type Reach = { name: string; ok: boolean; why?: string };
const hostStorages = async () => (JSON.parse(await ok(c!.hosts[0]!, ['cluster', 'status', '--json'])) as { hosts: { name: string; storages?: Reach[] }[] }).hosts;
const watchers = async (vol = 'mig0') => (JSON.parse(await k!.rbd('status', '--format', 'json', `${k!.pool}/${vol}`)) as { watchers: { address: string }[] }).watchers.map((w) => w.address.split(':')[0]);

describe.skipIf(!!why)(`an RBD VM in the cluster${why ? ` (skipped: ${why})` : ''}`, () => {
  beforeAll(async () => {
    c = await makeCluster(3, { ttl: 5, margin: 1000 });
    k = await startCeph({ bridge: { netns: c.bridge.name, dev: 'br0', ip: '10.77.0.200', prefix: 24 } });
    console.log(`ceph start (on the cluster bridge): ${JSON.stringify(k.timings)} ms`);
    await ensureTestGuest(c.hosts[0]!.paths);
    const def = path.join(c.dir, 'ceph1.yaml');
    fs.writeFileSync(def, `kind: storage\nname: ceph1\ntype: rbd\npool: ${k.pool}\nmonitors: [${k.monitor}]\nuser: ${k.user}\nkeyring: ${k.keyring}\n`);
    for (const x of c.hosts) await ok(x, ['storage', 'define', '-f', def]);
    const extra = (name: string, mon: string) => {
      const f = path.join(c!.dir, `${name}.yaml`);
      fs.writeFileSync(f, `kind: storage\nname: ${name}\ntype: rbd\npool: ${k!.pool}\nmonitors: [${mon}]\nuser: ${k!.user}\nkeyring: ${k!.keyring}\n`);
      return f;
    };
    await ok(c.hosts[0]!, ['storage', 'define', '-f', extra('cephone', k.monitor)]);
    await ok(c.hosts[1]!, ['storage', 'define', '-f', extra('cephdead', '10.77.0.250')]);
    await ok(c.hosts[0]!, ['volume', 'create', 'ceph1/mig0', '32M']);
    await ok(c.hosts[0]!, ['volume', 'create', 'ceph1/ha0', '32M']);
    for (const x of c.hosts) await x.startAgent();
    await until('3 live agents', async () => (JSON.parse(await ok(c!.hosts[0]!, ['cluster', 'status', '--json'])) as { hosts: { alive: boolean }[] }).hosts.filter((x) => x.alive).length === 3, 30_000, 300);
    // Placement needs each host's storage report (published beside the agent at its start).
    await until('every host reports reaching ceph1', async () => (await hostStorages()).every((x) => x.storages?.some((r) => r.name === 'ceph1' && r.ok)), 60_000, 300);
    const vm = path.join(c.dir, 'vm.yaml');
    const def2 = (name: string, vol: string, extra = '') => `name: ${name}\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - storage: ceph1\n    volume: ${vol}\nstopTimeout: 10\n${extra}`;
    fs.writeFileSync(vm, [def2('rmig', 'mig0'), def2('rha', 'ha0', 'ha: true\n')].join('---\n'));
    await ok(c.hosts[0]!, ['cluster', 'apply', '-f', vm]);
    await ok(c.hosts[0]!, ['start', 'rmig']); // in cluster mode: desired state, the placed host's agent starts it
    await ok(c.hosts[0]!, ['start', 'rha']);
  }, 240_000);
  afterAll(async () => {
    await c?.destroy();
    await k?.stop();
  }, 60_000);

  it('both hosts reach the storage; the VM runs on one of them with the volume open there', async () => {
    for (const x of c!.hosts) {
      const r = JSON.parse(await ok(x, ['--json', 'storage', 'check', 'ceph1'])) as { ok: boolean };
      expect(r.ok, x.name).toBe(true);
    }
    const owner = await until('rmig placed and running', async () => {
      const st = JSON.parse(await ok(c!.hosts[0]!, ['cluster', 'status', '--json'])) as { vms: { name: string; owner?: string }[] };
      const o = st.vms.find((v) => v.name === 'rmig')?.owner;
      return o && guestReady(h(o), 'rmig') ? o : undefined;
    }, 120_000);
    expect(await watchers()).toEqual([h(owner).ip]);
  }, 150_000);

  it('live migration copies no disk: the destination opens the same image and the guest reads what it wrote before', async () => {
    const st = JSON.parse(await ok(c!.hosts[0]!, ['cluster', 'status', '--json'])) as { vms: { name: string; owner: string }[] };
    const from = st.vms.find((v) => v.name === 'rmig')!.owner;
    const to = c!.hosts.map((x) => x.name).find((n) => n !== from)!;
    const w = await serialExec(h(from).paths, 'rmig', "printf 'MIGRATE!' | dd of=/dev/vda bs=8 count=1 conv=fsync 2>/dev/null; echo rc=$?", 30_000);
    expect(w.output).toContain('rc=0');
    const up0 = Number((await serialExec(h(from).paths, 'rmig', 'cat /proc/uptime')).output.trim().split(' ')[0]);
    const r = await h(from).cli(['migrate', 'rmig', '--to', to, '--json'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as { stats: { transferredBytes?: number; totalTimeMs?: number; downtimeMs?: number } };
    console.log(`RBD VM live migration ${from} → ${to}: ${JSON.stringify(m.stats)}`);
    await until(`rmig gone from ${from}`, () => !h(from).qemus().length, 30_000);
    // Same image, now opened by the destination host only.
    expect(await until('the watcher moved', async () => ((await watchers()).join() === h(to).ip ? true : undefined), 30_000)).toBe(true);
    const back = await serialExec(h(to).paths, 'rmig', 'dd if=/dev/vda bs=8 count=1 2>/dev/null; echo', 30_000);
    expect(back.output.trim()).toBe('MIGRATE!');
    const up1 = Number((await serialExec(h(to).paths, 'rmig', 'cat /proc/uptime')).output.trim().split(' ')[0]);
    expect(up1).toBeGreaterThan(up0); // the same running guest, not a reboot
    // RAM went over the wire, the 32 MiB disk did not: well under RAM (128 MiB) + disk.
    expect(m.stats.transferredBytes ?? 0).toBeLessThan(160 * 2 ** 20);
  }, 180_000);

  it('placement knows which hosts reach which storage: start, start --on and migrate leave out or refuse the others', async () => {
    const t0 = Date.now();
    const hs = await until('h2 reports cephdead unreachable', async () => {
      const x = await hostStorages();
      return x.find((y) => y.name === 'h2')?.storages?.some((r) => r.name === 'cephdead') ? x : undefined;
    }, 60_000, 500);
    console.log(`storage reports: ${JSON.stringify(hs.map((x) => [x.name, x.storages]))} (${Date.now() - t0} ms after the agents were up)`);
    expect(hs.find((x) => x.name === 'h1')!.storages!.map((r) => [r.name, r.ok])).toEqual([['ceph1', true], ['cephone', true]]);
    const dead = hs.find((x) => x.name === 'h2')!.storages!.find((r) => r.name === 'cephdead')!;
    expect(dead.ok).toBe(false);
    expect(dead.why).toMatch(/cephdead/);
    await ok(c!.hosts[0]!, ['volume', 'create', 'cephone/one0', '16M']);
    const vm = path.join(c!.dir, 'reach.yaml');
    const d = (name: string, st: string, vol: string) => `name: ${name}\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - storage: ${st}\n    volume: ${vol}\nstopTimeout: 10\n`;
    fs.writeFileSync(vm, [d('rone', 'cephone', 'one0'), d('rdead', 'cephdead', 'dead0')].join('---\n'));
    await ok(c!.hosts[0]!, ['cluster', 'apply', '-f', vm]);
    const pinned = await c!.hosts[0]!.cli(['start', 'rone', '--on', 'h2']);
    expect(pinned.code).toBe(2);
    expect(pinned.stderr).toMatch(/STORAGE_UNREACHABLE_THERE.*cannot run on h2: it does not define storage cephone/);
    const placed = JSON.parse(await ok(c!.hosts[1]!, ['start', 'rone', '--json'], 90_000)) as { host: string; considered: { host: string; why?: string }[] };
    expect(placed.host).toBe('h1'); // the only host that reaches cephone
    expect(placed.considered.filter((x) => x.why).map((x) => x.why)).toEqual(['does not define storage cephone (kvmctl storage define -f FILE on that host)', 'does not define storage cephone (kvmctl storage define -f FILE on that host)']);
    const mig = await c!.hosts[0]!.cli(['migrate', 'rone', '--to', 'h3']);
    expect(mig.code).toBe(2);
    expect(mig.stderr).toMatch(/STORAGE_UNREACHABLE_THERE.*h3: it does not define storage cephone/);
    const none = await c!.hosts[0]!.cli(['start', 'rdead']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/NO_HOST/);
    expect(none.stderr).toMatch(/h2: cannot reach storage cephdead/);
    expect(none.stderr).toMatch(/h1: does not define storage cephdead/);
    await ok(c!.hosts[0]!, ['stop', 'rone'], 60_000);
  }, 180_000);

  it('HA failover of an RBD VM: the cut-off owner is fenced, the new host breaks its lock and blocklists it, the guest data is there and writable at once', async () => {
    const ownerOf = async (vm: string) => (JSON.parse(await ok(c!.hosts.find((x) => x.name !== victimName)!, ['cluster', 'status', '--json'])) as { vms: { name: string; owner?: string }[] }).vms.find((v) => v.name === vm)?.owner;
    let victimName = '';
    victimName = await until('rha running', async () => { const o = await ownerOf('rha'); return o && guestReady(h(o), 'rha') ? o : undefined; }, 120_000);
    const victim = h(victimName);
    const w = await serialExec(victim.paths, 'rha', "printf 'HA-DATA!' | dd of=/dev/vda bs=8 count=1 conv=fsync 2>/dev/null; echo rc=$?", 30_000);
    expect(w.output).toContain('rc=0');
    const locks0 = JSON.parse(await k!.rbd('lock', 'ls', '--format', 'json', `${k!.pool}/ha0`)) as unknown[];
    expect(locks0.length).toBe(1);
    const port = `p${victimName.slice(1)}`;
    await c!.bridge.ip('link', 'set', port, 'down');
    const cutAt = Date.now();
    let newOwner: string;
    try {
      newOwner = await until('rha restarted on another host', async () => { const o = await ownerOf('rha'); return o && o !== victimName && guestReady(h(o), 'rha') ? o : undefined; }, 90_000, 200);
      expect(victim.qemus().filter((p) => { try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/run/vms/rha/'); } catch { return false; } })).toEqual([]); // fenced
      const restartedMs = Date.now() - cutAt;
      // The data written on the old host is there, and the new QEMU can take the lock and write right away.
      const back = await serialExec(h(newOwner).paths, 'rha', 'dd if=/dev/vda bs=8 count=1 2>/dev/null; echo', 30_000);
      expect(back.output.trim()).toBe('HA-DATA!');
      const t0 = Date.now();
      const w2 = await serialExec(h(newOwner).paths, 'rha', "printf 'HA-NEW!!' | dd of=/dev/vda bs=8 count=1 conv=fsync 2>/dev/null; echo rc=$?", 30_000);
      const writeMs = Date.now() - t0;
      expect(w2.output).toContain('rc=0');
      console.log(`RBD HA failover: restarted on ${newOwner} ${restartedMs} ms after the cut; first write there took ${writeMs} ms`);
      expect(writeMs).toBeLessThan(15_000); // not the 30 s watch timeout
      const log = fs.readFileSync(path.join(c!.dir, `agent-${newOwner}.log`), 'utf8');
      // The agent's own clock: the restart itself, apart from the test's polling of cluster status (slow while an etcd member is cut off).
      const started = /^(\S+) agent \S+: started rha/m.exec(log.split('\n').filter((l) => /started rha/.test(l)).at(-1) ?? '');
      if (started) console.log(`RBD HA failover: the new owner's agent had QEMU running ${Date.parse(started[1]!) - cutAt} ms after the cut`);
      expect(log).toMatch(new RegExp(`HA: rha: broke the lock of client\\.\\d+ \\(${victim.ip.replace(/\./g, '\\.')}:`));
      const bl = await k!.ceph('osd', 'blocklist', 'ls');
      expect(bl).toContain(`${victim.ip}:0/`);
      const locks1 = JSON.parse(await k!.rbd('lock', 'ls', '--format', 'json', `${k!.pool}/ha0`)) as { address: string }[];
      expect(JSON.stringify(locks1)).toContain(h(newOwner).ip);
    } finally {
      await c!.bridge.ip('link', 'set', port, 'up');
    }
  }, 180_000);
});
