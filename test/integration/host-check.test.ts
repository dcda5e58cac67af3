/**
 * `kvmctl host check` on the real machine, checked against what the machine really has: each
 * expectation is re-derived here from /proc/cpuinfo, /dev, the kernel config (read with zcat),
 * the tools' own --version output, sysfs, and getent.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherHostInputs } from '../../src/host/check-gather.js';
import { checkHost, summarize, type CheckItem } from '../../src/host/check.js';
import { run } from '../../src/host/exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let items: CheckItem[];
let m: Record<string, CheckItem>;
let h: Home;
beforeAll(async () => {
  items = checkHost(await gatherHostInputs());
  m = Object.fromEntries(items.map((i) => [i.id, i]));
  h = makeHome();
});
afterAll(async () => {
  await h?.cleanup();
});

/** The running kernel's config, read independently of src/host/kernel-config.ts. */
async function kernelConfigLines(): Promise<string | undefined> {
  if (fs.existsSync('/proc/config.gz')) return (await run(['zcat', '/proc/config.gz'])).stdout;
  const boot = `/boot/config-${os.release()}`;
  return fs.existsSync(boot) ? fs.readFileSync(boot, 'utf8') : undefined;
}

describe('host check on this machine', () => {
  it('cpu.virt follows the vmx/svm flags of /proc/cpuinfo', () => {
    const virt = /^flags\s*:.*\b(vmx|svm)\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    expect(m['cpu.virt']!.status).toBe(virt ? 'PASS' : 'FAIL');
    if (!virt) expect(m['cpu.virt']!.cost).toContain('TCG');
  });
  it('kvm.device follows /dev/kvm and the CPU flags', () => {
    const exists = fs.existsSync('/dev/kvm');
    const virt = /^flags\s*:.*\b(vmx|svm)\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (!exists) expect(m['kvm.device']!.detail).toBe('there is no /dev/kvm');
    else if (!virt) {
      expect(m['kvm.device']!.status).toBe('WARN');
      // This machine kind: /dev/kvm comes from the PVM flavour of KVM.
      if (fs.existsSync('/sys/module/kvm_pvm')) expect(m['kvm.device']!.detail).toContain('kvm-pvm');
    }
    expect(summarize(items).accel).toBe(exists && virt ? 'kvm' : 'tcg');
  });
  it('/dev/vhost-net and /dev/net/tun items follow /dev', () => {
    expect(m['dev.vhost-net']!.status).toBe(fs.existsSync('/dev/vhost-net') ? 'PASS' : 'WARN');
    expect(m['dev.tun']!.status).toBe(fs.existsSync('/dev/net/tun') ? 'PASS' : 'FAIL');
  });
  it('kernel options follow the running kernel config, line by line', async () => {
    const text = await kernelConfigLines();
    if (!text) {
      expect(m['kernel.config']!.status).toBe('WARN');
      return;
    }
    expect(m['kernel.config']!.status).toBe('PASS');
    for (const opt of ['KVM', 'VHOST_NET', 'TUN', 'BRIDGE', 'BRIDGE_IGMP_SNOOPING', 'MACVLAN', 'MACVTAP', 'KSM', 'CGROUPS']) {
      const line = text.split('\n').find((l) => l.startsWith(`CONFIG_${opt}=`));
      const item = m[`kernel.${opt}`]!;
      if (line === `CONFIG_${opt}=y`) expect(item, opt).toMatchObject({ status: 'PASS' });
      else if (!line) {
        expect(item.status, opt).not.toBe('PASS');
        expect(item.detail, opt).toContain('not set');
        expect(item.menuconfig, opt).toBeTruthy();
      }
    }
  });
  it('QEMU, qemu-img and ip versions are what the tools say', async () => {
    const q = await run(['qemu-system-x86_64', '--version'], { allowFailure: true }).catch(() => undefined);
    const v = /version (\d+\.\d+\.\d+)/.exec(q?.stdout ?? '')?.[1];
    if (v) expect(m['tool.qemu']!.detail).toContain(`version ${v}`);
    else expect(m['tool.qemu']!.status).toBe('FAIL');
    const ip = await run(['ip', '-V'], { allowFailure: true }).catch(() => undefined);
    const ipv = /iproute2-(?:ss)?([\w.]+)/.exec(ip?.stdout ?? '')?.[1];
    if (ipv) expect(m['tool.ip']!.detail).toContain(ipv);
    const qi = await run(['qemu-img', '--version'], { allowFailure: true }).catch(() => undefined);
    expect(m['tool.qemu-img']!.status).toBe(qi?.exitCode === 0 ? 'PASS' : 'FAIL');
  });
  it('kvm group, IOMMU groups and clocksource follow getent and sysfs', async () => {
    const g = await run(['getent', 'group', 'kvm'], { allowFailure: true });
    expect(m['host.kvm-group']!.status === 'PASS' || m['host.kvm-group']!.detail.includes('/dev/kvm belongs')).toBe(g.exitCode === 0);
    const groups = fs.existsSync('/sys/kernel/iommu_groups') ? fs.readdirSync('/sys/kernel/iommu_groups').length : 0;
    expect(m['host.iommu']!.status).toBe(groups > 0 ? 'PASS' : 'WARN');
    const cs = fs.readFileSync('/sys/devices/system/clocksource/clocksource0/current_clocksource', 'utf8').trim();
    expect(m['time.clocksource']!.status).toBe(cs === 'tsc' ? 'PASS' : 'WARN');
    expect(m['time.clocksource']!.detail).toContain(cs);
  });
});

describe('kvmctl host check (CLI)', () => {
  it('--json gives the same items; exit 1 exactly when something FAILs', async () => {
    const r = await h.cli(['host', 'check', '--json']);
    const j = JSON.parse(r.stdout) as { items: CheckItem[]; summary: { fail: number } };
    expect(j.items.map((i) => `${i.id}:${i.status}`)).toEqual(items.map((i) => `${i.id}:${i.status}`));
    expect(r.code).toBe(j.summary.fail > 0 ? 1 : 0);
  });
  it('text output: one line per item and the verdict', async () => {
    const r = await h.cli(['host', 'check']);
    expect(r.stdout).toMatch(/^(PASS|WARN|FAIL) {2}CPU virtualisation/m);
    expect(r.stdout).toMatch(/\d+ pass, \d+ warn, \d+ fail\. Guests here run under (KVM|TCG)/);
  });
  it('--kernel-config judges another kernel’s .config; a missing file is bad input (exit 2)', async () => {
    const file = path.join(import.meta.dirname, '../fixtures/host/debian-6.1.0-56-amd64.config');
    const r = await h.cli(['host', 'check', '--json', '--kernel-config', file]);
    const j = JSON.parse(r.stdout) as { kernelConfig: string; items: CheckItem[] };
    expect(j.kernelConfig).toBe(file);
    expect(j.items.find((i) => i.id === 'kernel.VHOST_NET')).toMatchObject({ status: 'PASS', detail: 'module (=m, vhost_net)' });
    const bad = await h.cli(['host', 'check', '--kernel-config', '/nonexistent/config']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('/nonexistent/config');
  });
});
