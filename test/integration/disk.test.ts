/**
 * The disk layer against real qemu-img, qemu-io and QEMU: allocation of every format × prealloc,
 * resize, convert with progress, internal snapshots with a data check, clones, check, rm, and the
 * refusals that keep data safe (overwrite, in use by a running QEMU, interrupt, full disk).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../src/errors.js';
import { run, spawnDetached } from '../../src/host/exec.js';
import type { Paths } from '../../src/host/paths.js';
import { qemuEscape } from '../../src/qemu/escape.js';
import * as images from '../../src/disk/images.js';
import { qemuLocksOn } from '../../src/disk/safety.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';

const M = 1024 ** 2;
let dir: string;
const p = (name: string) => path.join(dir, name);
const allocated = (f: string) => fs.statSync(f).blocks * 512;
const apparent = (f: string) => fs.statSync(f).size;
const leftovers = (d = dir) => fs.readdirSync(d).filter((n) => n.includes('.kvmctl-tmp-'));

async function qemuIo(img: string, fmt: string, cmd: string) {
  return run(['qemu-io', '-f', fmt, '-c', cmd, img], { allowFailure: true });
}
async function rawInfo(img: string): Promise<Record<string, unknown>> {
  return JSON.parse((await run(['qemu-img', 'info', '--output=json', img])).stdout) as Record<string, unknown>;
}
async function sha(f: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(f)) h.update(c as Buffer);
  return h.digest('hex');
}
/** The KvmError a promise rejects with. */
async function failure(pr: Promise<unknown>): Promise<KvmError> {
  try {
    await pr;
  } catch (e) {
    expect(e).toBeInstanceOf(KvmError);
    return e as KvmError;
  }
  throw new Error('expected a KvmError, but it succeeded');
}

/** A bare QEMU (TCG, paused) with IMG attached to a virtio-blk device: it holds QEMU's image lock. */
async function holdImage(img: string, fmt: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const { pid, exited } = await spawnDetached(
    ['qemu-system-x86_64', '-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S',
      '-drive', `file=${qemuEscape(img)},if=none,id=d0,format=${fmt}`, '-device', 'virtio-blk-pci,drive=d0'],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
  };
  // QEMU takes its image locks one file at a time: the overlay's write lock is visible before its
  // backing file is opened and locked. Wait until every image of the chain is locked, so a test
  // never acts on a base that QEMU has not opened yet.
  const chain = [path.resolve(img)];
  for (let b = images.qcow2BackingOf(img); b && !b.includes(':'); b = images.qcow2BackingOf(chain[chain.length - 1]!)) {
    chain.push(path.resolve(path.dirname(chain[chain.length - 1]!), b));
  }
  const ready = () => qemuLocksOn(img).writer && chain.every((f) => qemuLocksOn(f).open);
  const t0 = Date.now();
  while (!ready()) {
    if (Date.now() - t0 > 15_000) {
      await stop();
      throw new Error(`QEMU (pid ${pid}) did not lock ${img}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid, stop };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvd-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('create: every format × preallocation gives the right allocation', () => {
  // [format, prealloc, expectation on (allocated, apparent)] for a 64M image
  const table: [string, 'off' | 'metadata' | 'falloc' | 'full', (alloc: number, size: number) => void][] = [
    ['raw', 'off', (a, s) => { expect(s).toBe(64 * M); expect(a).toBeLessThan(1 * M); }], // sparse
    ['raw', 'falloc', (a, s) => { expect(s).toBe(64 * M); expect(a).toBeGreaterThanOrEqual(64 * M); }],
    ['raw', 'full', (a, s) => { expect(s).toBe(64 * M); expect(a).toBeGreaterThanOrEqual(64 * M); }],
    ['qcow2', 'off', (a, s) => { expect(s).toBeLessThan(1 * M); expect(a).toBeLessThan(1 * M); }],
    ['qcow2', 'metadata', (a, s) => { expect(s).toBeGreaterThan(64 * M); expect(a).toBeLessThan(2 * M); }], // big file, tiny allocation
    ['qcow2', 'falloc', (a, s) => { expect(s).toBeGreaterThan(64 * M); expect(a).toBeGreaterThanOrEqual(64 * M); }],
    ['qcow2', 'full', (a, s) => { expect(s).toBeGreaterThan(64 * M); expect(a).toBeGreaterThanOrEqual(64 * M); }],
  ];
  it.each(table)('%s with preallocation=%s', async (format, prealloc, expectAlloc) => {
    const f = p(`alloc-${prealloc}.${format}`);
    const seen: number[] = [];
    const r = await images.createImage({ path: f, size: 64 * M, format, prealloc }, { onProgress: (x) => seen.push(x) });
    expect(r.info).toMatchObject({ format, 'virtual-size': 64 * M });
    expectAlloc(allocated(f), apparent(f));
    if (prealloc === 'full') expect(seen.at(-1)).toBe(100);
    expect(leftovers()).toEqual([]);
  });

  it('refuses preallocation=metadata for raw (bad input, no file)', async () => {
    const e = await failure(images.createImage({ path: p('meta.raw'), size: 64 * M, format: 'raw', prealloc: 'metadata' }));
    expect([e.code, e.exit]).toEqual(['DISK_BAD_PREALLOC', 2]);
    expect(fs.existsSync(p('meta.raw'))).toBe(false);
  });

  it('qcow2 cluster size is applied', async () => {
    const r = await images.createImage({ path: p('cl.qcow2'), size: 64 * M, format: 'qcow2', clusterSize: 128 * 1024 });
    expect(r.info['cluster-size']).toBe(128 * 1024);
  });
});

describe('overwrite protection', () => {
  it('never overwrites without force; with force it replaces', async () => {
    const f = p('keep.raw');
    await images.createImage({ path: f, size: 1 * M });
    await qemuIo(f, 'raw', 'write -P 0x5a 0 64k');
    const before = await sha(f);
    const e = await failure(images.createImage({ path: f, size: 2 * M }));
    expect([e.code, e.exit]).toEqual(['DISK_EXISTS', 2]);
    expect(e.message).toContain(f);
    expect(await sha(f)).toBe(before);
    const r = await images.createImage({ path: f, size: 2 * M, force: true });
    expect(r.info['virtual-size']).toBe(2 * M);
    expect(leftovers()).toEqual([]);
  });

  it('ensureDisk creates a definition disk once (relative to paths.images), never overwrites', async () => {
    const imagesDir = p('images');
    const paths = { images: imagesDir } as Paths;
    const disk = { file: 'vm1/root.qcow2', interface: 'virtio', readOnly: false, create: { size: 32 * M, prealloc: 'off' } } as const;
    const a = await images.ensureDisk(disk as never, paths);
    expect(a).toEqual({ path: path.join(imagesDir, 'vm1/root.qcow2'), created: true });
    expect((await rawInfo(a.path)).format).toBe('qcow2'); // format from the extension
    await qemuIo(a.path, 'qcow2', 'write -P 0x77 0 64k');
    const b = await images.ensureDisk(disk as never, paths);
    expect(b.created).toBe(false);
    expect((await qemuIo(a.path, 'qcow2', 'read -P 0x77 0 64k')).exitCode).toBe(0);
  });
});

describe('info', () => {
  it('kvmctl disk info --json prints the fields of qemu-img info --output=json', async () => {
    const base = p('info-base.qcow2');
    await images.createImage({ path: base, size: 64 * M, format: 'qcow2' });
    await images.snapshotCreate(base, 'first');
    const ours = (await images.inspectImage(base)).info;
    expect(ours).toEqual(await rawInfo(base));
  });
});

describe('resize', () => {
  it('grows with +SIZE, refuses to shrink without --shrink, shrinks with it', async () => {
    const f = p('rs.qcow2');
    await images.createImage({ path: f, size: 64 * M, format: 'qcow2' });
    expect((await images.resizeImage(f, '+32M')).to).toBe(96 * M);
    expect((await rawInfo(f))['virtual-size']).toBe(96 * M);
    const e = await failure(images.resizeImage(f, '32M'));
    expect([e.code, e.exit]).toEqual(['DISK_SHRINK_REFUSED', 2]);
    expect((await rawInfo(f))['virtual-size']).toBe(96 * M);
    const r = await images.resizeImage(f, '-64M', { shrink: true });
    expect(r.to).toBe(32 * M);
    expect(r.warnings.join()).toMatch(/shrinking/);
    expect((await rawInfo(f))['virtual-size']).toBe(32 * M);
  });
});

describe('convert', () => {
  it('reports progress rising to 100 and produces an identical image', async () => {
    const src = p('conv-src.raw');
    await images.createImage({ path: src, size: 64 * M });
    await qemuIo(src, 'raw', 'write -P 0xcd 0 48M');
    const seen: number[] = [];
    const r = await images.convertImage({ src, dst: p('conv-dst.qcow2'), format: 'qcow2', rateLimit: 64 * M }, { onProgress: (x) => seen.push(x) });
    expect(r.info.format).toBe('qcow2');
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.at(-1)).toBe(100);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect((await run(['qemu-img', 'compare', '-f', 'raw', '-F', 'qcow2', src, r.path], { allowFailure: true })).exitCode).toBe(0);
  });

  it('refuses to convert in place and to overwrite DST without force', async () => {
    const src = p('conv-src.raw');
    expect((await failure(images.convertImage({ src, dst: src, format: 'raw' }))).code).toBe('DISK_CONVERT_IN_PLACE');
    expect((await failure(images.convertImage({ src, dst: p('conv-dst.qcow2'), format: 'qcow2' }))).code).toBe('DISK_EXISTS');
  });

  it('an abort half-way leaves the source intact and no destination', async () => {
    const src = p('conv-src.raw');
    const before = await sha(src);
    const ac = new AbortController();
    const seen: number[] = [];
    const pr = images.convertImage({ src, dst: p('aborted.qcow2'), format: 'qcow2', rateLimit: 8 * M }, {
      signal: ac.signal,
      onProgress: (x) => {
        seen.push(x);
        if (x > 0) ac.abort();
      },
    });
    const e = await failure(pr);
    expect(e.code).toBe('INTERRUPTED');
    expect(seen.at(-1)!).toBeLessThan(100);
    expect(fs.existsSync(p('aborted.qcow2'))).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(await sha(src)).toBe(before);
  });
});

describe('internal snapshots', () => {
  it('create, list, revert (data check with qemu-io), delete', async () => {
    const f = p('snap.qcow2');
    await images.createImage({ path: f, size: 64 * M, format: 'qcow2' });
    const s = await images.snapshotCreate(f, 'clean');
    expect(s.name).toBe('clean');
    expect((await qemuIo(f, 'qcow2', 'write -P 0xab 0 64k')).exitCode).toBe(0);
    expect((await qemuIo(f, 'qcow2', 'read -P 0xab 0 64k')).stdout).not.toMatch(/verification failed/i);
    expect((await images.snapshotList(f)).map((x) => x.name)).toEqual(['clean']);
    expect((await failure(images.snapshotCreate(f, 'clean'))).code).toBe('SNAPSHOT_EXISTS');
    await images.snapshotRevert(f, 'clean');
    const back = await qemuIo(f, 'qcow2', 'read -P 0 0 64k');
    expect(back.exitCode).toBe(0);
    expect(back.stdout + back.stderr).not.toMatch(/verification failed/i);
    await images.snapshotDelete(f, 'clean');
    expect(await images.snapshotList(f)).toEqual([]);
    expect((await failure(images.snapshotRevert(f, 'clean'))).code).toBe('SNAPSHOT_NOT_FOUND');
  });

  it('refuses raw images with a clear message', async () => {
    const e = await failure(images.snapshotCreate(p('conv-src.raw'), 'x'));
    expect([e.code, e.exit]).toEqual(['SNAPSHOT_UNSUPPORTED', 2]);
    expect(e.message).toMatch(/raw image.*need qcow2/);
  });
});

describe('clone, check, rm', () => {
  it('clones as an overlay with a relative backing file, or as a full copy', async () => {
    const base = p('cbase.qcow2');
    await images.createImage({ path: base, size: 64 * M, format: 'qcow2' });
    await qemuIo(base, 'qcow2', 'write -P 0x11 0 1M');
    const o = await images.cloneImage({ base, dst: p('cover.qcow2') });
    expect(o.overlay).toBe(true);
    expect(o.info).toMatchObject({ 'backing-filename': 'cbase.qcow2', 'backing-filename-format': 'qcow2', 'virtual-size': 64 * M });
    expect((await qemuIo(o.path, 'qcow2', 'read -P 0x11 0 1M')).stdout).not.toMatch(/verification failed/i);
    await qemuIo(o.path, 'qcow2', 'write -P 0x22 0 64k');
    expect((await qemuIo(base, 'qcow2', 'read -P 0x11 0 64k')).stdout).not.toMatch(/verification failed/i); // base untouched
    const full = await images.cloneImage({ base: o.path, dst: p('cfull.qcow2'), full: true });
    expect(full.info['backing-filename']).toBeUndefined();
    expect((await run(['qemu-img', 'compare', o.path, full.path], { allowFailure: true })).exitCode).toBe(0);
  });

  it('check: clean qcow2, raw has nothing to check, a crashed lazy-refcount image is reported', async () => {
    const ok = await images.checkImage(p('cbase.qcow2'));
    expect(ok).toMatchObject({ supported: true, status: 'clean' });
    expect(await images.checkImage(p('conv-src.raw'))).toMatchObject({ supported: false, format: 'raw' });
    const d = p('dirty.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', d, '64M']);
    await run(['qemu-io', '-c', 'write -P 1 0 1M', '-c', 'abort', d], { allowFailure: true });
    const bad = await images.checkImage(d);
    expect(bad.supported && bad.status).toBe('corrupt');
  });

  it('rm needs force and refuses a backing file that an overlay next to it needs', async () => {
    const f = p('gone.raw');
    await images.createImage({ path: f, size: 1 * M });
    expect((await failure(images.removeImage(f))).code).toBe('DISK_RM_NEEDS_FORCE');
    expect(fs.existsSync(f)).toBe(true);
    const e = await failure(images.removeImage(p('cbase.qcow2'), { force: true }));
    expect(e.code).toBe('DISK_IS_BACKING');
    expect(e.message).toContain('cover.qcow2');
    await images.removeImage(f, { force: true });
    expect(fs.existsSync(f)).toBe(false);
  });
});

describe('in use by a running QEMU', () => {
  it('refuses resize, rm, create --force, snapshot and revert of a locked image; info still works', async () => {
    const raw = p('busy.raw');
    const q = p('busy.qcow2');
    await images.createImage({ path: raw, size: 64 * M });
    await images.createImage({ path: q, size: 64 * M, format: 'qcow2' });
    await images.snapshotCreate(q, 'before');
    const a = await holdImage(raw, 'raw');
    const b = await holdImage(q, 'qcow2');
    try {
      for (const [what, op] of [
        ['resize', () => images.resizeImage(raw, '+1M')],
        ['rm', () => images.removeImage(raw, { force: true })],
        ['create --force', () => images.createImage({ path: raw, size: 1 * M, force: true })],
        ['convert --force onto it', () => images.convertImage({ src: p('conv-src.raw'), dst: raw, format: 'raw', force: true })],
        ['convert from it', () => images.convertImage({ src: q, dst: p('copy-of-busy.qcow2'), format: 'qcow2' })],
        ['snapshot create', () => images.snapshotCreate(q, 'during')],
        ['snapshot revert', () => images.snapshotRevert(q, 'before')],
        ['snapshot delete', () => images.snapshotDelete(q, 'before')],
      ] as const) {
        const e = await failure(op());
        expect(e.code, what).toBe('DISK_IN_USE');
      }
      expect(fs.existsSync(raw)).toBe(true);
      expect(fs.existsSync(p('copy-of-busy.qcow2'))).toBe(false);
      expect((await rawInfo(raw))['virtual-size']).toBe(64 * M);
      const i = await images.inspectImage(q);
      expect(i.inUse).toBe(true);
      expect(i.info.snapshots?.map((s) => s.name)).toEqual(['before']);
      // the VM layer's hook names the VM
      const named = await failure(images.resizeImage(raw, '+1M', { inUseBy: (f) => (f === raw ? 'web' : undefined) }));
      expect(named.message).toContain('VM "web"');
      expect(named.hint).toContain('kvmctl stop web');
    } finally {
      await a.stop();
      await b.stop();
    }
    // free again
    expect((await images.resizeImage(raw, '+1M')).to).toBe(65 * M);
  });

  it('a base used read-only by a running overlay can get another overlay but cannot be deleted', async () => {
    const base = p('shared-base.qcow2');
    await images.createImage({ path: base, size: 64 * M, format: 'qcow2' });
    const ov1 = await images.cloneImage({ base, dst: p('vm1.qcow2') });
    const q = await holdImage(ov1.path, 'qcow2');
    try {
      expect(qemuLocksOn(base)).toEqual({ open: true, writer: false });
      const ov2 = await images.cloneImage({ base, dst: p('vm2.qcow2') });
      expect(ov2.info['backing-filename']).toBe('shared-base.qcow2');
      const e = await failure(images.removeImage(base, { force: true }));
      expect(e.code).toBe('DISK_IN_USE');
      expect(fs.existsSync(base)).toBe(true);
    } finally {
      await q.stop();
    }
  });
});

describe('resize of a base under a running overlay', () => {
  it('is refused naming the overlay; the base is unchanged (size and mtime)', async () => {
    const base = p('rs-base.qcow2');
    await images.createImage({ path: base, size: 64 * M, format: 'qcow2' });
    const ov = await images.cloneImage({ base, dst: p('rs-ov.qcow2') });
    const q = await holdImage(ov.path, 'qcow2');
    try {
      const before = fs.statSync(base);
      const e = await failure(images.resizeImage(base, '+64M'));
      expect(e.code).toBe('DISK_IS_BACKING');
      expect(e.exit).toBe(2);
      expect(e.message).toContain(ov.path);
      const after = fs.statSync(base);
      expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
      expect((await images.inspectImage(base)).info['virtual-size']).toBe(64 * M);
    } finally {
      await q.stop();
    }
  });
});

describe('full disk', () => {
  const canMount = process.getuid?.() === 0;
  let small: string;
  let mounted = false;
  beforeAll(async () => {
    if (!canMount) return;
    small = p('tiny-fs');
    fs.mkdirSync(small);
    const r = await run(['mount', '-t', 'tmpfs', '-o', 'size=8M', 'tmpfs', small], { allowFailure: true });
    mounted = r.exitCode === 0;
  });
  afterAll(async () => {
    if (mounted) await run(['umount', small], { allowFailure: true });
  });

  // Needs root to mount an 8M tmpfs.
  it.skipIf(!canMount)('create: DISK_FULL up front, and on ENOSPC; nothing under the final name', async () => {
    if (!mounted) return expect.fail('tmpfs mount failed');
    const f = path.join(small, 'big.raw');
    const pre = await failure(images.createImage({ path: f, size: 64 * M, prealloc: 'full' }));
    expect(pre.code).toBe('DISK_FULL');
    expect(pre.message).toMatch(/needs 64\.0 MiB/);
    for (const prealloc of ['full', 'falloc'] as const) {
      const e = await failure(images.createImage({ path: f, size: 64 * M, prealloc, checkFreeSpace: false }));
      expect(e.code, prealloc).toBe('DISK_FULL');
      expect(fs.existsSync(f)).toBe(false); // qemu-img itself leaves a 0-byte file behind; kvmctl does not
      expect(leftovers(small)).toEqual([]);
    }
    const c = await failure(images.convertImage({ src: p('conv-src.raw'), dst: path.join(small, 'c.raw'), format: 'raw', checkFreeSpace: false }));
    expect(c.code).toBe('DISK_FULL');
    expect(fs.readdirSync(small)).toEqual([]);
  });
});

describe('CLI', () => {
  // The CLI tests run the compiled kvmctl (npm run build).
  const built = fs.existsSync(path.join(ROOT, 'dist/cli/commands/disk.js'));
  let home: Home;
  beforeAll(() => {
    home = makeHome();
  });
  afterAll(async () => {
    await home.cleanup();
  });

  it.skipIf(!built)('info --json equals qemu-img info --output=json; exit 2 for refused overwrite', async () => {
    const f = p('cli.qcow2');
    const c = await home.cli(['disk', 'create', f, '64M', '--format', 'qcow2']);
    expect(c.code, c.stderr).toBe(0);
    const i = await home.cli(['disk', 'info', f, '--json']);
    expect(JSON.parse(i.stdout)).toEqual(await rawInfo(f));
    const again = await home.cli(['disk', 'create', f, '64M']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/DISK_EXISTS/);
  });

  it.skipIf(!built)('SIGINT during convert leaves the source intact and no destination', async () => {
    const src = p('conv-src.raw');
    const before = await sha(src);
    const dst = p('sigint.qcow2');
    const child = home.spawnCli(['disk', 'convert', src, dst, '--format', 'qcow2', '--rate-limit', '8M']);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const t0 = Date.now();
    while (!leftovers().some((n) => n.startsWith('.sigint.qcow2.'))) {
      if (Date.now() - t0 > 10_000) throw new Error(`no temp file appeared; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    const code = await closed;
    expect(code).toBe(1);
    expect(stderr).toMatch(/INTERRUPTED: SIGINT/);
    expect(fs.existsSync(dst)).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(await sha(src)).toBe(before);
  });

  it.skipIf(!built)('rm of a disk a QEMU uses exits 1 naming the lock', async () => {
    const f = p('cli-busy.raw');
    await images.createImage({ path: f, size: 8 * M });
    const q = await holdImage(f, 'raw');
    try {
      const r = await home.cli(['disk', 'rm', f, '--force']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/DISK_IN_USE: cannot delete .*cli-busy\.raw: it is in use \(a QEMU process has it open/);
      expect(fs.existsSync(f)).toBe(true);
    } finally {
      await q.stop();
    }
  });
});
