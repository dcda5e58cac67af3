/**
 * `kvmctl disk resize` of a running VM's disk goes through QEMU (QMP block_resize): the test guest
 * sees the new size in /sys/block/vdb/size at once. A base image under the running VM's overlay
 * is refused and left as it was; shrinking needs --shrink and says what is lost.
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
beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  await run(['qemu-img', 'create', '-f', 'qcow2', path.join(h.images, 'base.qcow2'), '16M']);
  await run(['qemu-img', 'create', '-f', 'qcow2', '-b', path.join(h.images, 'base.qcow2'), '-F', 'qcow2', path.join(h.images, 'top.qcow2')]);
  await h.apply(`name: live
memory: 128M
kernel: { builtin: test-guest }
disks:
  - file: data.qcow2
    create: { size: 32M }
  - file: top.qcow2
stopTimeout: 10
`);
  const s = await h.cli(['start', 'live', '--wait-for-guest']);
  expect(s.code, s.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await h?.cleanup();
});

const sectors = async (dev: string) => Number((await serialExec(paths, 'live', `cat /sys/block/${dev}/size`)).output.trim());

describe('disk resize of a running VM', () => {
  it('grows the disk live: the guest sees the new size', async () => {
    expect(await sectors('vda')).toBe((32 * MiB) / 512);
    const r = await h.cli(['disk', 'resize', path.join(h.images, 'data.qcow2'), '48M']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`(live, in running VM "live"): 32 MiB → 48 MiB`);
    expect(await sectors('vda')).toBe((48 * MiB) / 512);
  }, 60_000);

  it('refuses to shrink without --shrink, naming both sizes', async () => {
    const r = await h.cli(['disk', 'resize', path.join(h.images, 'data.qcow2'), '16M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--shrink/);
    expect(await sectors('vda')).toBe((48 * MiB) / 512);
  });

  it('refuses to resize the base under the running overlay; the base is unchanged', async () => {
    const base = path.join(h.images, 'base.qcow2');
    const before = fs.statSync(base);
    const r = await h.cli(['disk', 'resize', base, '64M']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/DISK_IS_BACKING|backing/);
    const after = fs.statSync(base);
    expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
    expect(await sectors('vdb')).toBe((16 * MiB) / 512);
  });
});
