/**
 * Production tuning (#20) on real QEMU (TCG: one host thread per vCPU) and the real test guest,
 * through the CLI, with its own KVMCTL home:
 *  - a 2-vCPU guest with cpu.pin, a disk on its own iothread, two NUMA nodes and a 2-queue NIC on a
 *    bridge inside a namespace this test makes: the vCPU, iothread and emulator threads have the
 *    asked Cpus_allowed_list (/proc/PID/task/TID/status), the guest sees node0 and node1, QEMU holds
 *    two queues of the tap (/proc/PID/fdinfo iff:) and the guest's eth0 has two rx queues;
 *  - hugepages: the test reserves 2M pages with vm.nr_hugepages (the old value restored in
 *    afterAll, even on failure), the hugepage-backed guest boots and takes them, and a start that
 *    needs more than are free is refused with the numbers (exit 2, nothing started).
 * Not here: vCPU hotplug and its re-pin (test/integration/hotplug.test.ts), PCI/USB passthrough (no
 * devices on this machine; fixture tests in test/unit/definition/tuning.test.ts and
 * test/unit/host/vfio-bind.test.ts), per-host-node binding (this host has one node).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { qmpOnce } from '../../src/vm/qmp-once.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const NR = '/proc/sys/vm/nr_hugepages';
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const allowed = (pid: number, tid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1];
const hp = () => Object.fromEntries(fs.readFileSync('/proc/meminfo', 'utf8').split('\n').filter((l) => l.startsWith('HugePages_')).map((l) => [l.split(':')[0], Number(l.split(':')[1])]));
const cpus = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
const net = canUseNetns();

let h: Home;
let ns: Netns | undefined;
let nrBefore: string | undefined;

beforeAll(async () => {
  h = makeHome();
  if (net.ok) {
    ns = await createNetns();
    await ns.veth('up0', 'lan0');
  }
  await h.apply(`${ns ? 'kind: network\nname: mqbr\ntype: bridge\nuplinks: [up0]\n---\n' : ''}name: tuned
cpu: { count: 2, pin: { vcpus: [1, 0], emulator: 0, iothreads: 1 } }
memory: { size: 256M, numa: [{ cpus: 0, memory: 128M }, { cpus: 1, memory: 128M }] }
kernel: { builtin: test-guest }
disks: [{ file: tuned.raw, create: { size: 1M }, iothread: auto, queues: 2 }]
${ns ? 'nics: [{ network: mqbr, queues: 2 }]\n' : ''}stopTimeout: 20
---
name: huge
memory: { size: 128M, hugepages: 2M }
kernel: { builtin: test-guest }
stopTimeout: 20
---
name: hugebig
memory: { size: 512M, hugepages: 2M }
kernel: { builtin: test-guest }
`);
  await ensureTestGuest(resolvePaths(h.env));
}, 320_000);

afterAll(async () => {
  try {
    await h?.cleanup();
    await ns?.destroy();
  } finally {
    if (nrBefore !== undefined) fs.writeFileSync(NR, nrBefore);
  }
});

describe.skipIf(!/^0-[1-9]/.test(cpus))('tuning on real QEMU', () => {
  let pid = 0;
  it('pins vCPU, iothread and emulator threads as asked', async () => {
    const s = await h.cli(['start', 'tuned', ...(ns ? ['--netns', ns.name] : []), '--wait-for-guest', '--json'], { timeoutMs: 240_000 });
    expect(s.code, s.stderr).toBe(0);
    const r = json(s.stdout);
    pid = r.pid;
    console.log(`tuned: qmpReadyMs ${r.qmpReadyMs} guestReadyMs ${r.guestReadyMs} pinned ${r.pinned.length} threads`);
    const qmp = path.join(h.dir, 'run/vms/tuned/qmp.sock');
    const vcpus = (await qmpOnce(qmp, 'query-cpus-fast')) as { 'cpu-index': number; 'thread-id': number }[];
    const iots = (await qmpOnce(qmp, 'query-iothreads')) as { id: string; 'thread-id': number }[];
    expect(vcpus).toHaveLength(2);
    expect(new Set(vcpus.map((v) => v['thread-id'])).size).toBe(2); // MTTCG: a thread per vCPU
    expect(iots.map((t) => t.id)).toEqual(['iothread-disk0']);
    const got = Object.fromEntries(vcpus.map((v) => [`vcpu${v['cpu-index']}`, allowed(pid, v['thread-id'])]));
    expect(got).toEqual({ vcpu0: '1', vcpu1: '0' });
    expect(allowed(pid, iots[0]!['thread-id'])).toBe('1');
    const special = new Set([...vcpus.map((v) => v['thread-id']), iots[0]!['thread-id']]);
    const others = fs.readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => !special.has(t));
    expect(others).toContain(pid);
    // Every emulator thread kvmctl pinned (at QMP-ready and again at guest-ready) that still exists runs on CPU 0.
    const emu = (r.pinned as { tid: number; what: string }[]).filter((p) => p.what === 'emulator' && fs.existsSync(`/proc/${pid}/task/${p.tid}`));
    expect(emu.map((p) => p.tid)).toContain(pid);
    expect(Object.fromEntries(emu.map((p) => [p.tid, allowed(pid, p.tid)]))).toEqual(Object.fromEntries(emu.map((p) => [p.tid, '0'])));
    // Threads QEMU starts afterwards (thread-pool workers) inherit the mask of the thread that made them: an emulator, vCPU or iothread set.
    for (const t of others) expect(['0', '1']).toContain(allowed(pid, t));
    expect(r.pinned.filter((p: { what: string }) => p.what.startsWith('vCPU'))).toHaveLength(2);
  }, 300_000);

  it('the 2-node NUMA guest sees two nodes, each with its vCPU', async () => {
    const paths = resolvePaths(h.env);
    const nodes = await serialExec(paths, 'tuned', 'ls -d /sys/devices/system/node/node*');
    expect(nodes.output.split(/\s+/).filter(Boolean).map((p) => path.basename(p))).toEqual(['node0', 'node1']);
    const c = await serialExec(paths, 'tuned', 'cat /sys/devices/system/node/node0/cpulist /sys/devices/system/node/node1/cpulist');
    expect(c.output.split(/\s+/).filter(Boolean)).toEqual(['0', '1']);
  }, 60_000);

  it.skipIf(!net.ok)('the multiqueue tap has two queues, and so does the guest NIC', async () => {
    // An fd may close between the listing and the read (QEMU's QMP connections come and go).
    const fdinfo = (fd: string) => {
      try {
        return fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        return '';
      }
    };
    const fds = fs.readdirSync(`/proc/${pid}/fdinfo`).map(fdinfo).map((t) => /^iff:\s*(\S+)/m.exec(t)?.[1]).filter(Boolean);
    expect(fds).toHaveLength(2);
    expect(new Set(fds).size).toBe(1);
    const info = json(await ns!.ip('-d', '-json', 'link', 'show', 'dev', fds[0]!));
    expect(JSON.stringify(info)).toMatch(/multi_queue/);
    const q = await serialExec(resolvePaths(h.env), 'tuned', 'ls /sys/class/net/eth0/queues');
    expect(q.output.split(/\s+/).filter((x) => x.startsWith('rx-')).sort()).toEqual(['rx-0', 'rx-1']);
    expect((await h.cli(['stop', 'tuned', '--json'])).code).toBe(0);
  }, 60_000);

  it('a hugepage-backed guest boots on pages the test reserved; a start needing more is refused with the numbers', async () => {
    await h.cli(['kill', 'tuned']);
    nrBefore = fs.readFileSync(NR, 'utf8').trim();
    const free0 = hp().HugePages_Free!;
    fs.writeFileSync(NR, String(Number(nrBefore) + 64)); // 128M of 2M pages
    expect(hp().HugePages_Free! - free0, 'the kernel could not reserve 64 pages').toBe(64);
    const s = await h.cli(['start', 'huge', '--wait-for-guest', '--json'], { timeoutMs: 240_000 });
    expect(s.code, s.stderr).toBe(0);
    console.log(`huge: guestReadyMs ${json(s.stdout).guestReadyMs}, HugePages_Free ${free0 + 64} → ${hp().HugePages_Free}`);
    expect(hp().HugePages_Free).toBe(free0); // prealloc: all 64 taken by the guest
    expect(fs.readFileSync(`/proc/${json(s.stdout).pid}/cmdline`, 'utf8')).toContain('hugetlb=on');
    const big = await h.cli(['start', 'hugebig', '--json']);
    expect(big.code).toBe(2);
    expect(big.stderr).toMatch(new RegExp(`HOST_CANNOT_TUNE.*needs 256 free 2M hugepages \\(512 MiB\\), the host has ${free0} free of ${Number(nrBefore) + 64}`));
    expect(json((await h.cli(['status', 'hugebig', '--json'])).stdout).state).toBe('stopped');
    expect((await h.cli(['stop', 'huge', '--json'])).code).toBe(0);
    expect(hp().HugePages_Free! - free0).toBe(64); // given back
  }, 300_000);
});
