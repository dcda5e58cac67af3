/**
 * Storage roots and the path check of VM definitions, on real files in a temp home: a file
 * outside, `../`, a symlink inside a root pointing out, device nodes, sockets, shares of the
 * host's system dirs, paths inside extraArgs; and what `storage add` refuses.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readHostConfig } from '../../../src/host/host-config.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { addStorage, realish, removeStorage, storageRoots } from '../../../src/host/storage-roots.js';
import { validateVm } from '../../../src/definition/load.js';
import { extraArgPaths, vmPathIssues } from '../../../src/vm/path-check.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kpc-'));
const paths = resolvePaths({ KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: path.join(home, 'gcache') });
const env = { KVMCTL_GUEST_CACHE: path.join(home, 'gcache') };
fs.mkdirSync(paths.images, { recursive: true });
fs.writeFileSync(path.join(paths.images, 'ok.raw'), '');
fs.symlinkSync('/etc/passwd', path.join(paths.images, 'escape.raw'));
const vmsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kpc-vms-'));
afterAll(() => {
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(vmsDir, { recursive: true, force: true });
});

const files = (v: unknown) => (Array.isArray(v) ? v.map((f) => (typeof f === 'string' ? { file: f } : f)) : v);
const issues = (extra: Record<string, unknown>) =>
  vmPathIssues(validateVm({ name: 'v', kernel: { builtin: 'test-guest' }, ...extra, disks: files(extra.disks ?? []) }), paths, storageRoots(paths, env));
const only = (extra: Record<string, unknown>) => {
  const i = issues(extra);
  expect(i).toHaveLength(1);
  return i[0]!;
};

describe('path check of a definition', () => {
  it('accepts files in the images dir (relative or absolute) and in the guest cache', () => {
    fs.mkdirSync(path.join(home, 'gcache/test-guest'), { recursive: true });
    expect(issues({ disks: ['ok.raw', path.join(paths.images, 'new.qcow2')], kernel: { path: path.join(home, 'gcache/test-guest/vmlinux') } })).toEqual([]);
  });
  it('/etc/passwd as a disk: outside, with the field and the roots', () => {
    const i = only({ disks: ['/etc/passwd'] });
    expect(i.path).toBe('disks[0].file');
    expect(i.message).toContain('outside the storage roots');
    expect(i.message).toContain(paths.images);
  });
  it('../ out of the images dir: names the resolved path', () => {
    const i = only({ disks: ['../../x.img'] });
    expect(i.message).toContain(`resolves to ${path.resolve(paths.images, '../../x.img')}`);
  });
  it('a symlink inside a root pointing outside is outside', () => {
    const i = only({ cdroms: ['escape.raw'] });
    expect(i.path).toBe('cdroms[0].file');
    expect(i.message).toContain('resolves to /etc/passwd');
  });
  it('device nodes: a char device is never an image; a block device only when listed', () => {
    expect(only({ disks: ['/dev/null'] }).message).toContain('device node');
    const blk = fs.readdirSync('/dev').find((d) => /^loop\d+$/.test(d) && fs.statSync(`/dev/${d}`).isBlockDevice());
    if (blk) {
      expect(only({ disks: [`/dev/${blk}`] }).message).toContain(`kvmctl storage add /dev/${blk}`);
      addStorage(paths, `/dev/${blk}`);
      expect(issues({ disks: [`/dev/${blk}`] })).toEqual([]);
      removeStorage(paths, `/dev/${blk}`);
    }
  });
  it('a directory given as a disk is refused', () => {
    expect(only({ disks: [paths.images] }).message).toContain('is a directory');
  });
  it('9p share of / and /etc: refused unless allowSystemPath; other shares must be in a root', () => {
    expect(only({ shares: [{ path: '/', tag: 'r' }] }).message).toContain('allowSystemPath');
    expect(only({ shares: [{ path: '/etc', tag: 'e', driver: 'virtiofs' }] }).path).toBe('shares[0].path');
    expect(issues({ shares: [{ path: '/etc', tag: 'e', allowSystemPath: true }] })).toEqual([]);
    expect(only({ shares: [{ path: vmsDir, tag: 's' }] }).message).toContain(`kvmctl storage add ${vmsDir}`);
  });
  it('sockets: in the runtime dir or a root, never over an existing file', () => {
    expect(issues({ qmp: { socket: path.join(paths.run, 'x.sock') } })).toEqual([]);
    expect(only({ monitor: { socket: '/etc/passwd' } }).message).toContain('would delete it');
    expect(only({ display: { type: 'vnc', vnc: { socket: '/tmp/kpc-vnc.sock' } } }).path).toBe('display.vnc.socket');
  });
  it('kernel and initrd must be absolute; rng only from entropy devices', () => {
    expect(only({ kernel: { path: 'vmlinuz' } }).message).toContain('absolute');
    expect(only({ rng: { source: '/dev/mem' } }).message).toContain('not an entropy device');
    expect(issues({ rng: { source: '/dev/urandom' } })).toEqual([]);
  });
  it('absolute paths inside extraArgs are checked too', () => {
    expect(extraArgPaths(['-drive', 'file=/etc/shadow,if=virtio', '/x/y,z=1', '-m', '1G'])).toEqual(['/etc/shadow', '/x/y']);
    expect(only({ extraArgs: ['-drive', 'file=/etc/shadow,if=virtio'] }).path).toBe('extraArgs (/etc/shadow)');
    expect(issues({ extraArgs: ['-object', 'rng-random,id=r,filename=/dev/urandom'] })).toEqual([]);
  });
  it('every problem at once', () => {
    expect(issues({ disks: ['/etc/passwd', '../x'], shares: [{ path: '/', tag: 'r' }], monitor: { socket: '/etc/hosts' } })).toHaveLength(4);
  });
});

describe('storage add / rm', () => {
  it('adds a directory once, by its real path; then its files pass', () => {
    const link = path.join(home, 'vms-link');
    fs.symlinkSync(vmsDir, link);
    expect(addStorage(paths, link)).toMatchObject({ kind: 'dir', real: realish(vmsDir).real, added: true });
    expect(addStorage(paths, vmsDir).added).toBe(false);
    expect(readHostConfig(paths).storage.roots).toEqual([realish(vmsDir).real]);
    expect(issues({ disks: [path.join(vmsDir, 'a.raw')], shares: [{ path: vmsDir, tag: 's' }] })).toEqual([]);
    removeStorage(paths, vmsDir);
    expect(issues({ disks: [path.join(vmsDir, 'a.raw')] })).toHaveLength(1);
  });
  it('refuses system dirs, too-broad dirs, a dir holding kvmctl config, files and missing paths', () => {
    for (const p of ['/', '/etc', '/usr/lib', '/proc']) expect(() => addStorage(paths, p)).toThrow(/system directory/);
    for (const p of ['/var', '/home', '/tmp']) expect(() => addStorage(paths, p)).toThrow(/too broad/);
    expect(() => addStorage(paths, home)).toThrow(/kvmctl's own configuration/);
    expect(() => addStorage(paths, '/etc/hostname')).toThrow(/neither a directory nor a block device/);
    expect(() => addStorage(paths, path.join(home, 'missing'))).toThrow(/does not exist/);
    expect(() => removeStorage(paths, paths.images)).toThrow(/always a root/);
    expect(() => removeStorage(paths, '/srv/none')).toThrow(/not an added storage root/);
    expect(readHostConfig(paths).storage.roots).toEqual([]);
  });
  it('a broken host.json is a coded error, not a crash', () => {
    fs.writeFileSync(path.join(paths.config, 'host.json'), '{"storage": {"roots": ["relative"]}}');
    expect(() => storageRoots(paths)).toThrow(/storage.roots must be a list of absolute paths/);
    fs.rmSync(path.join(paths.config, 'host.json'));
  });
});
