/**
 * `kvmctl import libvirt` and `kvmctl import proxmox` through the real CLI (issue #18): the
 * definition and the networks it implies land in the config dir, `kvmctl cmdline` of the
 * imported VM carries the source's disks and MACs, paths outside the storage roots are refused
 * with nothing written, an existing definition is never replaced without --force, and bad input
 * exits 2.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
beforeAll(() => {
  h = makeHome();
});
afterAll(async () => {
  await h?.cleanup();
});

const domain = (disk: string) => `<domain type='kvm'><name>lv1</name><memory unit='MiB'>512</memory><vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-8.1'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><mac address='52:54:00:12:34:56'/><source bridge='br9'/><model type='virtio'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices></domain>`;

describe('kvmctl import libvirt / proxmox', () => {
  it('imports a libvirt domain with its bridge network; cmdline has its disk and MAC', async () => {
    const xml = path.join(h.dir, 'lv1.xml');
    fs.writeFileSync(xml, domain(path.join(h.images, 'lv1.qcow2')));
    const r = await h.cli(['import', 'libvirt', xml]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/fidelity: \d+ kept, \d+ translated, 0 not kept/);
    const c = await h.cli(['cmdline', 'lv1']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`file=${path.join(h.images, 'lv1.qcow2')}`);
    expect(c.stdout).toContain('mac=52:54:00:12:34:56');
    expect(c.stdout).toContain('org.qemu.guest_agent.0');
    const nets = await h.cli(['list', '--json']);
    expect(nets.code).toBe(0);
    expect(fs.readdirSync(path.join(h.dir, 'config/networks'))).toContain('br9.yaml');
    const again = await h.cli(['import', 'libvirt', xml]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/VM_EXISTS/);
  });

  it('refuses a domain whose disk is outside the storage roots, writing nothing', async () => {
    const xml = path.join(h.dir, 'lv2.xml');
    fs.writeFileSync(xml, domain('/var/lib/libvirt/images/elsewhere.qcow2').replace('<name>lv1</name>', '<name>lv2</name>'));
    const r = await h.cli(['import', 'libvirt', xml]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/PATH_OUTSIDE_ROOTS/);
    expect(fs.existsSync(path.join(h.dir, 'config/vms/lv2.yaml'))).toBe(false);
  });

  it('imports a Proxmox config with a storage.cfg whose dir storage is a storage root', async () => {
    const pve = path.join(h.dir, 'pve');
    fs.mkdirSync(path.join(pve, 'images/120'), { recursive: true });
    await h.addRoot(pve);
    const cfg = path.join(h.dir, 'storage.cfg');
    fs.writeFileSync(cfg, `dir: local\n\tpath ${pve}\n\tcontent images,iso\n`);
    const conf = path.join(h.dir, '120.conf');
    fs.writeFileSync(conf, 'name: pve120\nmemory: 1024\ncores: 2\nsockets: 1\nscsi0: local:120/vm-120-disk-0.qcow2,size=8G\nscsihw: virtio-scsi-pci\nnet0: virtio=BC:24:11:00:01:20,bridge=vmbr0\nagent: 1\nonboot: 1\n');
    const r = await h.cli(['import', 'proxmox', conf, '--storage-cfg', cfg]);
    expect(r.code, r.stderr).toBe(0);
    const c = await h.cli(['cmdline', 'pve120']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`file=${path.join(pve, 'images/120/vm-120-disk-0.qcow2')}`);
    expect(c.stdout).toContain('mac=bc:24:11:00:01:20');
    expect(c.stdout).toMatch(/scsi-hd/);
  });

  it('--all DIR: networks first, then domains; a failing file is reported and the rest imported (exit 1)', async () => {
    const dir = path.join(h.dir, 'libvirt-all');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.resolve(import.meta.dirname, '../fixtures/libvirt-networks/default.xml'), path.join(dir, 'default.xml'));
    fs.writeFileSync(path.join(dir, 'a.xml'), domain(path.join(h.images, 'a.qcow2')).replace('<name>lv1</name>', '<name>all-a</name>').replace("<interface type='bridge'><mac address='52:54:00:12:34:56'/><source bridge='br9'/>", "<interface type='network'><mac address='52:54:00:12:34:57'/><source network='default'/>"));
    fs.writeFileSync(path.join(dir, 'b.xml'), domain('/elsewhere/b.qcow2').replace('<name>lv1</name>', '<name>all-b</name>'));
    const r = await h.cli(['import', 'libvirt', '--all', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/ok {4}network default/);
    expect(r.stdout).toMatch(/ok {4}vm all-a/);
    expect(r.stdout).toMatch(/FAIL  vm .*b\.xml: PATH_OUTSIDE_ROOTS/);
    expect(r.stdout).toMatch(/2 of 3 imported/);
    const v = await h.cli(['validate', path.join(h.dir, 'config/networks/default.yaml'), path.join(h.dir, 'config/vms/all-a.yaml')]);
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const c = await h.cli(['cmdline', 'all-a']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain('mac=52:54:00:12:34:57');
  });

  it('bad input exits 2 and writes nothing', async () => {
    const bad = path.join(h.dir, 'bad.xml');
    fs.writeFileSync(bad, '<domain><name>x</name>');
    const r = await h.cli(['import', 'libvirt', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/IMPORT_BAD_XML/);
    const p = await h.cli(['import', 'proxmox', path.join(h.dir, 'missing.conf')]);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/FILE_NOT_FOUND/);
  });

  it('import cmdline reads a -readconfig file beside the script (relative to it) and imports its options', async () => {
    const d = path.join(h.dir, 'rc');
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'vm.cfg'), `[memory]\n  size = "768"\n\n[drive "d0"]\n  file = "${path.join(h.images, 'rc.qcow2')}"\n  format = "qcow2"\n  if = "virtio"\n`);
    fs.writeFileSync(path.join(d, 'run.sh'), '#!/bin/sh\nexec qemu-system-x86_64 -name guest=rc1 -readconfig vm.cfg -display none\n');
    const r = await h.cli(['import', 'cmdline', path.join(d, 'run.sh')]);
    expect(r.code, r.stderr).toBe(0);
    const c = await h.cli(['cmdline', 'rc1']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`file=${path.join(h.images, 'rc.qcow2')}`);
    expect(c.stdout).toMatch(/-m 768M/);
  });
});
