/**
 * Live migration with local disks, UEFI vars and TPM state (issues #16 and #15) between two hosts
 * of a real 2-member etcd cluster (namespaces, test/helpers/cluster.ts), real QEMU (TCG), swtpm
 * and OVMF, the test guest:
 *   - a destination killed mid-copy leaves the source VM running (same QEMU, guest answering) and
 *     nothing on the destination (no QEMU, no image, no record);
 *   - a migration while the guest writes to its raw data disk: every block the guest wrote (before,
 *     during and after the switch-over) is on the destination's disk, the untouched region is
 *     byte-equal to the source's copy at the switch-over, the guest keeps running (same boot), and
 *     the source keeps its stale copy renamed;
 *   - a UEFI + TPM guest: the destination's vars equal the source's at the switch-over (not the
 *     template), the guest reads the same PCR 0 through the destination's swtpm, and it migrates back;
 *   - a qcow2 disk's dirty bitmap moves with it: a backup on the destination after the migration is
 *     incremental on the full one made on the source, and has everything written on both hosts.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { etcdAvailable, killPid, makeCluster, type TestCluster, type TestHost, until } from '../helpers/cluster.js';
import { canUseNetns } from '../helpers/netns.js';

const MiB = 1024 * 1024;
const FILLED = 200 * MiB; // pattern data, so the copy takes time and has something to compare
const WRITE_AT = 60000; // first 4 KiB block the guest's writer uses (234 MiB: past the filled region)
const can = canUseNetns();
const haveFw = fs.existsSync('/usr/share/OVMF/OVMF_CODE_4M.fd') && fs.existsSync('/usr/bin/swtpm');
const why = !can.ok ? can.why : !etcdAvailable() ? 'etcd-server is not installed (scripts/setup.sh installs it)' : undefined;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

let c: TestCluster;
const h = (n: string) => c.hosts.find((x) => x.name === n)!;
const qemuOf = (x: TestHost, vm: string) => x.qemus().filter((p) => {
  try {
    return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`/run/vms/${vm}/`);
  } catch {
    return false;
  }
});
async function sh(x: TestHost, vm: string, cmd: string, timeoutMs = 30_000): Promise<string> {
  const r = await serialExec(x.paths, vm, cmd, timeoutMs);
  expect(r.status, r.output).toBe(0);
  return r.output.trim();
}
async function ready(x: TestHost, vm: string): Promise<void> {
  await until(`${vm} ready on ${x.name}`, () => {
    try {
      return fs.readFileSync(path.join(x.home, 'run/vms', vm, 'serial.log'), 'utf8').includes('KVMCTL-GUEST-READY');
    } catch {
      return false;
    }
  }, 120_000, 200);
}

describe.skipIf(!!why)(`live migration with local disks${why ? ` (skipped: ${why})` : ''}`, () => {
  beforeAll(async () => {
    c = await makeCluster(2, { ttl: 5, margin: 1000 });
    await ensureTestGuest(c.hosts[0]!.paths);
    for (const x of c.hosts) await x.startAgent();
    await until('2 live agents', async () => {
      const r = await c.hosts[0]!.cli(['cluster', 'status', '--json']);
      return r.code === 0 && json(r.stdout).hosts.filter((x: any) => x.alive).length === 2;
    }, 30_000, 300);
    const img = path.join(h('h1').paths.images, 'data.raw');
    fs.mkdirSync(path.dirname(img), { recursive: true });
    execFileSync('qemu-img', ['create', '-f', 'raw', img, '256M'], { stdio: 'ignore' });
    execFileSync('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a 0 ${FILLED}`, img], { stdio: 'ignore' });
    const f = path.join(c.dir, 'vms.yaml');
    const docs = ['name: local\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 10\ndisks: [{ id: data, file: data.raw }]\n'];
    docs.push('name: bk\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 10\ndisks: [{ id: data, file: bk.qcow2, create: { size: 64M } }]\n');
    if (haveFw) docs.push('name: fw\nmemory: 256M\nmachine: q35\nfirmware: uefi\ntpm: { version: "2.0" }\nkernel: { builtin: test-guest }\nstopTimeout: 10\n');
    fs.writeFileSync(f, docs.join('---\n'));
    const a = await c.hosts[0]!.cli(['cluster', 'apply', '-f', f]);
    expect(a.code, a.stderr).toBe(0);
    const s = await c.hosts[0]!.cli(['start', 'local', '--on', 'h1', '--json']);
    expect(s.code, s.stderr).toBe(0);
    await until('local runs on h1', () => qemuOf(h('h1'), 'local').length === 1, 30_000);
    await ready(h('h1'), 'local');
  }, 180_000);
  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  it('a destination killed mid-copy: the source VM runs on untouched, nothing is left on the destination', async () => {
    const src = qemuOf(h('h1'), 'local')[0]!;
    const target = path.join(h('h2').paths.images, 'data.raw');
    const mig = h('h1').cli(['migrate', 'local', '--to', 'h2', '--bwlimit', '16M', '--json'], 120_000);
    // Kill the destination's QEMU once the copy is under way (its image has some data in it).
    await until('copy under way', () => fs.existsSync(target) && fs.statSync(target).blocks * 512 > 16 * MiB, 60_000, 50);
    for (const p of qemuOf(h('h2'), 'local')) await killPid(p);
    const r = await mig;
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(/disk data|NBD|migration/i);
    expect(qemuOf(h('h1'), 'local')).toEqual([src]);
    expect(await sh(h('h1'), 'local', 'echo still-here')).toContain('still-here');
    await until('destination cleaned up', () => !fs.existsSync(target) && !fs.existsSync(path.join(h('h2').paths.data, 'vms/local/incoming.json')) && qemuOf(h('h2'), 'local').length === 0, 20_000, 200);
    const st = json((await h('h1').cli(['cluster', 'status', '--json'])).stdout);
    expect(st.vms.find((v: any) => v.name === 'local')).toMatchObject({ owner: 'h1' });
  }, 180_000);

  it('migrates while the guest writes to its disk: every write is on the destination, the guest keeps running, the source keeps its copy renamed', async () => {
    const up0 = Number((await sh(h('h1'), 'local', 'cat /proc/uptime')).split(' ')[0]);
    // A writer: block N gets "blk-N", every 50 ms, until /tmp/stop; /tmp/last is the last one done (tmpfs: it migrates with RAM).
    await sh(h('h1'), 'local', `(i=0; while [ ! -e /tmp/stop ]; do printf 'blk-%08d' $i | dd of=/dev/vda bs=4096 seek=$((i+${WRITE_AT})) conv=notrunc,fsync 2>/dev/null; echo $i > /tmp/last; i=$((i+1)); usleep 50000; done) >/dev/null 2>&1 & true`);
    await until('writer running', async () => Number(await sh(h('h1'), 'local', 'cat /tmp/last 2>/dev/null || echo -1')) >= 5, 20_000, 300);
    const r = await h('h1').cli(['migrate', 'local', '--to', 'h2', '--bwlimit', '64M', '--json'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const m = json(r.stdout);
    expect(m).toMatchObject({ from: 'h1', to: 'h2', state: 'done', disks: ['data'] });
    expect(m.stats.diskBytes).toBe(256 * MiB);
    const kept = path.join(h('h1').paths.images, `data.raw.migrated-to-h2-`);
    expect(m.leftBehind).toHaveLength(1);
    expect(m.leftBehind[0]).toContain(kept);
    expect(fs.existsSync(path.join(h('h1').paths.images, 'data.raw'))).toBe(false); // a cold start on h1 cannot boot the stale copy
    await until('source QEMU gone', () => qemuOf(h('h1'), 'local').length === 0, 20_000);
    // Written on the source at the switch-over: how many of the writer's blocks are in its copy.
    const srcCopy = fs.readFileSync(m.leftBehind[0]);
    let onSource = 0;
    while (srcCopy.subarray((WRITE_AT + onSource) * 4096, (WRITE_AT + onSource) * 4096 + 12).toString() === `blk-${String(onSource).padStart(8, '0')}`) onSource++;
    expect(onSource).toBeGreaterThan(5);
    const mid = Number(await sh(h('h2'), 'local', 'cat /tmp/last'));
    await until('writer writes on the destination', async () => Number(await sh(h('h2'), 'local', 'cat /tmp/last')) > mid + 5, 20_000, 300);
    const last = Number(await sh(h('h2'), 'local', 'touch /tmp/stop; usleep 300000; cat /tmp/last'));
    expect(last).toBeGreaterThan(onSource);
    // Every block, read from the destination's disk (page cache dropped), has what the guest wrote.
    const check = await sh(h('h2'), 'local', `sync; echo 3 > /proc/sys/vm/drop_caches; bad=0; i=0; while [ $i -le ${last} ]; do v=$(dd if=/dev/vda bs=4096 skip=$((i+${WRITE_AT})) count=1 2>/dev/null | head -c 12); [ "$v" = "$(printf 'blk-%08d' $i)" ] || bad=$((bad+1)); i=$((i+1)); done; echo "checked $i bad $bad"`, 60_000);
    expect(check).toContain(`checked ${last + 1} bad 0`);
    // The region nobody wrote after the copy began is byte-equal on both hosts.
    const dst = fs.readFileSync(path.join(h('h2').paths.images, 'data.raw'));
    expect(dst.length).toBe(256 * MiB);
    expect(Buffer.compare(dst.subarray(0, WRITE_AT * 4096), srcCopy.subarray(0, WRITE_AT * 4096))).toBe(0);
    const up1 = Number((await sh(h('h2'), 'local', 'cat /proc/uptime')).split(' ')[0]);
    expect(up1).toBeGreaterThan(up0); // the same boot goes on
    const st = json((await h('h1').cli(['cluster', 'status', '--json'])).stdout);
    expect(st.vms.find((v: any) => v.name === 'local')).toMatchObject({ owner: 'h2' });
    console.log('local-disk migration', { ...m.stats, cliMs: m.totalMs, writerBlocks: last + 1, onSourceAtSwitchover: onSource });
  }, 240_000);

  it.skipIf(!haveFw)('a UEFI + TPM guest takes its vars and TPM state along, and comes back', async () => {
    const s = await c.hosts[0]!.cli(['start', 'fw', '--on', 'h1', '--json']);
    expect(s.code, s.stderr).toBe(0);
    await ready(h('h1'), 'fw');
    const pcr = async (x: TestHost) => sh(x, 'fw', 'cat /sys/class/tpm/tpm0/pcr-sha256/0');
    const pcr0 = await pcr(h('h1'));
    expect(pcr0).toMatch(/^[0-9A-F]{64}$/);
    const r = await h('h1').cli(['migrate', 'fw', '--to', 'h2', '--json'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const m = json(r.stdout);
    const vars1 = m.leftBehind.find((f: string) => /nvram\.fd\.migrated-to-h2-/.test(f));
    expect(m.leftBehind.some((f: string) => /\/tpm\.migrated-to-h2-/.test(f))).toBe(true);
    const vars2 = path.join(h('h2').paths.data, 'vms/fw/nvram.fd');
    await until('vars written on the destination', () => sha(vars2) === sha(vars1), 10_000, 200);
    expect(sha(vars2)).not.toBe(sha('/usr/share/OVMF/OVMF_VARS_4M.fd')); // what the firmware stored at boot, not a fresh copy
    expect(await pcr(h('h2'))).toBe(pcr0); // the destination's swtpm has the TPM the firmware measured into
    // And back: h1's stale copies were renamed, so it takes fresh ones that receive the state again.
    const back = await h('h2').cli(['migrate', 'fw', '--to', 'h1', '--json'], 120_000);
    expect(back.code, back.stderr).toBe(0);
    expect(await pcr(h('h1'))).toBe(pcr0);
    await until('fw only on h1', () => qemuOf(h('h2'), 'fw').length === 0 && qemuOf(h('h1'), 'fw').length === 1, 20_000);
  }, 240_000);

  it('a qcow2 disk takes its dirty bitmap along: the first backup on the destination is incremental and complete', async () => {
    const repo = path.join(c.dir, 'repo'); // one repository both hosts reach (a shared mount in real life)
    fs.mkdirSync(repo);
    for (const x of c.hosts) {
      const a = await x.cli(['storage', 'add', repo]);
      expect(a.code, a.stderr).toBe(0);
    }
    const s = await c.hosts[0]!.cli(['start', 'bk', '--on', 'h1', '--json']);
    expect(s.code, s.stderr).toBe(0);
    await ready(h('h1'), 'bk');
    const write = (x: TestHost, mib: number, byte: string) => sh(x, 'bk', `dd if=/dev/zero bs=1048576 count=1 2>/dev/null | tr '\\0' '${byte}' | dd of=/dev/vda bs=1048576 seek=${mib} conv=notrunc,fsync 2>/dev/null; sync`);
    await write(h('h1'), 0, 'A');
    const full = await h('h1').cli(['backup', 'create', 'bk', '--to', repo, '--json', '-q'], 120_000);
    expect(full.code, full.stderr).toBe(0);
    expect(json(full.stdout).manifest.kind).toBe('full');
    await write(h('h1'), 8, 'B'); // before the migration: only the migrated bitmap knows it
    const r = await h('h1').cli(['migrate', 'bk', '--to', 'h2', '--json'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    await write(h('h2'), 16, 'C');
    const inc = await h('h2').cli(['backup', 'create', 'bk', '--to', repo, '--json', '-q'], 120_000);
    expect(inc.code, inc.stderr).toBe(0);
    const ij = json(inc.stdout);
    expect(ij.reason).toBeUndefined();
    expect(ij.manifest).toMatchObject({ kind: 'incremental', parent: json(full.stdout).manifest.id });
    expect(ij.bytes).toBeLessThan(8 * MiB); // two written MiB (and metadata), not the disk
    // The incremental (on its full) holds exactly what the disk holds now, B and C included.
    const file = path.join(ij.dir, ij.manifest.disks[0].file);
    execFileSync('qemu-img', ['compare', '-U', file, path.join(h('h2').paths.images, 'bk.qcow2')]);
  }, 240_000);
});
