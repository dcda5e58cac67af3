/**
 * Firmware (issue #15 item 1): descriptors → images, the pick per firmware type and machine, the
 * UEFI argv (pflash code read-only, the VM's own vars, SMM + secure pflash for Secure Boot),
 * bootindex under UEFI, the agent channel, the TPM, and the definition's refusals.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { DEBIAN_OVMF, KVM_HOST_FACTS, TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { parseDescriptor, probeFirmware } from '../../../src/host/firmware-probe.js';
import { firmwareItems } from '../../../src/host/check-firmware.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { pickFirmware } from '../../../src/qemu/firmware.js';
import { uefiBootIndexes } from '../../../src/qemu/platform.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { vmSchema, type VmInput } from '../../../src/definition/vm.js';
import { effectiveAgent, effectiveFirmware, effectiveTpm } from '../../../src/definition/vm-effective.js';

const FIX = path.join(import.meta.dirname, '../../fixtures/firmware');
const rt = (d: string) => ({ dir: d, qmp: `${d}/qmp.sock`, serial: `${d}/serial.sock`, serialLog: `${d}/serial.log`, pidfile: `${d}/qemu.pid`, vnc: `${d}/vnc.sock` });
const ctx = (extra: Partial<ArgvContext> = {}): ArgvContext => ({ runtime: rt('/run/k/vms/v'), imagesDir: '/img', attachments: [], nvram: '/var/lib/kvmctl/vms/v/nvram.fd', ...extra });
const vm = (x: Partial<VmInput>) => vmSchema.parse({ name: 'v', ...x });
const argv = (x: Partial<VmInput>, c: Partial<ArgvContext> = {}) => buildArgv(vm(x), TCG_HOST_FACTS, ctx(c)).argv;
const line = (x: Partial<VmInput>, c: Partial<ArgvContext> = {}) => argv(x, c).join(' ');

describe('firmware descriptors', () => {
  it("parses Debian's three OVMF descriptors into the images kvmctl knows", () => {
    const got = fs.readdirSync(FIX).filter((f) => f.endsWith('.json')).sort().map((f) => parseDescriptor(`/usr/share/qemu/firmware/${f}`, fs.readFileSync(path.join(FIX, f), 'utf8')));
    expect(got).toEqual(DEBIAN_OVMF);
  });
  it('skips what is not an x86_64 UEFI flash image, and bad JSON', () => {
    expect(parseDescriptor('x.json', '{')).toBeUndefined();
    expect(parseDescriptor('x.json', JSON.stringify({ 'interface-types': ['bios'], mapping: { device: 'memory', filename: 'x' } }))).toBeUndefined();
    const arm = { 'interface-types': ['uefi'], mapping: { device: 'flash', executable: { filename: '/a', format: 'raw' } }, targets: [{ architecture: 'aarch64', machines: ['virt-*'] }] };
    expect(parseDescriptor('x.json', JSON.stringify(arm))).toBeUndefined();
  });
  it('probing a directory keeps images whose files exist', () => {
    expect(probeFirmware([FIX]).every((f) => fs.existsSync(f.code))).toBe(true);
    expect(probeFirmware(['/nonexistent'])).toEqual([]);
  });
});

describe('pickFirmware', () => {
  it('uefi-secure on q35 takes the SMM build with the Microsoft keys enrolled', () => {
    const f = pickFirmware(vm({ firmware: 'uefi-secure' }), KVM_HOST_FACTS)!;
    expect(f).toMatchObject({ type: 'uefi-secure', code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd', smm: true });
  });
  it('uefi takes the plain 4M build, on q35, pc and versioned machines', () => {
    for (const type of ['q35', 'pc', 'pc-i440fx-7.2', 'pc-q35-7.2']) {
      expect(pickFirmware(vm({ firmware: 'uefi', machine: type }), KVM_HOST_FACTS)).toMatchObject({ code: '/usr/share/OVMF/OVMF_CODE_4M.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd', smm: false });
    }
  });
  it('bios picks nothing; profiles set the default', () => {
    expect(pickFirmware(vm({}), KVM_HOST_FACTS)).toBeUndefined();
    expect(effectiveFirmware(vm({ profile: 'server' }))).toBe('uefi-secure');
    expect(effectiveFirmware(vm({ profile: 'fast' }))).toBe('bios');
    expect([effectiveAgent(vm({})), effectiveAgent(vm({ profile: 'server' })), effectiveAgent(vm({ profile: 'server', agent: false }))]).toEqual([false, true, false]);
    expect([effectiveTpm(vm({ profile: 'server' })), effectiveTpm(vm({ profile: 'desktop' })), effectiveTpm(vm({ profile: 'desktop', tpm: false }))]).toEqual([undefined, { version: '2.0' }, undefined]);
  });
  it('a host without OVMF gets FIRMWARE_MISSING naming the package', () => {
    try {
      pickFirmware(vm({ firmware: 'uefi-secure' }), { firmware: [] });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KvmError);
      expect((e as KvmError).code).toBe('FIRMWARE_MISSING');
      expect((e as KvmError).hint).toMatch(/apt-get install ovmf/);
    }
  });
  it("the definition's own code and vars template win", () => {
    expect(pickFirmware(vm({ firmware: { type: 'uefi', code: '/srv/fw/CODE.fd', varsTemplate: '/srv/fw/VARS.fd' } }), KVM_HOST_FACTS)).toMatchObject({ code: '/srv/fw/CODE.fd', varsTemplate: '/srv/fw/VARS.fd', from: 'the definition' });
  });
});

describe('argv under UEFI', () => {
  it('Secure Boot: smm=on, secure pflash, code read-only, the VM vars writable', () => {
    const a = line({ firmware: 'uefi-secure' });
    expect(a).toContain('-machine type=q35,accel=tcg,smm=on');
    expect(a).toContain('-global driver=cfi.pflash01,property=secure,value=on');
    expect(a).toContain('-drive if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd,readonly=on');
    expect(a).toContain('-drive if=pflash,format=raw,unit=1,file=/var/lib/kvmctl/vms/v/nvram.fd');
  });
  it('plain UEFI has no SMM and no secure pflash; BIOS has no pflash at all', () => {
    const u = line({ firmware: 'uefi' });
    expect(u).not.toContain('smm=on');
    expect(u).not.toContain('cfi.pflash01');
    expect(u).toContain('OVMF_CODE_4M.fd');
    expect(line({})).not.toContain('pflash');
  });
  it('boot order becomes bootindex on the devices (OVMF ignores -boot order)', () => {
    const a = line({ firmware: 'uefi', disks: [{ file: 'a.qcow2' }, { file: 'b.raw', interface: 'sata', index: 2 }], cdroms: ['d.iso'], nics: [{ user: true }], boot: { order: ['network', 'disk'] } }, { attachments: [{ kind: 'user', forwards: [] } as never] });
    expect(a).toContain('-drive file=/img/a.qcow2,format=qcow2,if=none,id=disk0 -device virtio-blk-pci,drive=disk0,bootindex=1');
    expect(a).toContain('-device ide-hd,drive=disk1,bus=ide.2,bootindex=2');
    expect(a).toMatch(/-device virtio-net-pci,netdev=net0,mac=[0-9a-f:]+,id=net0-dev,bootindex=0/);
    expect(a).toContain('-device ide-cd,drive=cd0'); // no bootindex: not in the order
    expect(a).not.toContain('bootindex=3');
    expect(a).not.toMatch(/-boot (order=)?n/);
  });
  it('an install boot puts the CD-ROM first for that start only', () => {
    const x = { firmware: 'uefi' as const, disks: [{ file: 'a.qcow2' }], cdroms: ['d.iso'], boot: { order: ['disk' as const], once: 'cdrom' as const } };
    expect(line(x, { bootOnce: true })).toContain('-device ide-cd,drive=cd0,bootindex=0');
    expect(line(x, { bootOnce: true })).toContain('virtio-blk-pci,drive=disk0,bootindex=1');
    expect(line(x)).toContain('virtio-blk-pci,drive=disk0,bootindex=0');
    expect(uefiBootIndexes(vm(x), false).cdroms).toEqual([undefined]);
  });
  it('the guest agent channel and the TPM', () => {
    const a = line({ agent: true, tpm: true });
    expect(a).toContain('-device virtio-serial-pci,id=vser0 -chardev socket,id=qga0,path=/run/k/vms/v/qga.sock,server=on,wait=off -device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0');
    expect(a).toContain('-chardev socket,id=chrtpm,path=/run/k/vms/v/swtpm.sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0');
    expect(line({ tpm: { version: '1.2' } })).toContain('-device tpm-tis,tpmdev=tpm0');
    expect(line({ tpm: { version: 1.2 as never } })).toContain('tpm-tis');
    expect(line({})).not.toMatch(/qga0|tpmdev/);
  });
  it('the fast profile does not take microvm or qboot for a UEFI guest', () => {
    const b = buildArgv(vm({ profile: 'fast', firmware: 'uefi', kernel: { path: '/k' } }), TCG_HOST_FACTS, ctx({ kernel: { path: '/k' } }));
    expect(b.argv.join(' ')).toContain('-machine type=q35');
    expect(b.argv).not.toContain('qboot.rom');
    expect(b.warnings.join('\n')).toMatch(/boots through UEFI/);
  });
  it('UEFI without a vars file in the context is a bug, not a silent shared NVRAM', () => {
    expect(() => buildArgv(vm({ firmware: 'uefi' }), TCG_HOST_FACTS, ctx({ nvram: undefined }))).toThrow(/no vars file/);
  });
});

describe('definition refusals', () => {
  const problems = (doc: Record<string, unknown>) => parseDefinitions(JSON.stringify(doc), 'x.yaml')[0]!.issues.map((i) => `${i.path}: ${i.message}`);
  it('Secure Boot on pc and microvm, naming the field', () => {
    expect(problems({ name: 'a', machine: 'pc', firmware: 'uefi-secure' })).toEqual([expect.stringMatching(/^firmware: firmware uefi-secure needs machine q35/)]);
    expect(problems({ name: 'a', machine: 'microvm', profile: 'server', kernel: { path: '/k' } })).toEqual([expect.stringMatching(/^profile: profile server \(firmware uefi-secure\) needs machine q35/)]);
    expect(problems({ name: 'a', machine: 'microvm', firmware: 'uefi', kernel: { path: '/k' } })).toEqual([expect.stringMatching(/^firmware: .*microvm/)]);
    expect(problems({ name: 'a', machine: 'microvm', tpm: true, kernel: { path: '/k' } })).toEqual([expect.stringMatching(/^tpm: a TPM needs machine q35 or pc/)]);
  });
  it('bad values say what is allowed', () => {
    expect(problems({ name: 'a', firmware: 'efi' })).toEqual([expect.stringMatching(/^firmware.type: "efi" is not one of "bios", "uefi", "uefi-secure"/)]);
    expect(problems({ name: 'a', tpm: { version: '3.0' } })[0]).toMatch(/^tpm/);
    expect(problems({ name: 'a', machine: 'q35', firmware: 'uefi-secure', tpm: true, agent: true })).toEqual([]);
    expect(problems({ name: 'a', machine: 'pc', firmware: 'uefi', tpm: { version: '1.2' } })).toEqual([]);
  });
});

describe('host check', () => {
  it('reports both UEFI images when present and warns with the package when not', () => {
    const ok = firmwareItems(DEBIAN_OVMF);
    expect(ok.map((i) => [i.id, i.status])).toEqual([['firmware.uefi', 'PASS'], ['firmware.uefi-secure', 'PASS']]);
    expect(ok[1]!.detail).toContain('OVMF_VARS_4M.ms.fd');
    const none = firmwareItems([]);
    expect(none.every((i) => i.status === 'WARN' && /apt-get install ovmf/.test(i.fix ?? ''))).toBe(true);
  });
});
