/**
 * The destination's images for a live migration with local disks (src/cluster/migrate-disks.ts),
 * made with the real qemu-img in a temp images dir: same size, format and cluster size as the
 * source's; an existing file is never replaced (and nothing is made then); a copy that cannot fit
 * is refused before any image is made.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTargetImages } from '../../../src/cluster/migrate-disks.js';
import { resolvePaths, type Paths } from '../../../src/host/paths.js';

let dir: string;
let paths: Paths;
const info = (f: string) => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', f], { encoding: 'utf8' }));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmig-'));
  paths = resolvePaths({ KVMCTL_HOME: dir });
  fs.mkdirSync(paths.images, { recursive: true });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!fs.existsSync('/usr/bin/qemu-img'))('destination images for a live disk copy', () => {
  it('makes each image with the source size, format and cluster size, relative paths in its own images dir', async () => {
    const made = await createTargetImages([
      { id: 'root', file: 'vm/root.qcow2', format: 'qcow2', size: 64 << 20, clusterSize: 131072, allocated: 1 << 20 },
      { id: 'data', file: 'data.raw', format: 'raw', size: 32 << 20 },
    ], paths);
    expect(made).toEqual([path.join(paths.images, 'vm/root.qcow2'), path.join(paths.images, 'data.raw')]);
    expect(info(made[0]!)).toMatchObject({ format: 'qcow2', 'virtual-size': 64 << 20, 'cluster-size': 131072 });
    expect(info(made[1]!)).toMatchObject({ format: 'raw', 'virtual-size': 32 << 20 });
  });

  it('never replaces a file that is there, and leaves nothing behind when it refuses half-way', async () => {
    fs.writeFileSync(path.join(paths.images, 'b.raw'), 'someone else\'s data');
    await expect(createTargetImages([
      { id: 'a', file: 'a.raw', format: 'raw', size: 1 << 20 },
      { id: 'b', file: 'b.raw', format: 'raw', size: 1 << 20 },
    ], paths)).rejects.toMatchObject({ code: 'MIGRATION_REFUSED', message: expect.stringMatching(/b\.raw already exists/) });
    expect(fs.existsSync(path.join(paths.images, 'a.raw'))).toBe(false);
    expect(fs.readFileSync(path.join(paths.images, 'b.raw'), 'utf8')).toBe('someone else\'s data');
  });

  it('refuses a copy that cannot fit before making anything', async () => {
    await expect(createTargetImages([{ id: 'a', file: 'a.raw', format: 'raw', size: 2 ** 50, allocated: 2 ** 50 }], paths)).rejects.toMatchObject({ code: 'DISK_FULL' });
    expect(fs.readdirSync(paths.images)).toEqual([]);
  });
});
