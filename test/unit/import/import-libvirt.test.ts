/**
 * Importing from libvirt (issue #18), over public corpora:
 *  - test/fixtures/libvirt-corpus: pairs from libvirt's tests/qemuxmlconfdata (a domain XML and
 *    the x86_64 QEMU line libvirt generates for it; LGPL-2.1-or-later, see SOURCE.md there);
 *  - test/fixtures/virt-install-corpus: the domain XML virt-install writes (its tests/data/cli/
 *    compare; GPL-2.0-or-later, see SOURCE.md there).
 * Fractions, not examples: how many import, validate (also after the YAML round trip), and — for
 * the pairs — whether the XML import and the generated-line import agree on memory, vCPUs, disk
 * paths, disk formats and MACs. Known failures are listed in test/fixtures/import-known-failures.txt,
 * and the test checks that list stays current.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { importLibvirt } from '../../../src/import/libvirt.js';
import { importLibvirtNetwork, isNetworkXml } from '../../../src/import/libvirt-network.js';
import { importCommandLine, importYaml } from '../../../src/qemu/import.js';
import { validateVm } from '../../../src/definition/load.js';
import type { VmSpec } from '../../../src/definition/vm.js';

const FIX = path.resolve(import.meta.dirname, '../../fixtures');
const PAIR_DIRS = ['libvirt-corpus', 'libvirt-9.0-corpus'];
const xmls = [...PAIR_DIRS, 'virt-install-corpus'].flatMap((d) => fs.readdirSync(path.join(FIX, d)).filter((f) => f.endsWith('.xml')).map((f) => path.join(d, f)));
const known = new Map(
  fs.readFileSync(path.join(FIX, 'import-known-failures.txt'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#')).map((l) => [l.split(':')[0]!.trim(), l.slice(l.indexOf(':') + 1).trim()] as const),
);
const listFile = (f: string) =>
  new Map(fs.readFileSync(path.join(FIX, f), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#')).map((l) => [l.split(':')[0]!.trim(), l.slice(l.indexOf(':') + 1).trim()] as const));
const knownDiffer = listFile('libvirt-pairs-differ.txt');
/** virt-install's compare files hold the install-time domain first, the final one last. */
const lastDomain = (t: string) => t.slice(t.lastIndexOf('<domain'));
const facts = (s: VmSpec) => ({ memory: s.memory, cpus: s.cpu.count, disks: s.disks.map((d) => [d.file, d.format ?? null]), macs: s.nics.map((n) => n.mac ?? null) });

describe('libvirt domain XML corpus', () => {
  const outcome = xmls.map((f) => {
    try {
      const r = importLibvirt(lastDomain(fs.readFileSync(path.join(FIX, f), 'utf8')), { source: f });
      // What is written must validate when read back.
      const docs = importYaml(r, f).split(/^---$/m).map((d) => parse(d));
      validateVm(docs.at(-1), f);
      return { f, ok: true as const, r };
    } catch (e) {
      return { f, ok: false as const, why: `${(e as { code?: string }).code ?? 'ERROR'} ${(e as Error).message.split('\n')[0]}` };
    }
  });

  it(`≥ 95% of ${xmls.length} domains import, validate and survive the YAML round trip`, () => {
    const ok = outcome.filter((o) => o.ok).length;
    console.log(`libvirt XML corpus: ${ok}/${xmls.length} import and validate (${((100 * ok) / xmls.length).toFixed(1)}%)`);
    expect(xmls.length).toBeGreaterThanOrEqual(80);
    expect(ok / xmls.length).toBeGreaterThanOrEqual(0.95);
  });

  it('the known-failures list is exactly the domains that fail', () => {
    const failing = outcome.filter((o) => !o.ok).map((o) => o.f).sort();
    expect(failing, outcome.filter((o) => !o.ok).map((o) => `${o.f}: ${o.why}`).join('\n')).toEqual([...known.keys()].sort());
  });

  it('every import accounts for what it kept, translated and could not keep', () => {
    for (const o of outcome) {
      if (!o.ok) continue;
      const f = o.r.fidelity;
      expect(f.kept.length, o.f).toBeGreaterThan(0); // at least machine, memory, vCPUs
      expect(o.r.notes.filter((x) => x.level === 'warning').length, o.f).toBe(f.lost.length);
    }
  });

  it('XML import and generated-line import of each libvirt pair agree on memory, vCPUs, disks and MACs', () => {
    const pairs = PAIR_DIRS.flatMap((d) => fs.readdirSync(path.join(FIX, d)).filter((f) => f.endsWith('.x86_64-latest.args')).map((f) => path.join(d, f)));
    let agree = 0;
    const differ: string[] = [];
    for (const a of pairs) {
      const base = a.replace(/\.x86_64-latest\.args$/, '');
      try {
        const x = importLibvirt(fs.readFileSync(path.join(FIX, `${base}.xml`), 'utf8')).spec;
        const c = importCommandLine(fs.readFileSync(path.join(FIX, a), 'utf8'), { source: a }).spec;
        if (JSON.stringify(facts(x)) === JSON.stringify(facts(c))) agree++;
        else differ.push(`${base}: xml ${JSON.stringify(facts(x))} line ${JSON.stringify(facts(c))}`);
      } catch (e) {
        differ.push(`${base}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    console.log(`libvirt pairs: ${agree}/${pairs.length} agree (XML vs generated line)`);
    expect(pairs.length).toBeGreaterThanOrEqual(300);
    expect(agree / pairs.length, differ.join('\n')).toBeGreaterThanOrEqual(0.95);
    // The rest are listed with why; a pair that starts or stops agreeing must update the list.
    const listed = [...knownDiffer.keys(), ...[...known.keys()].map((k) => k.replace(/\.xml$/, ''))].sort();
    const differing = differ.map((d) => d.slice(0, d.indexOf(':'))).sort();
    expect(differing, differ.join('\n')).toEqual(listed.filter((k) => pairs.some((a) => a.startsWith(`${k}.`))));
  });
});

describe('libvirt mapping', () => {
  const xml = `<domain type='kvm'>
  <name>win11</name><memory unit='GiB'>4</memory><vcpu>4</vcpu>
  <os firmware='efi'><type arch='x86_64' machine='pc-q35-8.1'>hvm</type>
    <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
    <nvram>/var/lib/libvirt/qemu/nvram/win11_VARS.fd</nvram><boot dev='hd'/></os>
  <features><acpi/><smm state='on'/><hyperv><relaxed state='on'/></hyperv></features>
  <cpu mode='host-passthrough'><topology sockets='1' dies='1' cores='2' threads='2'/></cpu>
  <clock offset='localtime'/>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none' discard='unmap'/><source file='/var/lib/libvirt/images/win11.qcow2'/><target dev='sda' bus='sata'/></disk>
    <disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='data' volume='w11-data.raw'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>
    <interface type='bridge'><mac address='52:54:00:AA:BB:CC'/><source bridge='br0'/><model type='e1000e'/></interface>
    <interface type='direct'><mac address='52:54:00:aa:bb:cd'/><source dev='eno1' mode='bridge'/><model type='virtio'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/share'/><target dir='share'/></filesystem>
    <graphics type='spice' autoport='yes'/>
  </devices></domain>`;
  const r = importLibvirt(xml, { pools: { data: '/srv/pools/data' } });

  it('keeps firmware with its NVRAM, TPM, agent, topology, disks (pool volumes through --pool), NICs and shares', () => {
    expect(r.spec).toMatchObject({
      name: 'win11', memory: 4 * 2 ** 30, machine: { type: 'q35' }, agent: true, tpm: { version: '2.0' },
      firmware: { type: 'uefi-secure', code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', vars: '/var/lib/libvirt/qemu/nvram/win11_VARS.fd' },
      cpu: { count: 4, model: 'host', sockets: 1, cores: 2, threads: 2 },
      shares: [{ path: '/srv/share', tag: 'share', driver: 'virtiofs' }],
    });
    expect(r.spec.disks.map((d) => [d.file, d.format, d.interface])).toEqual([['/var/lib/libvirt/images/win11.qcow2', 'qcow2', 'sata'], ['/srv/pools/data/w11-data.raw', 'raw', 'virtio']]);
    expect(r.spec.nics.map((n) => [n.network, n.model, n.mac])).toEqual([['br0', 'e1000e', '52:54:00:aa:bb:cc'], ['macvtap-eno1', 'virtio', '52:54:00:aa:bb:cd']]);
    expect(r.networks).toEqual([{ kind: 'network', name: 'br0', type: 'bridge' }, { kind: 'network', name: 'macvtap-eno1', type: 'macvtap', parent: 'eno1', mode: 'bridge' }]);
  });

  it('says what it could not keep, each with why', () => {
    const lost = r.notes.filter((n) => n.level === 'warning').map((n) => n.message).join('\n');
    expect(lost).toMatch(/disk vdc: a network disk \(rbd pool\/img\)/);
    expect(lost).toMatch(/hyperv/);
    expect(lost).toMatch(/localtime/);
    expect(r.notes.map((n) => n.message).join('\n')).toMatch(/machine pc-q35-8.1: q35/);
    expect(r.fidelity.lost).toEqual(expect.arrayContaining(['disk vdc', 'features hyperv']));
  });

  it('refuses what is not a domain, or not x86, with exit 2 and a hint', () => {
    expect(() => importLibvirt('<network><name>x</name></network>')).toThrow(expect.objectContaining({ code: 'IMPORT_NOT_DOMAIN', exit: 2 }));
    expect(() => importLibvirt("<domain><name>a</name><os><type arch='aarch64'>hvm</type></os></domain>")).toThrow(expect.objectContaining({ code: 'IMPORT_UNSUPPORTED' }));
    expect(() => importLibvirt('<domain><name>a</name>')).toThrow();
  });
});

describe('generated command lines', () => {
  it("a Proxmox line (qm showcmd): the scsi disk, its MAC and the QMP socket are understood", () => {
    const r = importCommandLine(fs.readFileSync(path.join(FIX, 'proxmox/100-qm-showcmd.sh'), 'utf8'), { source: '100' });
    expect(r.spec.disks).toMatchObject([{ file: '/var/lib/vz/images/100/vm-100-disk-0.qcow2', format: 'qcow2', interface: 'scsi', cache: 'none' }]);
    expect(r.spec.nics).toMatchObject([{ tap: 'tap100i0', mac: 'bc:24:11:2a:3b:4c', model: 'virtio' }]);
    expect(r.spec.qmp).toEqual({ socket: '/var/run/qemu-server/100.qmp' });
    expect(r.spec.machine.type).toBe('pc');
    expect(r.spec.extraArgs).not.toContain('-no-shutdown');
    expect(r.spec.extraArgs).not.toContain('-id');
    expect(r.notes.map((n) => n.message).join('\n')).toMatch(/pc-i440fx-8.1\+pve0: imported as pc/);
  });

  it('a -blockdev chain (file → qcow2 → throttle) in JSON becomes one disk; nbd stays in extraArgs', () => {
    const line = [
      'qemu-system-x86_64 -name t -m 1024 -machine q35',
      `-blockdev '{"driver":"file","filename":"/img/a.qcow2","node-name":"s1","cache":{"direct":true,"no-flush":false}}'`,
      `-blockdev '{"node-name":"f1","read-only":false,"driver":"qcow2","file":"s1"}'`,
      `-blockdev '{"driver":"throttle","node-name":"t1","throttle-group":"g","file":"f1"}'`,
      `-device '{"driver":"virtio-blk-pci","drive":"t1","id":"virtio-disk0","bootindex":1}'`,
      `-blockdev '{"driver":"nbd","server":{"type":"inet","host":"h","port":"6000"},"export":"x","node-name":"n1"}'`,
      `-device '{"driver":"virtio-blk-pci","drive":"n1","id":"virtio-disk1"}'`,
    ].join(' \\\n  ');
    const r = importCommandLine(line, { source: 't' });
    expect(r.spec.disks).toMatchObject([{ file: '/img/a.qcow2', format: 'qcow2', interface: 'virtio', cache: 'none' }]);
    expect(r.spec.extraArgs.join(' ')).toContain('"driver":"nbd"');
    expect(r.notes.map((n) => n.message).join('\n')).toMatch(/throttle dropped/);
  });
});

describe('libvirt networks', () => {
  const net = (f: string) => importLibvirtNetwork(fs.readFileSync(path.join(FIX, 'libvirt-networks', f), 'utf8'), { source: f });
  it("libvirt's default NAT network → a nat network with its bridge, address, DHCP range and domain", () => {
    const r = net('default.xml');
    expect(r.spec).toMatchObject({ name: 'default', type: 'nat', interface: 'virbr0', address: '192.168.122.1/24', dhcp: { start: '192.168.122.2', end: '192.168.122.254' }, dns: { domain: 'lan' } });
    expect(r.notes.map((x) => x.message).join('\n')).toMatch(/1 static lease/);
  });
  it('isolated → host-only; forward bridge → bridge; forward bridge over an interface → macvtap', () => {
    expect(net('isolated.xml').spec).toMatchObject({ type: 'host-only', addresses: ['10.10.10.1/24'], interface: 'virbr1' });
    expect(net('host-bridge.xml').spec).toMatchObject({ type: 'bridge', name: 'host-bridge', interface: 'br0' });
    expect(net('macvtap.xml').spec).toMatchObject({ type: 'macvtap', parent: 'eno1', mode: 'bridge' });
  });
  it('tells a network from a domain', () => {
    expect(isNetworkXml(fs.readFileSync(path.join(FIX, 'libvirt-networks/default.xml'), 'utf8'))).toBe(true);
    expect(isNetworkXml("<?xml version='1.0'?>\n<domain type='kvm'/>")).toBe(false);
  });
});

describe('retired QEMU options', () => {
  it('say what replaces them; -nodefconfig is left out', () => {
    const r = importCommandLine('qemu-system-x86_64 -name old -m 512 -nodefconfig -no-hpet -soundhw ac97 -display none', { source: 'old.sh' });
    const all = r.notes.map((n) => n.message).join('\n');
    expect(all).toMatch(/-nodefconfig: removed in QEMU 4.0.*left out/);
    expect(all).toMatch(/-no-hpet: deprecated: -machine hpet=off/);
    expect(all).toMatch(/-soundhw: removed in QEMU 7.1/);
    expect(r.spec.extraArgs).not.toContain('-nodefconfig');
  });
});
