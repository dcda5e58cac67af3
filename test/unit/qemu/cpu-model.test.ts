/**
 * cpu.model and cpu.enforce against the host QEMU's `-cpu help` (recorded from QEMU 7.2 in
 * test/fixtures/qemu/cpu-help-7.2.txt): parse, and the pure check in buildArgv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { KVM_HOST_FACTS, TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { parseCpuHelp } from '../../../src/host/probe.js';
import { vmSchema, type VmSpec } from '../../../src/definition/vm.js';

const help = parseCpuHelp(fs.readFileSync(path.resolve(__dirname, '../../fixtures/qemu/cpu-help-7.2.txt'), 'utf8'));
const kvm = { ...KVM_HOST_FACTS, ...help };
const tcg = { ...TCG_HOST_FACTS, ...help };
const ctx: ArgvContext = {
  runtime: { dir: '/r', qmp: '/r/qmp.sock', serial: '/r/serial.sock', serialLog: '/r/serial.log', pidfile: '/r/qemu.pid', vnc: '/r/vnc.sock' },
  imagesDir: '/img',
  attachments: [],
};
const vm = (cpu: object): VmSpec => vmSchema.parse({ name: 'c', cpu });
const cpuOf = (v: VmSpec, f = kvm) => {
  const a = buildArgv(v, f, ctx).argv;
  return a[a.indexOf('-cpu') + 1];
};

describe('-cpu help', () => {
  it('parses models (versions, aliases, host, max) and the CPUID flags', () => {
    expect(help.cpuModels).toEqual(expect.arrayContaining(['486', 'Skylake-Server', 'Skylake-Server-v4', 'EPYC-Rome', 'host', 'max', 'qemu64']));
    expect(help.cpuModels).not.toContain('Available');
    expect(help.cpuFlags).toEqual(expect.arrayContaining(['avx2', 'x2apic', 'pcid', 'xsaves']));
    expect(help.cpuModels.length).toBeGreaterThan(100);
  });
});

describe('cpu.model checked against the host QEMU', () => {
  it('known models and flags pass through unchanged; host becomes max under TCG', () => {
    expect(cpuOf(vm({ model: 'Skylake-Server-v4,+avx2,-hle' }))).toBe('Skylake-Server-v4,+avx2,-hle');
    expect(cpuOf(vm({ model: 'host' }), tcg)).toBe('max');
    expect(cpuOf(vm({ model: 'host' }))).toBe('host');
    // Properties other than +flag/-flag are QEMU's business (level=, model-id=, hv-*): not checked here.
    expect(cpuOf(vm({ model: 'EPYC,hv-relaxed=on,l3-cache=on' }))).toBe('EPYC,hv-relaxed=on,l3-cache=on');
  });

  it('an unknown model is refused (exit 2) with the nearest names', () => {
    expect(() => cpuOf(vm({ model: 'Skylake-Servr' }))).toThrow(expect.objectContaining({ code: 'CPU_MODEL_UNKNOWN', exit: 2 }));
    expect(() => cpuOf(vm({ model: 'Skylake-Servr' }))).toThrow(/CPU model "Skylake-Servr" is not known to \/usr\/bin\/qemu-system-x86_64 \(close: Skylake-Server, /);
    expect(() => cpuOf(vm({ model: 'epyc-rome' }))).toThrow(/close: EPYC-Rome/);
    expect(() => cpuOf(vm({ model: 'zzzzzzzz' }))).toThrow(/"zzzzzzzz" is not known to \/usr\/bin\/qemu-system-x86_64$/);
  });

  it('an unknown +flag is refused with close flags; model and flag problems together', () => {
    expect(() => cpuOf(vm({ model: 'Haswell,+avx3' }))).toThrow(/CPU feature "avx3" is not a CPUID flag .* \(close: avx, avx2/);
    expect(() => cpuOf(vm({ model: 'Haswel,-x2apc' }))).toThrow(/CPU model "Haswel".*; CPU feature "x2apc".*close: x2apic/);
  });

  it('enforce: enforce=on after the model and its flags; off by default', () => {
    expect(cpuOf(vm({ model: 'Nehalem', enforce: true }))).toBe('Nehalem,enforce=on');
    expect(cpuOf(vm({ model: 'host', enforce: true }), tcg)).toBe('max,enforce=on');
    expect(cpuOf(vm({ model: 'Nehalem,+avx', enforce: true }))).toBe('Nehalem,+avx,enforce=on');
  });

  it('facts without -cpu help (an old cache, a QEMU that would not say): no check', () => {
    expect(cpuOf(vm({ model: 'Anything' }), KVM_HOST_FACTS)).toBe('Anything');
  });
});
