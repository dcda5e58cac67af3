/**
 * Backups (issue #16), alternating A/B in one invocation on a 2 GiB qcow2 disk full of data:
 *   1. full backup (`kvmctl backup create --full` of a stopped VM: qemu-storage-daemon + blockdev-backup)
 *      vs `qemu-img convert -t writeback -O qcow2` of the same disk (baseline; `sync` before each); the backup's own copy time (its
 *      block jobs, manifest jobMs) and its end-to-end time (with the restored-content SHA-256) both;
 *   2. incremental after 1% of the 64 KiB clusters changed (random, qemu-io): time and size vs the full.
 *
 *   node bench/backup.mjs [--quick]      (root; the compiled CLI; ~4 GiB free under /var/tmp)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { load1, makeHome, QUICK, ratio, stats } from './lib.mjs';

const runs = QUICK ? 2 : 3;
const GiB = 1024 ** 3;
const SIZE = 2 * GiB;
const h = makeHome('bk');
const loads = [];
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmt = (s) => `${sec(s.median)} (${sec(s.min)}–${sec(s.max)}, n=${s.n})`;
const mibs = (bytes, ms) => `${(bytes / 1048576 / (ms / 1000)).toFixed(0)} MiB/s`;
h.images = path.join(h.dir, 'data/images');
fs.mkdirSync(h.images, { recursive: true });
try {
  const disk = path.join(h.images, 'big.qcow2');
  execFileSync('qemu-img', ['create', '-f', 'qcow2', disk, String(SIZE)]);
  // Real data in every cluster (a pattern per 256 MiB, so nothing is a zero cluster).
  const fill = [];
  for (let off = 0; off < SIZE; off += 256 * 1048576) fill.push('-c', `write -P ${(off / 1048576 / 256 + 1) % 255} ${off} 256M`);
  execFileSync('qemu-io', ['-f', 'qcow2', ...fill, disk], { stdio: 'ignore' });
  await h.apply(`name: big\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: big.qcow2 }]\n`);
  const repo = path.join(h.images, 'repo');
  const t = { convert: [], backup: [], jobs: [], copy: [], sums: [], inc: [], incJobs: [] };
  const size = { full: 0, inc: 0 };
  for (let i = 0; i < runs; i++) {
    loads.push(load1());
    const out = path.join(h.images, `conv-${i}.qcow2`);
    // Both sides start with nothing dirty, and both flush what they wrote: qemu-img convert's own
    // default cache mode is "unsafe" (no flush at all), the backup's target honours flushes.
    execFileSync('sync');
    let t0 = performance.now();
    execFileSync('qemu-img', ['convert', '-t', 'writeback', '-O', 'qcow2', disk, out]);
    execFileSync('sync');
    t.convert.push(performance.now() - t0);
    fs.rmSync(out);

    loads.push(load1());
    execFileSync('sync');
    t0 = performance.now();
    const full = JSON.parse((await h.cliOk(['backup', 'create', 'big', '--full', '--to', repo, '--json', '-q'], { timeoutMs: 900_000 })).stdout);
    execFileSync('sync');
    t.backup.push(performance.now() - t0);
    t.jobs.push(full.manifest.jobMs);
    t.copy.push(performance.now() - t0 - full.manifest.sumMs);
    t.sums.push(full.manifest.sumMs);
    size.full = full.bytes;

    // 1% of the clusters, at random places.
    const clusters = SIZE / 65536;
    const writes = [];
    for (let k = 0; k < clusters / 100; k++) writes.push('-c', `write -P ${k % 250} ${Math.floor(Math.random() * clusters) * 65536} 64k`);
    execFileSync('qemu-io', ['-f', 'qcow2', ...writes, disk], { stdio: 'ignore' });
    loads.push(load1());
    execFileSync('sync');
    t0 = performance.now();
    const inc = JSON.parse((await h.cliOk(['backup', 'create', 'big', '--to', repo, '--json', '-q'], { timeoutMs: 900_000 })).stdout);
    execFileSync('sync');
    t.inc.push(performance.now() - t0);
    t.incJobs.push(inc.manifest.jobMs);
    if (inc.manifest.kind !== 'incremental') throw new Error(`expected an incremental, got ${inc.manifest.kind}: ${inc.reason}`);
    size.inc = inc.bytes;
    fs.rmSync(repo, { recursive: true, force: true });
  }
  const s = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, stats(v)]));
  console.log(`## Backups of a 2 GiB qcow2 disk full of data (stopped VM; load ${Math.min(...loads)}–${Math.max(...loads)})`);
  console.log(`qemu-img convert + sync (baseline)       ${fmt(s.convert)}   ${mibs(SIZE, s.convert.median)}`);
  console.log(`backup --full, copy + sync (no sums)     ${fmt(s.copy)}   ${mibs(SIZE, s.copy.median)}   throughput vs convert ${ratio(s.convert.median, s.copy.median)}×`);
  console.log(`  of which the block jobs                ${fmt(s.jobs)}`);
  console.log(`  the restored-content SHA-256           ${fmt(s.sums)}`);
  console.log(`backup --full, end to end + sync         ${fmt(s.backup)}   ${ratio(s.convert.median, s.backup.median)}× convert's throughput`);
  console.log(`incremental after 1% changed: jobs       ${fmt(s.incJobs)}   ${ratio(s.incJobs.median, s.jobs.median)}× the full's jobs`);
  console.log(`incremental after 1% changed: end to end ${fmt(s.inc)}   ${ratio(s.inc.median, s.backup.median)}× the full's`);
  console.log(`sizes: full ${(size.full / 1048576).toFixed(0)} MiB, incremental ${(size.inc / 1048576).toFixed(1)} MiB (${ratio(size.inc, size.full)}×)`);
} finally {
  await h.cleanup();
}
