/**
 * Backups and VM snapshots of a VM whose disk is an RBD volume (#21), against the real Ceph of
 * test/helpers/ceph.ts (mon + mgr + memstore OSD in a namespace of its own), the real CLI and the
 * test guest under QEMU (TCG). QEMU, qemu-storage-daemon and kvmctl's rbd/qemu-img calls run in the
 * cluster's namespace (KVMCTL_NETNS), as on a host of the cluster.
 *   - backups: full (blockdev-backup of the rbd node into the repository's qcow2), incremental on
 *     the non-persistent bitmap while the same QEMU runs, incremental via rbd diff after a restart
 *     (ceph-backup-restart.test.ts has the details), a stopped-VM backup through qemu-storage-daemon
 *     opening the volume, verify, restore over the
 *     volume (refusals first, nothing changed), --as NEW (a new volume) and --as NEW --as-files;
 *   - VM snapshots: an RBD snapshot of the volume, revert restores what the guest wrote, rm;
 *   - volumes in the HTTP API (kvmctl serve): list, info, create, resize, rm, refusals as statuses.
 * What the guest wrote is checked from the cluster's side too (`rbd export` as admin).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe } from '../helpers/web-serve.js';

const can = canRunCeph();
let c: Ceph | undefined;
let h: Home;
let paths: Paths;
const MiB = 2 ** 20;
const cli = (args: string[]) => h.cli(args, { env: { KVMCTL_NETNS: c!.netns.name }, timeoutMs: 180_000 });
const ok = async (args: string[]) => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};
type Manifest = { id: string; kind: string; parent?: string; vmState: string; note?: string; frozen: boolean; disks: { id: string; kind: string; via?: string; volume?: string; sha256: string; fileSize: number; virtualSize: number }[] };
type Created = { manifest: Manifest; reason?: string; dir: string };
const backup = async (...extra: string[]) => JSON.parse(await ok(['--json', 'backup', 'create', 'web', '-q', ...extra])) as Created;

/** The guest writes 8 bytes at a 1 MiB offset `at` of /dev/vda (synced: conv=fsync reaches librbd as a flush). */
const write = async (vm: string, text: string, at = 0) => {
  const r = await serialExec(paths, vm, `printf '${text}' | dd of=/dev/vda bs=1M seek=${at} count=1 conv=fsync,notrunc 2>/dev/null; echo rc=$?`);
  expect(r.output).toContain('rc=0');
};
const read = async (vm: string, at = 0) => (await serialExec(paths, vm, `dd if=/dev/vda bs=1M skip=${at} count=1 2>/dev/null | head -c 8; echo`)).output.trim();
/** 8 bytes at MiB offset `at` of a volume, read by the cluster's admin (`rbd export`). */
const volHead = async (vol: string, at = 0) => {
  const out = path.join(c!.dir, `${vol}.${Date.now()}.raw`);
  await c!.rbd('export', '--no-progress', `${c!.pool}/${vol}`, out);
  try {
    return fs.readFileSync(out).subarray(at * MiB, at * MiB + 8).toString();
  } finally {
    fs.rmSync(out, { force: true });
  }
};

beforeAll(async () => {
  if (!can.ok) return;
  c = await startCeph();
  console.log(`ceph start: ${JSON.stringify(c.timings)} ms`);
  h = makeHome();
  paths = resolvePaths(h.env);
  const def = path.join(h.dir, 'ceph1.yaml');
  fs.writeFileSync(def, `kind: storage\nname: ceph1\ntype: rbd\npool: ${c.pool}\nmonitors: [${c.monitor}]\nuser: ${c.user}\nkeyring: ${c.keyring}\n`);
  await ok(['storage', 'define', '-f', def]);
  await ok(['volume', 'create', 'ceph1/web0', '32M']);
  await h.apply('name: web\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - storage: ceph1\n    volume: web0\nstopTimeout: 10\n');
  await ok(['start', 'web', '--wait-for-guest']);
}, 300_000);
afterAll(async () => {
  await h?.cleanup();
  await c?.stop();
}, 60_000);

describe.skipIf(!can.ok)(`backups and VM snapshots of RBD disks on a real Ceph${can.ok ? '' : ` (skipped: ${can.why})`}`, () => {
  const ids: Record<string, string> = {};

  it('a running VM: full backup, then incremental on the in-memory bitmap, then incremental via rbd diff after a restart', async () => {
    await write('web', 'BACKUP-1');
    let t0 = Date.now();
    const full = await backup();
    console.log(`RBD full backup (32 MiB volume, running): ${Date.now() - t0} ms (CLI), ${full.manifest.disks[0]!.fileSize} bytes in the repository`);
    expect(full.manifest.kind).toBe('full');
    expect(full.reason).toMatch(/no earlier backup/);
    expect(full.manifest.disks[0]).toMatchObject({ id: 'disk0', kind: 'full', volume: 'ceph1/web0', virtualSize: 32 * MiB });
    expect(full.manifest.note).toMatch(/agent|crash-consistent/); // the test guest has no agent: said so
    ids.full = full.manifest.id;

    await write('web', 'BACKUP-2', 20);
    t0 = Date.now();
    const inc = await backup();
    console.log(`RBD incremental backup (1 MiB changed): ${Date.now() - t0} ms (CLI), ${inc.manifest.disks[0]!.fileSize} bytes in the repository`);
    expect(inc.reason).toBeUndefined();
    expect(inc.manifest).toMatchObject({ kind: 'incremental', parent: ids.full });
    expect(inc.manifest.disks[0]!.kind).toBe('incremental');
    // Only what the bitmap marked: the 1 MiB written (its 64 KiB-granular clusters), not the volume.
    expect(inc.manifest.disks[0]!.fileSize).toBeLessThan(4 * MiB);
    expect(inc.manifest.disks[0]!.sha256).not.toBe(full.manifest.disks[0]!.sha256);
    ids.inc = inc.manifest.id;

    expect(inc.manifest.disks[0]!.via).toBe('bitmap');
    // A new QEMU has no bitmap: the changes come from rbd diff since the last backup's anchor snapshot.
    await ok(['stop', 'web']);
    await ok(['start', 'web', '--wait-for-guest']);
    const after = JSON.parse(await ok(['--json', 'backup', 'create', 'web', '-q', '--incremental'])) as Created;
    expect(after.manifest.kind).toBe('incremental');
    expect(after.manifest.disks[0]!.via).toBe('rbd-diff');
    expect(after.reason).toBeUndefined();
    expect(after.manifest.disks[0]!.sha256).toBe(inc.manifest.disks[0]!.sha256); // nothing written since
  }, 240_000);

  it('a stopped VM: qemu-storage-daemon opens the volume (in the namespace) and backs it up, incremental via rbd diff; verify passes', async () => {
    await write('web', 'BACKUP-3');
    await ok(['stop', 'web']);
    const t0 = Date.now();
    const b = await backup();
    console.log(`RBD stopped-VM backup (qemu-storage-daemon): ${Date.now() - t0} ms (CLI)`);
    expect(b.manifest).toMatchObject({ kind: 'incremental', vmState: 'stopped' });
    expect(b.manifest.disks[0]!.via).toBe('rbd-diff');
    ids.stopped = b.manifest.id;
    // The key file the daemon read is gone; no daemon is left.
    expect(fs.readdirSync(path.join(h.dir, 'run/backup/web.keys'))).toEqual([]);
    expect(fs.existsSync(path.join(h.dir, 'run/backup/web.qsd.pid'))).toBe(false);
    const v = await cli(['backup', 'verify', 'web']);
    expect(v.code, v.stderr).toBe(0);
  }, 120_000);

  it('restore over the volume: refused without --force and while it has snapshots (nothing changed); with --force it holds the backup', async () => {
    const noForce = await cli(['backup', 'restore', `web@${ids.inc}`]);
    expect(noForce.code).toBe(2);
    expect(noForce.stderr).toMatch(/RESTORE_REFUSED.*ceph1\/web0 exists/);
    await ok(['volume', 'snapshot', 'create', 'ceph1/web0@keep']);
    const withSnap = await cli(['backup', 'restore', `web@${ids.inc}`, '--force']);
    expect(withSnap.code).toBe(2);
    expect(withSnap.stderr).toMatch(/has snapshots \(keep\)/);
    expect(await volHead('web0')).toBe('BACKUP-3');
    await ok(['volume', 'snapshot', 'rm', 'ceph1/web0@keep']);
    const r = JSON.parse(await ok(['--json', 'backup', 'restore', `web@${ids.inc}`, '--force'])) as { disks: { id: string; file: string; replaced: boolean }[] };
    expect(r.disks).toEqual([{ id: 'disk0', file: 'ceph1/web0', replaced: true }]);
    expect(await volHead('web0')).toBe('BACKUP-1');
    expect(await volHead('web0', 20)).toBe('BACKUP-2');
    const names = (JSON.parse(await ok(['--json', 'volume', 'list', 'ceph1'])) as { volume: string }[]).map((x) => x.volume);
    expect(names.filter((n) => /restore-|old-/.test(n))).toEqual([]); // no scratch volume left
    // Running over a running VM is refused.
    await ok(['start', 'web', '--wait-for-guest']);
    expect(await read('web', 20)).toBe('BACKUP-2');
    const running = await cli(['backup', 'restore', `web@${ids.full}`, '--force']);
    expect(running.code).toBe(2);
    expect(running.stderr).toMatch(/VM_RUNNING/);
  }, 180_000);

  it('restore --as NEW makes a new volume NEW-disk0; --as-files an image file; both hold the backup', async () => {
    const r = JSON.parse(await ok(['--json', 'backup', 'restore', `web@${ids.full}`, '--as', 'web2'])) as { disks: { file: string }[] };
    expect(r.disks.map((d) => d.file)).toEqual(['ceph1/web2-disk0']);
    expect(await volHead('web2-disk0')).toBe('BACKUP-1');
    expect(await ok(['cmdline', 'web2'])).toContain('"image":"web2-disk0"');
    const f = JSON.parse(await ok(['--json', 'backup', 'restore', `web@${ids.inc}`, '--as', 'web3', '--as-files'])) as { disks: { file: string }[] };
    expect(f.disks[0]!.file).toBe(path.join(h.images, 'web3-disk0.img'));
    const img = fs.readFileSync(f.disks[0]!.file);
    expect(img.subarray(0, 8).toString()).toBe('BACKUP-1');
    expect(img.subarray(20 * MiB, 20 * MiB + 8).toString()).toBe('BACKUP-2');
    const bad = await cli(['backup', 'restore', `web@${ids.full}`, '--as-files']);
    expect(bad.code).toBe(2);
    // A volume another VM names is never written, even with --force; nothing is created.
    await h.apply('name: squat\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - { storage: ceph1, volume: web5-disk0 }\n');
    const squat = await cli(['backup', 'restore', `web@${ids.full}`, '--as', 'web5', '--force']);
    expect(squat.code).toBe(2);
    expect(squat.stderr).toMatch(/web5-disk0.*VM "squat"/);
    expect((await cli(['status', 'web5'])).code).not.toBe(0);
    expect((await cli(['volume', 'info', 'ceph1/web5-disk0'])).code).not.toBe(0);
    await ok(['rm', 'squat']);
    await ok(['rm', 'web2']);
    await ok(['rm', 'web3']);
    await ok(['volume', 'rm', 'ceph1/web2-disk0']);
  }, 180_000);

  it('VM snapshot of the running RBD VM, revert (VM stopped) restores what the guest wrote, rm', async () => {
    await write('web', 'SNAP-ONE');
    const s = JSON.parse(await ok(['--json', 'snapshot', 'web', 'vs1'])) as { mode: string; disks: { id: string; file: string }[]; frozen: boolean; note?: string };
    expect(s.disks).toEqual([{ id: 'disk0', file: 'ceph1/web0' }]);
    expect(s.frozen).toBe(false);
    expect(s.note).toMatch(/agent/);
    const snaps = JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', 'ceph1/web0'])) as { name: string }[];
    expect(snaps.map((x) => x.name)).toEqual(['vs1']);
    const list = JSON.parse(await ok(['--json', 'snapshot', 'web', '--list'])) as { disks: { id: string; internal: string[] }[] };
    expect(list.disks).toEqual([expect.objectContaining({ id: 'disk0', internal: ['vs1'] })]);
    const again = await cli(['snapshot', 'web', 'vs1']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/SNAPSHOT_EXISTS/);
    await write('web', 'SNAP-TWO');
    const busy = await cli(['snapshot', 'web', 'vs1', '--revert']);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/VM_RUNNING/);
    await ok(['stop', 'web']);
    await ok(['snapshot', 'web', 'vs1', '--revert']);
    expect(await volHead('web0')).toBe('SNAP-ONE');
    await ok(['start', 'web', '--wait-for-guest']);
    expect(await read('web')).toBe('SNAP-ONE');
    await ok(['snapshot', 'web', 'vs1', '--rm']);
    expect(JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', 'ceph1/web0']))).toEqual([]);
    const gone = await cli(['snapshot', 'web', 'vs1', '--rm']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/SNAPSHOT_NOT_FOUND/);
    await ok(['stop', 'web']);
  }, 240_000);

  it('volumes in the HTTP API: create, list, info, resize, rm; mistakes are 4xx, never 500', async () => {
    const srv = await startServe(h, 'tok-vol', 30_000, { KVMCTL_NETNS: c!.netns.name });
    const api = async (method: string, p: string, body?: unknown) => {
      const r = await fetch(`${srv.base}${p}`, { method, headers: { authorization: 'Bearer tok-vol', ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> & { code?: string } };
    };
    try {
      expect((await api('POST', '/api/storage/ceph1/volumes', { volume: 'api0', size: '8M' })).body).toEqual({ volume: 'ceph1/api0', size: 8 * MiB });
      const dup = await api('POST', '/api/storage/ceph1/volumes', { volume: 'api0', size: '8M' });
      expect([dup.status, dup.body.code]).toEqual([409, 'VOLUME_EXISTS']);
      const list = await api('GET', '/api/storage/ceph1/volumes');
      expect((list.body as unknown as { volume: string }[]).map((x) => x.volume)).toContain('api0');
      expect((await api('GET', '/api/storage/ceph1/volumes/api0')).body).toMatchObject({ volume: 'api0', size: 8 * MiB, watchers: [], usedBy: [] });
      expect((await api('POST', '/api/storage/ceph1/volumes/api0/resize', { size: '16M' })).body).toMatchObject({ from: 8 * MiB, to: 16 * MiB });
      const shrink = await api('POST', '/api/storage/ceph1/volumes/api0/resize', { size: '4M' });
      expect([shrink.status, shrink.body.code]).toEqual([400, 'DISK_SHRINK']);
      const inUse = await api('DELETE', '/api/storage/ceph1/volumes/web0');
      expect([inUse.status, inUse.body.code]).toEqual([409, 'VOLUME_IN_USE']);
      const noStorage = await api('GET', '/api/storage/nope/volumes');
      expect([noStorage.status, noStorage.body.code]).toEqual([404, 'STORAGE_NOT_FOUND']);
      const badSize = await api('POST', '/api/storage/ceph1/volumes', { volume: 'api1', size: 'lots' });
      expect(badSize.status).toBe(400);
      expect((await api('DELETE', '/api/storage/ceph1/volumes/api0')).body).toEqual({ removed: 'ceph1/api0' });
      expect((await api('GET', '/api/storage/ceph1/volumes/api0')).status).toBe(404);
    } finally {
      await srv.stop();
    }
  }, 120_000);

  it('two volumes without an agent: the VM is paused for the snapshots (one instant) and runs on; a VM mixing files and volumes is refused', async () => {
    await ok(['volume', 'create', 'ceph1/two-a', '16M']);
    await ok(['volume', 'create', 'ceph1/two-b', '16M']);
    await h.apply('name: two\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - { storage: ceph1, volume: two-a }\n  - { storage: ceph1, volume: two-b }\nstopTimeout: 10\n');
    await ok(['start', 'two', '--wait-for-guest']);
    const s = JSON.parse(await ok(['--json', 'snapshot', 'two', 'both'])) as { disks: { id: string }[]; paused?: boolean; note?: string };
    expect(s.disks.map((d) => d.id)).toEqual(['disk0', 'disk1']);
    expect(s.paused).toBe(true);
    expect(s.note).toMatch(/paused while its 2 volumes were snapshotted/);
    expect((JSON.parse(await ok(['--json', 'status', 'two'])) as { state: string }).state).toBe('running');
    for (const v of ['two-a', 'two-b']) expect((JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', `ceph1/${v}`])) as { name: string }[]).map((x) => x.name)).toEqual(['both']);
    await ok(['snapshot', 'two', 'both', '--rm']);
    await ok(['stop', 'two']);
    await ok(['rm', 'two']);
    await h.apply('name: mixed\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - { storage: ceph1, volume: two-a }\n  - { file: mixed.qcow2, create: { size: 16M } }\n');
    const mixed = await cli(['snapshot', 'mixed', 'm1']);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/VOLUME_DISK_MIXED/);
    expect(JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', 'ceph1/two-a']))).toEqual([]);
  }, 180_000);
});
