/**
 * `checkHost` against recorded / constructed host fixtures (test/fixtures/host/NAME/):
 * inputs.json (plain data) + cpuinfo, config(.gz), modules, dmesg, group as the host had them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkHost, formatCheck, summarize, type CheckItem, type HostInputs } from '../../../src/host/check.js';
import { decodeConfigBytes } from '../../../src/host/kernel-config.js';
import { HOST_OPTIONS } from '../../../src/host/check-options.js';

const FIX = path.join(import.meta.dirname, '../../fixtures/host');

function loadHostFixture(name: string): HostInputs {
  const dir = path.join(FIX, name);
  const j = JSON.parse(fs.readFileSync(path.join(dir, 'inputs.json'), 'utf8'));
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  const kc = j.kernelConfig as { source: string; file: string; running: boolean } | undefined;
  return {
    machine: j.machine,
    kernelRelease: j.kernelRelease,
    cpuinfo: read('cpuinfo'),
    kernelConfig: kc ? { source: kc.source, running: kc.running, text: decodeConfigBytes(fs.readFileSync(path.join(dir, kc.file))) } : undefined,
    procModules: j.procModules ? read(j.procModules) : undefined,
    sysModules: j.sysModules,
    devices: j.devices,
    files: j.files,
    iommuGroups: j.iommuGroups,
    dmesg: read('dmesg'),
    groupFile: read('group'),
    tools: j.tools,
  };
}

const byId = (items: CheckItem[]) => Object.fromEntries(items.map((i) => [i.id, i]));
const statuses = (items: CheckItem[], s: string) => items.filter((i) => i.status === s).map((i) => i.id).sort();

describe('checkHost: Intel KVM host configured as the seed says', () => {
  const items = checkHost(loadHostFixture('intel-kvm'));
  const m = byId(items);
  it('passes everything, so host check exits 0', () => {
    expect(statuses(items, 'FAIL')).toEqual([]);
    expect(statuses(items, 'WARN')).toEqual([]);
    expect(summarize(items)).toMatchObject({ fail: 0, warn: 0, accel: 'kvm' });
  });
  it('reads the gzip config and reports vmx, nested, IOMMU, huge pages and KSM', () => {
    expect(m['kernel.config']!.detail).toContain('/proc/config.gz');
    expect(m['cpu.virt']!.detail).toContain('vmx');
    expect(m['kvm.device']!.detail).toContain('0660 root:kvm');
    expect(m['kvm.nested']!.detail).toBe('kvm_intel nested=Y');
    expect(m['kernel.KVM_AMD']!.detail).toContain('not needed on this Intel CPU');
    expect(m['host.iommu']!.detail).toContain('18 IOMMU groups');
    expect(m['host.iommu']!.detail).toContain('DMAR');
    expect(m['mem.hugepages']!.detail).toContain('1024 × 2048 kB reserved');
    expect(m['mem.ksm']!.detail).toContain('pages_sharing=42700');
    expect(m['host.kvm-group']!.detail).toContain('qemu,admin');
  });
  it('checks every option of the seed list', () => {
    for (const o of HOST_OPTIONS) expect(m[`kernel.${o.name}`], o.name).toBeDefined();
  });
});

describe('checkHost: AMD host on Debian’s stock kernel (everything =m)', () => {
  const items = checkHost(loadHostFixture('amd-debian'));
  const m = byId(items);
  it('has no FAIL; warns for unloaded macvlan/macvtap, TSC, huge pages, IOMMU', () => {
    expect(statuses(items, 'FAIL')).toEqual([]);
    expect(statuses(items, 'WARN')).toEqual(['host.iommu', 'kernel.MACVLAN', 'kernel.MACVTAP', 'mem.hugepages', 'time.clocksource']);
  });
  it('judges =m options by the loaded modules', () => {
    expect(m['kernel.KVM_AMD']!).toMatchObject({ status: 'PASS', detail: 'module (=m), kvm_amd loaded' });
    expect(m['kernel.VHOST_NET']!).toMatchObject({ status: 'PASS', detail: 'module (=m), vhost_net loaded' });
    expect(m['kernel.MACVTAP']!.fix).toContain('modprobe macvtap');
    expect(m['kernel.KVM_INTEL']!.detail).toBe('=m; not needed on this AMD CPU');
    expect(m['kvm.nested']!).toMatchObject({ status: 'PASS', detail: 'kvm_amd nested=1' });
  });
  it('explains that ptp_kvm needs a TSC host and that TSC is not available here', () => {
    expect(m['time.clocksource']!.detail).toContain('hpet');
    expect(m['time.clocksource']!.cost).toContain('ptp_kvm');
    expect(m['time.clocksource']!.fix).toContain('not usable');
  });
  it('names the AMD IOMMU option and kernel parameter', () => {
    expect(m['host.iommu']!.detail).toContain('CONFIG_AMD_IOMMU=y');
    expect(m['host.iommu']!.fix).toContain('amd_iommu=on');
  });
});

describe('checkHost: this machine (recorded 2026-11-26: AMD EPYC VM, kvm-pvm, no vhost-net)', () => {
  const items = checkHost(loadHostFixture('this-machine'));
  const m = byId(items);
  it('fails only on the CPU flags, and says guests run under TCG', () => {
    expect(statuses(items, 'FAIL')).toEqual(['cpu.virt']);
    expect(m['cpu.virt']!.detail).toContain('hypervisor');
    expect(m['cpu.virt']!.cost).toContain('10–50×');
    expect(summarize(items).accel).toBe('tcg');
  });
  it('says /dev/kvm exists but is the PVM flavour, and KVM is configured', () => {
    expect(m['kvm.device']!.status).toBe('WARN');
    expect(m['kvm.device']!.detail).toContain('kvm-pvm');
    expect(m['kernel.KVM']!.status).toBe('PASS');
    expect(m['kernel.KVM']!.detail).toContain('KVM_PVM=y');
  });
  it('says vhost-net is not configured, with the menuconfig path and the no-modules hint', () => {
    expect(m['kernel.VHOST_NET']!).toMatchObject({ status: 'WARN', detail: 'not set' });
    expect(m['kernel.VHOST_NET']!.menuconfig).toContain('Host kernel accelerator for virtio net');
    expect(m['kernel.VHOST_NET']!.fix).toContain('CONFIG_MODULES is not set');
    expect(m['dev.vhost-net']!.status).toBe('WARN');
  });
  it('passes the seed’s networking and KSM options, tun, tools and the TSC clocksource', () => {
    for (const id of ['kernel.TUN', 'kernel.BRIDGE', 'kernel.BRIDGE_IGMP_SNOOPING', 'kernel.MACVLAN', 'kernel.MACVTAP', 'kernel.KSM', 'dev.tun', 'tool.qemu', 'tool.qemu-img', 'tool.ip', 'time.clocksource'])
      expect(m[id]!.status, id).toBe('PASS');
    expect(m['tool.qemu']!.detail).toContain('7.2.22');
  });
  it('warns: no kvm group, no IOMMU, KVM_AMD unset on an AMD CPU without svm', () => {
    expect(statuses(items, 'WARN')).toEqual(['dev.vhost-net', 'host.iommu', 'host.kvm-group', 'kernel.KVM_AMD', 'kernel.VHOST_NET', 'kvm.device', 'kvm.nested']);
    expect(m['kernel.KVM_AMD']!.detail).toContain('useless until the CPU shows vmx/svm');
  });
});

describe('checkHost: a host missing everything', () => {
  const items = checkHost(loadHostFixture('missing-everything'));
  const m = byId(items);
  it('fails CPU, /dev/kvm, tun and the three tools', () => {
    expect(statuses(items, 'FAIL')).toEqual(['cpu.virt', 'dev.tun', 'kvm.device', 'tool.ip', 'tool.qemu', 'tool.qemu-img']);
  });
  it('gives Gentoo atoms and Debian packages for the tools', () => {
    expect(m['tool.qemu']!.gentoo).toContain('app-emulation/qemu');
    expect(m['tool.qemu']!.gentoo).toContain('QEMU_SOFTMMU_TARGETS="x86_64"');
    expect(m['tool.qemu']!.debian).toBe('qemu-system-x86');
    expect(m['tool.qemu-img']!.debian).toBe('qemu-utils');
    expect(m['tool.ip']!).toMatchObject({ debian: 'iproute2' });
    expect(m['tool.ip']!.gentoo).toContain('sys-apps/iproute2');
  });
  it('without a kernel config, says so and judges options as unknown with their menuconfig paths', () => {
    expect(m['kernel.config']!.status).toBe('WARN');
    expect(m['kernel.config']!.fix).toContain('/proc/config.gz');
    expect(m['kernel.TUN']!).toMatchObject({ status: 'WARN' });
    expect(m['kernel.TUN']!.menuconfig).toBe('Device Drivers → Network device support → Network core driver support → Universal TUN/TAP device driver support');
    expect(m['kernel.BRIDGE']!.menuconfig).toBe('Networking support → Networking options → 802.1d Ethernet Bridging');
    expect(m['kernel.KVM']!.menuconfig).toBe('Virtualization → Kernel-based Virtual Machine (KVM) support');
  });
  it('warns for the clocksource, huge pages and nested, and has no KSM runtime item', () => {
    expect(m['time.clocksource']!.status).toBe('WARN');
    expect(m['mem.hugepages']!.status).toBe('WARN');
    expect(m['kvm.nested']!.status).toBe('WARN');
    expect(m['mem.ksm']).toBeUndefined();
  });
});

describe('checkHost with a kernel config that is not the running one', () => {
  it('treats =m as present without asking for loaded modules', () => {
    const inp = loadHostFixture('this-machine');
    inp.kernelConfig = { source: 'debian.config', running: false, text: fs.readFileSync(path.join(FIX, 'debian-6.1.0-56-amd64.config'), 'utf8') };
    const m = byId(checkHost(inp));
    expect(m['kernel.config']!.detail).toContain('not the running kernel');
    expect(m['kernel.VHOST_NET']!).toMatchObject({ status: 'PASS', detail: 'module (=m, vhost_net)' });
    expect(m['kernel.KVM']!.detail).not.toContain('PVM');
  });
});

describe('formatCheck', () => {
  it('prints one line per item and costs/fixes for the others, and the verdict', () => {
    const items = checkHost(loadHostFixture('missing-everything'));
    const text = formatCheck(items, 'header');
    expect(text.split('\n')[0]).toBe('header');
    expect(text).toMatch(/^FAIL {2}CPU virtualisation \(vmx\/svm\): no vmx or svm flag/m);
    expect(text).toContain('      Debian: qemu-system-x86');
    expect(text).toContain('      menuconfig: Virtualization → Kernel-based Virtual Machine (KVM) support');
    expect(text.trimEnd().split('\n').at(-1)).toBe(`${summarize(items).pass} pass, ${summarize(items).warn} warn, 6 fail. Guests here run under TCG (software emulation, ~10–50× slower than KVM).`);
  });
});
