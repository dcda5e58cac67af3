/**
 * `kvmctl import proxmox` (issue #18) on configs written from Proxmox VE's documentation
 * (test/fixtures/proxmox/SOURCE.md), and the fidelity rule: the QEMU line kvmctl builds for an
 * imported definition has the source's memory, vCPUs, disks (paths, formats, bus), NIC MACs and
 * models, and TPM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEBIAN_OVMF, KVM_HOST_FACTS } from '../../../src/host/facts.js';
import { importLibvirt } from '../../../src/import/libvirt.js';
import { importProxmox, parseStorageCfg } from '../../../src/import/proxmox.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import type { VmSpec } from '../../../src/definition/vm.js';

const FIX = path.resolve(import.meta.dirname, '../../fixtures/proxmox');
const storage = parseStorageCfg(fs.readFileSync(path.join(FIX, 'storage.cfg'), 'utf8'));
const conf = (id: string) => importProxmox(fs.readFileSync(path.join(FIX, `${id}.conf`), 'utf8'), { source: `${id}.conf`, storage });
const warnings = (r: { notes: { level: string; message: string }[] }) => r.notes.filter((n) => n.level === 'warning').map((n) => n.message).join('\n');

describe('storage.cfg', () => {
  it('reads each storage with its type and path, VG or pool', () => {
    expect(storage).toMatchObject({ local: { type: 'dir', path: '/var/lib/vz' }, 'local-lvm': { type: 'lvmthin', vgname: 'pve' }, tank: { type: 'zfspool', pool: 'tank/vmdata' }, ceph: { type: 'rbd' } });
  });
});

describe('Proxmox guest configs', () => {
  it('100: LVM-thin disk, OVMF with pre-enrolled keys and its efidisk, TPM, agent, bridge, onboot/startup', () => {
    const r = conf('100');
    expect(r.spec).toMatchObject({
      name: 'web', description: 'Debian 12 web server\nmanaged by ops', memory: 2 * 2 ** 30, machine: { type: 'q35' },
      cpu: { count: 2, sockets: 1, cores: 2, model: 'Westmere' }, agent: true, tpm: { version: '2.0' },
      firmware: { type: 'uefi-secure', vars: '/dev/pve/vm-100-disk-1' }, autostart: { enabled: true, order: 2, delay: 30 },
    });
    expect(r.spec.disks).toMatchObject([{ id: 'scsi0', file: '/dev/pve/vm-100-disk-0', format: 'raw', interface: 'scsi', discard: 'unmap' }]);
    expect(r.spec.nics).toMatchObject([{ network: 'vmbr0', model: 'virtio', mac: 'bc:24:11:2a:3b:4c' }]);
    expect(r.networks).toEqual([{ kind: 'network', name: 'vmbr0', type: 'bridge' }]);
    expect(r.spec.boot?.order).toEqual(['disk', 'network']);
    expect(warnings(r)).toMatch(/firewall/);
  });

  it('101: ZFS disks, ISO CD-ROMs from dir storage, a versioned machine, the snapshot section noted', () => {
    const r = conf('101');
    expect(r.spec.disks).toMatchObject([{ file: '/dev/zvol/tank/vmdata/vm-101-disk-1', interface: 'sata', cache: 'writeback' }]);
    expect(r.spec.cdroms.map((c) => c.file)).toEqual(['/var/lib/vz/template/iso/virtio-win-0.1.240.iso', '/var/lib/vz/template/iso/Win11_23H2_English_x64.iso']);
    expect(r.spec.boot?.order).toEqual(['disk', 'cdrom', 'network']);
    expect(r.spec.nics[0]).toMatchObject({ model: 'e1000', mac: 'bc:24:11:00:00:65' });
    const all = r.notes.map((n) => n.message).join('\n');
    expect(all).toMatch(/pc-q35-8.1: q35/);
    expect(all).toMatch(/snapshot section\(s\) \(before-update\)/);
    expect(warnings(r)).toMatch(/tag=20/);
  });

  it('102: qcow2 on dir storage, rbd not imported (said why), cloud-init keys, args through the line importer, [PENDING]', () => {
    const r = conf('102');
    expect(r.name).toBe('ci_test.example');
    expect(r.spec.disks).toMatchObject([{ file: '/srv/bulk/images/102/vm-102-disk-0.qcow2', format: 'qcow2', interface: 'virtio' }]);
    expect(warnings(r)).toMatch(/virtio1: storage "ceph" is rbd \(network storage\)/);
    expect(warnings(r)).toMatch(/\[PENDING\]/);
    expect(r.spec.cloudInit?.userData).toMatchObject({ users: [{ name: 'admin', sshAuthorizedKeys: [expect.stringMatching(/^ssh-ed25519 AAAA/)] }] });
    expect(r.spec.extraArgs).toEqual(['-smbios', 'type=0,vendor=kvmctl-test']);
    expect(r.spec.memory).toBe(2 ** 30); // the config, not the pending change
  });

  it('refuses what is not a guest config (exit 2)', () => {
    expect(() => importProxmox('this is not a config\n')).toThrow(expect.objectContaining({ code: 'IMPORT_BAD_CONF', exit: 2 }));
    expect(() => importProxmox('')).toThrow(expect.objectContaining({ code: 'IMPORT_BAD_CONF' }));
  });
});

describe('fidelity: the QEMU line of an imported definition matches the source', () => {
  const ctx = (vm: VmSpec): ArgvContext => ({
    runtime: { dir: '/run/k/vms/x', qmp: '/run/k/vms/x/qmp.sock', serial: '/run/k/vms/x/serial.sock', serialLog: '/run/k/vms/x/serial.log', pidfile: '/run/k/vms/x/qemu.pid', vnc: '/run/k/vms/x/vnc.sock', qmpEvents: '/run/k/vms/x/qmp-events.sock', tpm: '/run/k/vms/x/swtpm.sock' },
    imagesDir: '/var/lib/kvmctl/images',
    attachments: vm.nics.map((_n, i) => ({ kind: 'tap' as const, ifname: `tap${i}`, vhost: true })),
    nvram: '/var/lib/kvmctl/vms/x/nvram.fd',
  });
  const check = (spec: VmSpec, want: { mib: number; cpus: number; disks: string[]; macs: string[]; tpm: boolean }) => {
    const facts = { ...KVM_HOST_FACTS, firmware: DEBIAN_OVMF };
    const { argv } = buildArgv(spec, facts, ctx(spec));
    const line = argv.join(' ');
    const m = argv[argv.indexOf('-m') + 1]!;
    expect(m.endsWith('G') ? Number.parseInt(m) * 1024 : Number.parseInt(m)).toBe(want.mib);
    expect(argv[argv.indexOf('-smp') + 1]).toMatch(new RegExp(`^${want.cpus}\\b`));
    for (const d of want.disks) expect(line).toContain(`file=${d}`);
    for (const m of want.macs) expect(line).toContain(`mac=${m}`);
    expect(line.includes('tpm-crb') || line.includes('tpm-tis')).toBe(want.tpm);
  };

  it('Proxmox 100.conf', () => {
    check(conf('100').spec, { mib: 2048, cpus: 2, disks: ['/dev/pve/vm-100-disk-0'], macs: ['bc:24:11:2a:3b:4c'], tpm: true });
  });
  it('a libvirt domain', () => {
    const xml = fs.readFileSync(path.resolve(FIX, '../libvirt-corpus/boot-order.xml'), 'utf8');
    check(importLibvirt(xml).spec, { mib: 214, cpus: 1, disks: ['/dev/HostVG/QEMUGuest1'], macs: ['00:11:22:33:44:55'], tpm: false });
  });
});
