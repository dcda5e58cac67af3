import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
  buildInitramfs, moduleDepends, orderModules, readModinfo, withParentDirs, writeCpio, type CpioEntry,
} from '../../../src/guest/initramfs.js';
import { initScript, READY_MARKER } from '../../../src/guest/init-script.js';
import { bzImagePayload, guestCacheRoot, guestRecipe, moduleDevices } from '../../../src/guest/test-guest.js';
import { resolvePaths } from '../../../src/host/paths.js';

type Parsed = { offset: number; ino: number; mode: number; uid: number; gid: number; nlink: number; mtime: number; rmajor: number; rminor: number; name: string; data: Buffer };

/** An independent newc reader, written from the format description (not from the writer). */
function readCpio(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    expect(off % 4).toBe(0);
    expect(buf.toString('ascii', off, off + 6)).toBe('070701');
    const f = (i: number) => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const [ino, mode, uid, gid, nlink, mtime, size, , , rmajor, rminor, nameSize, check] = Array.from({ length: 13 }, (_, i) => f(i));
    expect(check).toBe(0);
    const nameAt = off + 110;
    expect(buf[nameAt + nameSize! - 1]).toBe(0);
    const name = buf.toString('utf8', nameAt, nameAt + nameSize! - 1);
    const dataAt = Math.ceil((nameAt + nameSize!) / 4) * 4;
    const data = buf.subarray(dataAt, dataAt + size!);
    out.push({ offset: off, ino: ino!, mode: mode!, uid: uid!, gid: gid!, nlink: nlink!, mtime: mtime!, rmajor: rmajor!, rminor: rminor!, name, data });
    off = Math.ceil((dataAt + size!) / 4) * 4;
    if (name === 'TRAILER!!!') break;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('newc cpio writer', () => {
  const entries: CpioEntry[] = [
    { type: 'dir', name: 'bin' },
    { type: 'file', name: 'bin/busybox', data: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]), mode: 0o755 },
    { type: 'symlink', name: 'bin/sh', target: 'busybox' },
    { type: 'char', name: 'dev/console', major: 5, minor: 1 },
    { type: 'file', name: '/init', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { type: 'file', name: 'empty', data: '' },
  ];

  it('round-trips names, types, modes, data, symlink targets and device numbers', () => {
    const parsed = readCpio(writeCpio(entries, { mtime: 1234 }));
    expect(parsed.map((p) => p.name)).toEqual(['bin', 'bin/busybox', 'bin/sh', 'dev/console', 'init', 'empty', 'TRAILER!!!']);
    const by = Object.fromEntries(parsed.map((p) => [p.name, p]));
    expect(by['bin']!.mode).toBe(S_IFDIR | 0o755);
    expect(by['bin/busybox']!.mode).toBe(S_IFREG | 0o755);
    expect([...by['bin/busybox']!.data]).toEqual([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]);
    expect(by['bin/sh']!.mode & S_IFMT).toBe(S_IFLNK);
    expect(by['bin/sh']!.data.toString()).toBe('busybox');
    expect(by['dev/console']!.mode).toBe(S_IFCHR | 0o600);
    expect([by['dev/console']!.rmajor, by['dev/console']!.rminor]).toEqual([5, 1]);
    expect(by['init']!.data.toString()).toBe('#!/bin/sh\necho hi\n');
    expect(by['empty']!.data.length).toBe(0);
    for (const p of parsed.slice(0, -1)) {
      expect([p.uid, p.gid, p.mtime]).toEqual([0, 0, 1234]);
      expect(p.ino).toBeGreaterThan(0);
    }
    expect(new Set(parsed.slice(0, -1).map((p) => p.ino)).size).toBe(parsed.length - 1);
  });

  it('pads every header and every data block to 4 bytes, for all name and data lengths', () => {
    for (let n = 1; n <= 8; n++) {
      for (let d = 0; d <= 8; d++) {
        const parsed = readCpio(writeCpio([{ type: 'file', name: 'x'.repeat(n), data: Buffer.alloc(d, 0x61) }]));
        expect(parsed[0]!.data.length).toBe(d);
      }
    }
  });

  it('is deterministic and gzip-compresses to the same archive', () => {
    const a = buildInitramfs(entries, { mtime: 7 });
    const b = buildInitramfs(entries, { mtime: 7 });
    expect(a.equals(b)).toBe(true);
    expect([a[0], a[1]]).toEqual([0x1f, 0x8b]);
    expect(gunzipSync(a).equals(writeCpio(entries, { mtime: 7 }))).toBe(true);
    expect(buildInitramfs(entries, { compress: 'none' }).subarray(0, 6).toString()).toBe('070701');
  });

  it('refuses bad names and duplicates', () => {
    expect(() => writeCpio([{ type: 'dir', name: '../etc' }])).toThrow(/bad cpio entry name/);
    expect(() => writeCpio([{ type: 'dir', name: '' }])).toThrow(/bad cpio entry name/);
    expect(() => writeCpio([{ type: 'dir', name: 'a' }, { type: 'dir', name: '/a/' }])).toThrow(/duplicate/);
  });

  it('adds missing parent directories before their children', () => {
    const names = withParentDirs([{ type: 'file', name: 'etc/acpi/PWRF/00000080', data: 'x' }, { type: 'dir', name: 'etc' }]).map((e) => e.name);
    expect(names).toEqual(['etc', 'etc/acpi', 'etc/acpi/PWRF', 'etc/acpi/PWRF/00000080']);
    // "etc" was listed later by the caller, but is already covered: no duplicate is produced
    expect(() => writeCpio(withParentDirs([{ type: 'file', name: 'a/b', data: '' }, { type: 'dir', name: 'c' }]))).not.toThrow();
    const kept = withParentDirs([{ type: 'file', name: 'x/y', data: '' }, { type: 'dir', name: 'x', mode: 0o700 }]);
    expect(kept[0]).toEqual({ type: 'dir', name: 'x', mode: 0o700 });
    expect(() => writeCpio(withParentDirs([{ type: 'file', name: 'f', data: '1' }, { type: 'file', name: 'f', data: '2' }]))).toThrow(/duplicate/);
  });
});

/** A minimal ELF64 little-endian relocatable with a .modinfo section, as a .ko has. */
function fakeKo(modinfo: string[]): Buffer {
  const info = Buffer.from(modinfo.map((s) => `${s}\0`).join(''), 'latin1');
  const shstr = Buffer.from('\0.modinfo\0.shstrtab\0', 'latin1');
  const infoAt = 64;
  const strAt = infoAt + info.length;
  const shoff = Math.ceil((strAt + shstr.length) / 8) * 8;
  const buf = Buffer.alloc(shoff + 3 * 64);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; // 64-bit
  buf[5] = 1; // little-endian
  buf.writeBigUInt64LE(BigInt(shoff), 0x28);
  buf.writeUInt16LE(64, 0x3a);
  buf.writeUInt16LE(3, 0x3c);
  buf.writeUInt16LE(2, 0x3e);
  info.copy(buf, infoAt);
  shstr.copy(buf, strAt);
  const sh = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 64;
    buf.writeUInt32LE(name, at);
    buf.writeBigUInt64LE(BigInt(offset), at + 0x18);
    buf.writeBigUInt64LE(BigInt(size), at + 0x20);
  };
  sh(1, 1, infoAt, info.length);
  sh(2, 10, strAt, shstr.length);
  return buf;
}

describe('kernel module metadata and load order', () => {
  it('reads depends= from .modinfo', () => {
    const info = readModinfo(fakeKo(['license=GPL', 'depends=virtio,virtio_ring', 'name=virtio_net', 'alias=a', 'alias=b']));
    expect(moduleDepends(info)).toEqual(['virtio', 'virtio_ring']);
    expect(info?.get('alias')).toEqual(['a', 'b']);
    expect(moduleDepends(readModinfo(fakeKo(['depends=', 'name=virtio_ring'])))).toEqual([]);
    expect(readModinfo(Buffer.from('not an elf file at all, just some bytes that are long enough to check'))).toBeUndefined();
  });

  const deps = new Map<string, string[]>([
    ['virtio_ring', []],
    ['virtio', []],
    ['virtio_pci', ['virtio', 'virtio_ring', 'virtio_pci_modern_dev']],
    ['virtio_pci_modern_dev', []],
    ['virtio_rng', ['virtio', 'virtio_ring']],
    ['sr_mod', ['scsi_mod', 'cdrom']],
    ['scsi_mod', ['scsi_common']],
    ['scsi_common', []],
    ['cdrom', []],
    ['a', ['b']],
    ['b', ['a']],
  ]);

  it('keeps the wanted order when it already respects dependencies', () => {
    const { order, missing } = orderModules(['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio-rng'], (k) => deps.get(k));
    expect(order).toEqual(['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_rng']);
    expect(missing).toEqual([]);
  });

  it('pulls unlisted dependencies in just before their first user, and reports unknown modules', () => {
    const { order, missing } = orderModules(['virtio_pci', 'sr_mod', 'nosuch', 'cdrom'], (k) => deps.get(k));
    expect(order).toEqual(['virtio', 'virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci', 'scsi_common', 'scsi_mod', 'cdrom', 'sr_mod']);
    expect(missing).toEqual(['nosuch']);
  });

  it('terminates on a dependency cycle', () => {
    expect(orderModules(['a'], (k) => deps.get(k)).order.sort()).toEqual(['a', 'b']);
  });
});

describe('/init text', () => {
  it('loads the modules in the given order and prints the ready marker on its own line', () => {
    const s = initScript({ modules: ['virtio_ring.ko', 'virtio.ko', 'ptp_kvm.ko'], optional: ['ptp_kvm.ko'], kernelVersion: '6.1.0-x' });
    expect(s.startsWith('#!/bin/busybox sh\n')).toBe(true);
    expect(s).toContain('for w in virtio_ring.ko virtio.ko ptp_kvm.ko; do');
    expect(s).toContain(`\necho ${READY_MARKER}\n`);
    expect(s).toContain('mount -t 9p -o trans=virtio,version=9p2000.L');
    expect(() => initScript({ modules: ['x;reboot'], kernelVersion: 'v' })).toThrow(/bad module file name/);
  });
  it('loads a device driver at boot only when the VM has that virtio device, the rest after the ready marker', () => {
    const s = initScript({ modules: ['virtio.ko', '9p.ko', 'ptp_kvm.ko'], devices: { '9p.ko': '0x0009', 'ptp_kvm.ko': 'later' }, kernelVersion: 'v' });
    expect(s).toContain('for w in virtio.ko 9p.ko:0x0009 ptp_kvm.ko:later; do');
    expect(s).toContain('grep -qx "$d" /sys/bus/virtio/devices/*/device');
    expect(s.indexOf('( for m in $LATER; do load "$m"; done ) &')).toBeGreaterThan(s.indexOf(`echo ${READY_MARKER}`));
    expect(() => initScript({ modules: ['a.ko'], devices: { 'a.ko': '$(reboot)' }, kernelVersion: 'v' })).toThrow(/bad device id/);
  });
  it('a dependency takes the device of the modules that need it, when they agree', () => {
    const deps: Record<string, string[]> = { '9p': ['netfs', '9pnet'], '9pnet_virtio': ['9pnet'], virtio_scsi: ['scsi_mod'], sr_mod: ['scsi_mod', 'cdrom'] };
    const m = moduleDevices(['virtio', 'netfs', '9pnet', '9pnet_virtio', '9p', 'scsi_mod', 'cdrom', 'virtio_scsi', 'sr_mod'], (k) => deps[k] ?? []);
    expect(m.get('9pnet')).toBe('0x0009');
    expect(m.get('netfs')).toBe('0x0009');
    expect(m.has('scsi_mod')).toBe(false); // sr_mod (always) needs it too
    expect(m.has('cdrom')).toBe(false);
    expect(m.has('virtio')).toBe(false);
  });
});

describe('bzImage payload', () => {
  it('finds the compressed kernel from the setup header', () => {
    const img = Buffer.alloc(4096);
    img[0x1f1] = 3; // setup sectors → protected-mode code at (3+1)*512 = 2048
    img.write('HdrS', 0x202, 'latin1');
    img.writeUInt16LE(0x20f, 0x206);
    img.writeUInt32LE(100, 0x248);
    img.writeUInt32LE(10, 0x24c);
    Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]).copy(img, 2148);
    const p = bzImagePayload(img);
    expect(p.format).toBe('xz');
    expect(p.payload.length).toBe(10);
    img.writeUInt16LE(0x206, 0x206);
    expect(() => bzImagePayload(img)).toThrow(/too old/);
    expect(() => bzImagePayload(Buffer.alloc(4096))).toThrow(/not a bzImage/);
  });
});

describe('examples/tiny.yaml', () => {
  it('is a valid definition that boots the built-in test guest with no NICs or disks', async () => {
    const fs = await import('node:fs');
    const { parseDefinitions } = await import('../../../src/definition/load.js');
    const [doc, ...rest] = parseDefinitions(fs.readFileSync(new URL('../../../examples/tiny.yaml', import.meta.url), 'utf8'), 'tiny.yaml');
    expect(rest).toEqual([]);
    expect(doc!.issues).toEqual([]);
    const spec = doc!.spec as import('../../../src/definition/vm.js').VmSpec;
    expect(spec).toMatchObject({ name: 'tiny', kernel: { builtin: 'test-guest' }, memory: 256 * 1024 * 1024, cpu: { count: 1 }, machine: { type: 'q35' }, nics: [], disks: [] });
  });
});

describe('test guest cache location and recipe', () => {
  it('uses KVMCTL_GUEST_CACHE when set, else <data>/guest', () => {
    const paths = resolvePaths({ KVMCTL_HOME: '/tmp/kh' });
    expect(guestCacheRoot(paths, {})).toBe('/tmp/kh/data/guest');
    expect(guestCacheRoot(paths, { KVMCTL_GUEST_CACHE: '/var/tmp/g' })).toBe('/var/tmp/g');
  });
  it('has a stable recipe id (cached builds from another recipe are rebuilt)', () => {
    expect(guestRecipe()).toMatch(/^[0-9a-f]{16}$/);
    expect(guestRecipe()).toBe(guestRecipe());
  });
});
