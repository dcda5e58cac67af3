/**
 * The storage parts of the pure argv builder and of the VM storage layer: the top of a snapshot
 * chain replaces a disk's file, the cloud-init seed is a read-only virtio disk, virtiofs shares
 * need a socket (the daemon is started by start), install puts the ISO in the first CD-ROM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { vmSchema, type VmInput } from '../../../src/definition/vm.js';
import { withInstallMedium } from '../../../src/vm/storage.js';

const rt = (d: string) => ({ dir: d, qmp: `${d}/qmp.sock`, serial: `${d}/serial.sock`, serialLog: `${d}/serial.log`, pidfile: `${d}/qemu.pid`, vnc: `${d}/vnc.sock` });
const ctx = (extra: Partial<ArgvContext> = {}): ArgvContext => ({ runtime: rt('/run/k/vms/v'), imagesDir: '/img', attachments: [], ...extra });
const vm = (x: Partial<VmInput>) => vmSchema.parse({ name: 'v', ...x });
const line = (vmIn: Partial<VmInput>, c: Partial<ArgvContext> = {}) => buildArgv(vm(vmIn), TCG_HOST_FACTS, ctx(c)).argv.join(' ');

describe('argv: storage', () => {
  it('opens the top of a snapshot chain instead of the definition file, as qcow2', () => {
    const d = { disks: [{ file: 'base.raw' }, { file: 'data.qcow2', id: 'data' }] };
    expect(line(d)).toContain('-drive file=/img/base.raw,format=raw,if=virtio,media=disk,id=disk0');
    const l = line(d, { diskFiles: { disk0: { file: '/img/base.raw.s1.qcow2', format: 'qcow2' } } });
    expect(l).toContain('-drive file=/img/base.raw.s1.qcow2,format=qcow2,if=virtio,media=disk,id=disk0');
    expect(l).toContain('file=/img/data.qcow2,format=qcow2'); // untouched
  });

  it('attaches a cloud-init seed read-only as a virtio disk', () => {
    expect(line({}, { seed: '/d/vms/v/cidata.iso' })).toContain('-drive file=/d/vms/v/cidata.iso,format=raw,if=virtio,media=disk,readonly=on,id=cidata');
    expect(line({})).not.toContain('cidata');
  });

  it('virtiofs: shared memfd memory, a vhost-user-fs device per share; without a socket a clear error', () => {
    const shares = { memory: '512M', shares: [{ path: '/srv/a', tag: 'a', driver: 'virtiofs' as const }, { path: '/srv/b', tag: 'b' }] };
    const l = line(shares, { virtiofs: { fs0: '/run/k/vms/v/vfs-fs0.sock' } });
    expect(l).toContain('-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem');
    expect(l).toContain('-chardev socket,id=fs0-vfs,path=/run/k/vms/v/vfs-fs0.sock -device vhost-user-fs-pci,chardev=fs0-vfs,tag=a,queue-size=1024');
    expect(l).toContain('-fsdev local,id=fs1,path=/srv/b,security_model=mapped-xattr -device virtio-9p-pci,fsdev=fs1,mount_tag=b');
    expect(line({ shares: [{ path: '/srv/b', tag: 'b' }] })).not.toContain('memory-backend');
    try {
      line(shares);
      expect.fail('should throw');
    } catch (e) {
      expect((e as KvmError).code).toBe('UNSUPPORTED');
      expect((e as KvmError).hint).toMatch(/virtiofsd/);
    }
  });

  it('install: the ISO goes into the first CD-ROM (or a new cd0) and boots once from it', () => {
    const iso = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kvu-')), 'i.iso');
    fs.writeFileSync(iso, '');
    const plain = withInstallMedium(vm({ disks: [{ file: 'd.raw' }] }), iso);
    expect(plain.cdroms).toEqual([{ id: 'cd0', file: iso }]);
    expect(plain.boot).toMatchObject({ order: ['disk'], once: 'cdrom' });
    const l = buildArgv(plain, TCG_HOST_FACTS, ctx({ bootOnce: true })).argv.join(' ');
    expect(l).toContain(`-drive file=${iso},if=ide,media=cdrom,readonly=on,id=cd0`);
    expect(l).toContain('-boot order=c,once=d');
    const two = withInstallMedium(vm({ cdroms: [{ id: 'tools', file: '/x/tools.iso' }, '/x/b.iso'] }), iso);
    expect(two.cdroms).toEqual([{ id: 'tools', file: iso }, { file: '/x/b.iso' }]);
    expect(() => withInstallMedium(vm({}), '/nonexistent.iso')).toThrow(/does not exist/);
    fs.rmSync(path.dirname(iso), { recursive: true });
  });

  it('the cloudInit field is validated with the seed schemas (paths in errors)', () => {
    expect(vmSchema.safeParse({ name: 'v', cloudInit: { userData: { hostname: 'web1', packages: ['htop'] } } }).success).toBe(true);
    expect(vmSchema.safeParse({ name: 'v', cloudInit: { userData: '#cloud-config\n', networkConfig: { version: 2 } } }).success).toBe(true);
    const bad = vmSchema.safeParse({ name: 'v', cloudInit: { userData: { hostname: 'bad_host!' }, networkConfig: { version: 3 } } });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    expect(paths.some((p) => p.startsWith('cloudInit.userData'))).toBe(true);
    expect(paths.some((p) => p.startsWith('cloudInit.networkConfig'))).toBe(true);
  });
});
