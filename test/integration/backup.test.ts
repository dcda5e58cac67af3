/**
 * Backups on real QEMU with the test guest: data written inside the guest, a full backup, more
 * data, an incremental; each point restored as a new VM matches what the guest saw (sha256sum of
 * /dev/vda in the guest); incrementals survive a clean restart and qemu-io writes to the stopped
 * VM's disk (persistent bitmaps); after kill -9 of QEMU the next backup is full and says why;
 * verify catches a flipped byte; prune keeps every remaining backup restorable. No networking.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let paths: Paths;
const MiB = 1024 * 1024;
type M = { id: string; kind: string; parent?: string; disks: { id: string; kind: string; sha256: string; fileSize: number }[] };

async function guestSh(cmd: string): Promise<string> {
  const r = await serialExec(paths, 'bk', cmd, 90_000);
  expect(r.status, r.output).toBe(0);
  return r.output.trim();
}
/** Write `mib` MiB of random data at `atMiB` inside the guest, flushed; the guest's sha256 of the whole disk after. */
async function writeInGuest(atMiB: number, mib: number): Promise<string> {
  await guestSh(`dd if=/dev/urandom of=/dev/vda bs=1M seek=${atMiB} count=${mib} conv=fsync 2>/dev/null && sync`);
  return (await guestSh('sha256sum /dev/vda')).split(/\s+/)[0]!;
}
async function backup(args: string[] = []): Promise<{ m: M; reason?: string }> {
  const r = await h.cli(['backup', 'create', 'bk', '--json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { manifest: M; reason?: string };
  return { m: j.manifest, reason: j.reason };
}
async function hostSum(image: string): Promise<string> {
  const tmp = path.join(h.images, `sum-${Date.now()}.raw`);
  await run(['qemu-img', 'convert', '-U', '-O', 'raw', image, tmp]);
  const out = (await run(['sha256sum', tmp])).stdout.split(/\s+/)[0]!;
  fs.rmSync(tmp);
  return out;
}
async function restoredSum(ref: string, as: string): Promise<string> {
  const r = await h.cli(['backup', 'restore', ref, '--as', as, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { disks: { file: string }[] };
  return hostSum(j.disks[0]!.file);
}

const points: { id: string; guestSum: string }[] = [];

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  await h.apply(`name: bk
memory: 128M
kernel: { builtin: test-guest }
disks:
  - id: data
    file: bk-data.qcow2
    create: { size: 32M }
stopTimeout: 10
`);
  const s = await h.cli(['start', 'bk', '--wait-for-guest']);
  expect(s.code, s.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  // A storage daemon left by a failed backup (ours only: its pidfile in this home).
  const dir = path.join(h.dir, 'run/backup');
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((x) => x.endsWith('.qsd.pid')) : []) {
    const pid = Number(fs.readFileSync(path.join(dir, f), 'utf8'));
    try {
      if (fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-storage-daemon')) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await h?.cleanup();
});

describe('backups of a running and a stopped VM', () => {
  it('full, then incremental: each point restores as a new VM with what the guest saw then', async () => {
    const sumA = await writeInGuest(0, 4);
    const full = await backup();
    expect(full.m.kind).toBe('full');
    expect(full.reason).toMatch(/no earlier backup/);
    expect(full.m.disks[0]!.sha256).toBe(sumA);
    points.push({ id: full.m.id, guestSum: sumA });

    const sumB = await writeInGuest(16, 2);
    const inc = await backup();
    expect(inc.m.kind).toBe('incremental');
    expect(inc.m.parent).toBe(full.m.id);
    expect(inc.m.disks[0]!.sha256).toBe(sumB);
    // Only what changed: ~2 MiB of data (+ qcow2 metadata), not the full's 4 MiB.
    expect(inc.m.disks[0]!.fileSize).toBeLessThan(3 * MiB);
    expect(full.m.disks[0]!.fileSize).toBeGreaterThan(4 * MiB);
    points.push({ id: inc.m.id, guestSum: sumB });

    expect(await restoredSum(`bk@${full.m.id}`, 'r1')).toBe(sumA);
    expect(await restoredSum(`bk@${inc.m.id}`, 'r2')).toBe(sumB);
    // The new VMs are real definitions with their own disks.
    const l = await h.cli(['list', '--json']);
    expect((JSON.parse(l.stdout) as { name: string }[]).map((v) => v.name).sort()).toEqual(['bk', 'r1', 'r2']);
  }, 240_000);

  it('refuses to restore over the running VM, and over an existing disk without --force; nothing changes', async () => {
    const disk = path.join(h.images, 'bk-data.qcow2');
    const before = fs.statSync(disk).mtimeMs;
    const r = await h.cli(['backup', 'restore', `bk@${points[0]!.id}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/VM_RUNNING/);
    const r2 = await h.cli(['backup', 'restore', `bk@${points[0]!.id}`, '--as', 'r1']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/VM_EXISTS/);
    expect(fs.statSync(disk).mtimeMs).toBe(before);
  });

  it('after a clean stop/start the next backup is still incremental and its size tracks the change', async () => {
    expect((await h.cli(['stop', 'bk'])).code).toBe(0);
    const s = await h.cli(['start', 'bk', '--wait-for-guest']);
    expect(s.code, s.stderr).toBe(0);
    const sumC = await writeInGuest(8, 1);
    const inc = await backup();
    expect(inc.m.kind).toBe('incremental');
    expect(inc.m.disks[0]!.sha256).toBe(sumC);
    expect(inc.m.disks[0]!.fileSize).toBeLessThan(2 * MiB);
    points.push({ id: inc.m.id, guestSum: sumC });
  }, 120_000);

  it('writes made with qemu-io to the stopped VM disk are tracked: the backup of the stopped VM is incremental', async () => {
    expect((await h.cli(['stop', 'bk'])).code).toBe(0);
    const disk = path.join(h.images, 'bk-data.qcow2');
    await run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 24M 512k', disk]);
    const want = await hostSum(disk);
    const inc = await backup();
    expect(inc.m.kind).toBe('incremental');
    expect(inc.m.disks[0]!.sha256).toBe(want);
    expect(inc.m.disks[0]!.fileSize).toBeLessThan(1.5 * MiB);
    points.push({ id: inc.m.id, guestSum: want });
    // No storage daemon is left running.
    expect(fs.readdirSync(path.join(h.dir, 'run/backup')).filter((f) => f.endsWith('.pid'))).toEqual([]);
  }, 120_000);

  it('after kill -9 of QEMU the next backup is full and says why', async () => {
    const s = await h.cli(['start', 'bk', '--wait']);
    expect(s.code, s.stderr).toBe(0);
    const pid = Number(fs.readFileSync(path.join(h.dir, 'run/vms/bk/qemu.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    const r = await h.cli(['backup', 'create', 'bk', '--incremental']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/full backup/);
    expect(r.stderr).toMatch(/full backup, not incremental: the dirty bitmap of disk data is inconsistent: QEMU did not exit cleanly/);
  }, 120_000);

  it('verify passes on every backup, and detects a flipped byte in a copy of the repository', async () => {
    const ok = await h.cli(['backup', 'verify', 'bk']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout.match(/: ok$/gm)).toHaveLength(5);

    const copy = path.join(h.images, 'repo-copy');
    fs.cpSync(path.join(h.dir, 'data/backups'), copy, { recursive: true });
    const file = path.join(copy, 'bk', points[0]!.id, 'data.qcow2');
    const map = JSON.parse((await run(['qemu-img', 'map', '--output=json', file])).stdout) as { data: boolean; offset?: number }[];
    const off = map.find((e) => e.data && e.offset !== undefined)!.offset! + 1000;
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, off);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, off);
    fs.closeSync(fd);
    const bad = await h.cli(['backup', 'verify', `bk@${points[0]!.id}`, '--to', copy]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/BACKUP_CORRUPT: .*disk data: content SHA-256 is [0-9a-f]{64}, the manifest says/);
  }, 180_000);

  it('prune keeps the newest and merges what it drops: every kept backup still restores to its point', async () => {
    const r = await h.cli(['backup', 'prune', 'bk', '--keep-last', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as { kept: { id: string }[]; removed: string[] };
    expect(p.kept).toHaveLength(2);
    expect(p.removed).toHaveLength(3);
    const l = JSON.parse((await h.cli(['backup', 'list', 'bk', '--json'])).stdout) as M[];
    expect(l.map((m) => m.id)).toEqual(p.kept.map((k) => k.id).reverse());
    const v = await h.cli(['backup', 'verify', 'bk']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // The two newest are the stopped-VM incremental (qemu-io point) and the full after kill -9.
    const qemuIo = points[3]!;
    expect(l[0]!.id).toBe(qemuIo.id);
    expect(l[0]!.kind).toBe('full'); // merged down: its chain was all removed
    expect(await restoredSum(`bk@${qemuIo.id}`, 'r4')).toBe(qemuIo.guestSum);
  }, 180_000);
});

describe('the backup routes of kvmctl serve', () => {
  it('list, create, verify, restore as a new VM; user mistakes are 4xx, never 500', async () => {
    const { buildServer } = await import('../../src/api/server.js');
    const s = await buildServer({ paths, reconcileMs: 60_000 });
    try {
      const inj = (method: 'GET' | 'POST', url: string, payload?: object) => s.app.inject({ method, url, ...(payload ? { payload } : {}) });
      const list = await inj('GET', '/api/vms/bk/backups');
      expect(list.statusCode, list.body).toBe(200);
      const before = (list.json() as M[]).length;
      const c = await inj('POST', '/api/vms/bk/backups', { mode: 'incremental' });
      expect(c.statusCode, c.body).toBe(200);
      const made = c.json() as { manifest: M; reason?: string };
      expect(made.manifest.kind).toBe('incremental');
      expect(((await inj('GET', '/api/vms/bk/backups')).json() as M[]).length).toBe(before + 1);
      const v = await inj('POST', `/api/vms/bk/backups/${made.manifest.id}/verify`);
      expect(v.statusCode, v.body).toBe(200);
      expect(v.json()).toMatchObject({ ok: true, problems: [] });
      const r = await inj('POST', '/api/vms/bk/backups/latest/restore', { as: 'r6' });
      expect(r.statusCode, r.body).toBe(200);
      expect(await hostSum((r.json() as { disks: { file: string }[] }).disks[0]!.file)).toBe(made.manifest.disks[0]!.sha256);
      // Mistakes: an existing name, a running VM, no such backup, a bad ID, no keep rule.
      expect((await inj('POST', '/api/vms/bk/backups/latest/restore', { as: 'r6' })).statusCode).toBe(409);
      expect((await inj('POST', '/api/vms/bk/backups/latest/restore', {})).statusCode).toBe(409);
      expect((await inj('POST', '/api/vms/nope/backups/latest/verify')).statusCode).toBe(404);
      expect((await inj('POST', '/api/vms/bk/backups/x;rm/verify')).statusCode).toBe(400);
      expect((await inj('POST', '/api/vms/bk/backups/prune', {})).statusCode).toBe(400);
    } finally {
      await s.close();
    }
  }, 120_000);
});

describe('scheduled backups (backup.schedule, run by kvmctl serve)', () => {
  it('runs when due, prunes with backup.keep, records the last result; the serve route lists the task', async () => {
    await run(['qemu-img', 'create', '-f', 'qcow2', path.join(h.images, 'sched.qcow2'), '16M']);
    await h.apply('name: sched\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: sched.qcow2 }]\nbackup: { schedule: "every 1h", keep: { last: 2 } }\n');
    const { BackupScheduler } = await import('../../src/backup/scheduler.js');
    const { readVm } = await import('../../src/definition/store.js');
    const s = new BackupScheduler(paths, (n) => readVm(paths, n));
    const t0 = new Date();
    const task = s.tasks(t0).find((t) => t.vm === 'sched')!;
    expect(new Date(task.next).getTime() - t0.getTime()).toBeGreaterThan(3_590_000);
    expect(await s.tick(t0)).toEqual([]); // not due yet
    const at = (h: number) => new Date(t0.getTime() + h * 3_600_000 + 60_000);
    const r1 = await s.tick(at(1));
    expect(r1).toMatchObject([{ ok: true, kind: 'full' }]);
    await new Promise((r) => setTimeout(r, 1100)); // backup IDs are to the second
    expect(await s.tick(at(2))).toMatchObject([{ ok: true, kind: 'incremental' }]);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await s.tick(at(3))).toMatchObject([{ ok: true, kind: 'incremental', pruned: 1 }]);
    const l = JSON.parse((await h.cli(['backup', 'list', 'sched', '--json'])).stdout) as M[];
    expect(l).toHaveLength(2);
    expect((await h.cli(['backup', 'verify', 'sched'])).code).toBe(0);
    const cli = await h.cli(['backup', 'schedule']);
    expect(cli.stdout).toMatch(/sched\s+every 1h\s+next \S+\s+last \S+ ok \S+ \(incremental\)/);
    const { buildServer } = await import('../../src/api/server.js');
    const srv = await buildServer({ paths, reconcileMs: 60_000 });
    try {
      const t = await srv.app.inject({ method: 'GET', url: '/api/backups/tasks' });
      expect(t.statusCode, t.body).toBe(200);
      expect(t.json()).toMatchObject([{ vm: 'sched', schedule: 'every 1h', running: false, last: { ok: true, kind: 'incremental' } }]);
    } finally {
      await srv.close();
    }
  }, 180_000);
});
