/**
 * `kvmctl import libvirt --virsh URI` against a real virsh (Debian's libvirt-clients) on libvirt's
 * built-in test driver, loaded from a node XML of our own (test:///PATH: no daemon, nothing on
 * the host changes). Every defined domain and network comes over; a disk given as a pool volume
 * resolves through the pool's directory that virsh reports; a second run refuses to replace.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const hasVirsh = ['/usr/bin/virsh', '/bin/virsh'].some((p) => fs.existsSync(p));
let h: Home;
beforeAll(() => {
  h = makeHome();
});
afterAll(async () => {
  await h?.cleanup();
});

const node = (images: string) => `<node>
  <network><name>lvnet</name><bridge name='virbr7'/><forward mode='nat'/><ip address='192.168.77.1' netmask='255.255.255.0'><dhcp><range start='192.168.77.10' end='192.168.77.50'/></dhcp></ip></network>
  <pool type='dir'><name>imgs</name><target><path>${images}</path></target></pool>
  <domain type='test'><name>web1</name><memory unit='MiB'>512</memory><vcpu>2</vcpu>
    <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
    <devices>
      <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='imgs' volume='web1.qcow2'/><target dev='vda' bus='virtio'/></disk>
      <interface type='network'><mac address='52:54:00:77:00:01'/><source network='lvnet'/><model type='virtio'/></interface>
    </devices></domain>
  <domain type='test'><name>db1</name><memory unit='GiB'>1</memory><vcpu>1</vcpu>
    <os><type arch='x86_64' machine='pc'>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${images}/db1.raw'/><target dev='vda' bus='virtio'/></disk></devices></domain>
</node>`;

describe.skipIf(!hasVirsh)('kvmctl import libvirt --virsh (real virsh, libvirt test driver)', () => {
  it('imports every domain and network; the pool volume resolves; cmdline carries disk and MAC', async () => {
    const xml = path.join(h.dir, 'node.xml');
    fs.writeFileSync(xml, node(h.images));
    const uri = `test://${xml}`;
    const r = await h.cli(['import', 'libvirt', '--virsh', uri, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const res = JSON.parse(r.stdout) as { kind: string; name: string; ok: boolean }[];
    expect(res.map((x) => `${x.kind}:${x.name}:${x.ok}`).sort()).toEqual(['network:lvnet:true', 'vm:db1:true', 'vm:web1:true']);
    expect(fs.existsSync(path.join(h.dir, 'config/networks/lvnet.yaml'))).toBe(true);
    const c = await h.cli(['cmdline', 'web1']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`file=${path.join(h.images, 'web1.qcow2')}`);
    expect(c.stdout).toContain('mac=52:54:00:77:00:01');
    const again = await h.cli(['import', 'libvirt', '--virsh', uri]);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/FAIL +vm .*VM_EXISTS/);
  });

  it('a connection that fails is a clear error with a hint, and writes nothing', async () => {
    const vms = path.join(h.dir, 'config/vms');
    const before = fs.existsSync(vms) ? fs.readdirSync(vms).sort() : [];
    const r = await h.cli(['import', 'libvirt', '--virsh', `test://${path.join(h.dir, 'missing.xml')}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/VIRSH_FAILED/);
    expect(r.stderr).toMatch(/hint/i);
    expect(fs.existsSync(vms) ? fs.readdirSync(vms).sort() : []).toEqual(before);
  });
});
