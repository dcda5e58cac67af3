/**
 * RBD incremental backups across QEMU restarts (#21, docs/backup.md "RBD volumes"), against the real
 * Ceph of test/helpers/ceph.ts (one harness for the file), the real CLI and the test guest (TCG).
 *   - every backup leaves one anchor snapshot kvmctl-bk-ID on the volume (the older one goes);
 *   - after a VM restart the next backup is incremental via rbd-diff (rbd diff since the anchor),
 *     small, and what it holds equals the volume at that instant (qemu-img compare of the chain
 *     and of a restore against the anchor exported by Ceph's admin), verify passes;
 *   - the same QEMU: via bitmap; a stopped VM (qemu-storage-daemon): via rbd-diff too;
 *   - anchors are kvmctl's: hidden from VM snapshot lists, a reserved name, dropped by a rollback
 *     (then the next backup is full, saying why), by prune (a left-over one) and by volume rm
 *     (which they never block; a user's snapshot still does).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

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
type Disk = { id: string; kind: string; via?: string; anchor?: string; diffBytes?: number; sha256: string; fileSize: number };
type Created = { manifest: { id: string; kind: string; parent?: string; disks: Disk[] }; reason?: string; dir: string };
const backup = async (...extra: string[]) => {
  const t0 = Date.now();
  const b = JSON.parse(await ok(['--json', 'backup', 'create', 'web', '-q', ...extra])) as Created;
  return { ...b, ms: Date.now() - t0, d: b.manifest.disks[0]! };
};
const write = async (text: string, atMiB: number) => {
  const r = await serialExec(paths, 'web', `printf '${text}' | dd of=/dev/vda bs=1M seek=${atMiB} count=1 conv=fsync,notrunc 2>/dev/null; echo rc=$?`);
  expect(r.output).toContain('rc=0');
};
const snaps = async (vol = 'web0') => (JSON.parse(await c!.rbd('snap', 'ls', '--format', 'json', `${c!.pool}/${vol}`)) as { name: string }[]).map((s) => s.name);
/** The backup's chain equals the volume at its anchor (exported by Ceph's admin), and so does a restore of it. */
const sameAsAnchor = async (b: Created) => {
  const raw = path.join(c!.dir, `anchor-${b.manifest.id}.raw`);
  await c!.rbd('export', '--no-progress', `${c!.pool}/web0@${b.manifest.disks[0]!.anchor}`, raw);
  try {
    const cmp = await run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw', path.join(b.dir, 'disk0.qcow2'), raw], { allowFailure: true });
    expect(cmp.exitCode, cmp.stdout + cmp.stderr).toBe(0);
    const name = `r${b.manifest.id.replace(/[^0-9]/g, '').slice(-6)}`;
    const r = JSON.parse(await ok(['--json', 'backup', 'restore', `web@${b.manifest.id}`, '--as', name, '--as-files'])) as { disks: { file: string }[] };
    const cmp2 = await run(['qemu-img', 'compare', '-F', 'raw', r.disks[0]!.file, raw], { allowFailure: true });
    expect(cmp2.exitCode, cmp2.stdout + cmp2.stderr).toBe(0);
    await ok(['rm', name]);
    fs.rmSync(r.disks[0]!.file, { force: true });
  } finally {
    fs.rmSync(raw, { force: true });
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
  await ok(['volume', 'create', 'ceph1/web0', '64M']);
  await h.apply('name: web\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks:\n  - storage: ceph1\n    volume: web0\nstopTimeout: 10\n');
  await ok(['start', 'web', '--wait-for-guest']);
}, 300_000);
afterAll(async () => {
  await h?.cleanup();
  await c?.stop();
}, 60_000);

describe.skipIf(!can.ok)(`RBD incrementals across QEMU restarts on a real Ceph${can.ok ? '' : ` (skipped: ${can.why})`}`, () => {
  const ids: string[] = [];

  it('full, restart, incremental via rbd-diff (small, equal to the volume), then via bitmap in the same QEMU; one anchor at a time', async () => {
    // 24 MiB of data, so that a full copy and a diff differ visibly.
    const fill = await serialExec(paths, 'web', 'dd if=/dev/urandom of=/dev/vda bs=1M count=24 conv=fsync 2>/dev/null; echo rc=$?', 120_000);
    expect(fill.output).toContain('rc=0');
    const full = await backup();
    expect(full.manifest.kind).toBe('full');
    expect(full.d).toMatchObject({ kind: 'full', via: 'full', anchor: `kvmctl-bk-${full.manifest.id}` });
    expect(await snaps()).toEqual([full.d.anchor]);
    ids.push(full.manifest.id);

    await write('AFTER-01', 5); // inside the data (an object the anchor has)
    await write('AFTER-02', 40); // a new object
    await ok(['stop', 'web']);
    await ok(['start', 'web', '--wait-for-guest']);
    const inc = await backup('--incremental');
    console.log(`after a restart: full ${full.d.fileSize} bytes (${full.ms} ms CLI) → rbd-diff incremental ${inc.d.fileSize} bytes (${inc.ms} ms CLI, diff marked ${inc.d.diffBytes} bytes)`);
    expect(inc.reason).toBeUndefined();
    expect(inc.manifest).toMatchObject({ kind: 'incremental', parent: full.manifest.id });
    expect(inc.d).toMatchObject({ kind: 'incremental', via: 'rbd-diff' });
    expect(inc.d.diffBytes).toBeGreaterThan(0);
    expect(inc.d.diffBytes).toBeLessThanOrEqual(4 * 65536); // two 4 KiB writes, rounded to 64 KiB (a new object's extent may be longer)
    expect(inc.d.fileSize).toBeLessThan(full.d.fileSize / 10);
    expect(inc.d.sha256).not.toBe(full.d.sha256);
    expect(await snaps()).toEqual([inc.d.anchor]); // the older anchor went
    await sameAsAnchor(inc);
    ids.push(inc.manifest.id);

    await write('AFTER-03', 10);
    const bm = await backup();
    expect(bm.d).toMatchObject({ kind: 'incremental', via: 'bitmap' });
    expect(bm.d.fileSize).toBeLessThan(full.d.fileSize / 10);
    await sameAsAnchor(bm);
    ids.push(bm.manifest.id);
    const v = await cli(['backup', 'verify', 'web']);
    expect(v.code, v.stderr).toBe(0);
  }, 300_000);

  it('a stopped VM (qemu-storage-daemon) is incremental via rbd-diff too; anchors are no VM snapshots and their name is reserved', async () => {
    await write('STOPPED1', 30);
    await ok(['stop', 'web']);
    const b = await backup();
    console.log(`stopped VM: rbd-diff incremental ${b.d.fileSize} bytes (${b.ms} ms CLI)`);
    expect(b.manifest.kind).toBe('incremental');
    expect(b.d.via).toBe('rbd-diff');
    await sameAsAnchor(b);
    ids.push(b.manifest.id);
    const list = JSON.parse(await ok(['--json', 'snapshot', 'web', '--list'])) as { disks: { internal: string[] }[] };
    expect(list.disks[0]!.internal).toEqual([]);
    const vs = JSON.parse(await ok(['--json', 'volume', 'snapshot', 'list', 'ceph1/web0'])) as { name: string; backupAnchor?: boolean }[];
    expect(vs).toEqual([expect.objectContaining({ name: b.d.anchor, backupAnchor: true })]);
    for (const args of [['volume', 'snapshot', 'create', 'ceph1/web0@kvmctl-bk-mine'], ['snapshot', 'web', 'kvmctl-bk-mine']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/SNAPSHOT_NAME_RESERVED/);
    }
  }, 180_000);

  it('prune removes the anchor of a backup it removes; a rollback drops the anchors (next backup full, saying why)', async () => {
    // An anchor a failed cleanup left behind on the oldest backup: prune takes it with the backup.
    await c!.rbd('snap', 'create', `${c!.pool}/web0@kvmctl-bk-${ids[0]}`);
    const p = JSON.parse(await ok(['--json', 'backup', 'prune', 'web', '--keep-last', '2'])) as { removed: string[]; anchors?: { removed: string[] } };
    expect([...p.removed].sort()).toEqual(ids.slice(0, 2));
    expect(p.anchors?.removed).toEqual([`ceph1/web0@kvmctl-bk-${ids[0]}`]);
    expect(await snaps()).toEqual([`kvmctl-bk-${ids[3]}`]);

    await ok(['snapshot', 'web', 'mine']);
    await ok(['snapshot', 'web', 'mine', '--revert']);
    expect(await snaps()).toEqual(['mine']);
    await ok(['snapshot', 'web', 'mine', '--rm']);
    const after = await backup();
    expect(after.manifest.kind).toBe('full');
    expect(after.reason).toMatch(/no longer has the snapshot kvmctl-bk-/);
  }, 180_000);

  it('volume rm: a user snapshot blocks it, kvmctl anchors never do (they go with the volume)', async () => {
    await ok(['rm', 'web']);
    expect((await snaps()).filter((s) => s.startsWith('kvmctl-bk-'))).toHaveLength(1);
    await ok(['volume', 'snapshot', 'create', 'ceph1/web0@keep']);
    const blocked = await cli(['volume', 'rm', 'ceph1/web0']);
    expect(blocked.code).toBe(2);
    expect(blocked.stderr).toMatch(/VOLUME_HAS_SNAPSHOTS.*1 snapshot\(s\): keep/);
    expect((await snaps()).length).toBe(2); // nothing removed
    await ok(['volume', 'snapshot', 'rm', 'ceph1/web0@keep']);
    await ok(['volume', 'rm', 'ceph1/web0']);
    expect(JSON.parse(await ok(['--json', 'volume', 'list', 'ceph1']))).toEqual([]);
  }, 120_000);
});
