/**
 * Probe the host once and cache the answer (keyed on the QEMU binary's path, size and mtime and
 * on /dev/kvm and /dev/vhost-net), so `kvmctl start` and `cmdline` pay nothing on later runs.
 */
import { firmwareKey, probeFirmware } from './firmware-probe.js';
import fs from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';
import type { HostFacts } from './facts.js';
import type { Paths } from './paths.js';

const QEMU_CANDIDATES = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64', '/usr/libexec/qemu-kvm'];

export function findQemu(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KVMCTL_QEMU) return env.KVMCTL_QEMU;
  for (const c of QEMU_CANDIDATES) if (fs.existsSync(c)) return c;
  for (const dir of (env.PATH ?? '').split(':')) {
    const c = path.join(dir, 'qemu-system-x86_64');
    if (dir && fs.existsSync(c)) return c;
  }
  return 'qemu-system-x86_64';
}

function canOpenRw(dev: string): boolean {
  try {
    fs.closeSync(fs.openSync(dev, 'r+'));
    return true;
  } catch {
    return false;
  }
}

function cpuHasVirt(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/** Decide if KVM is usable from what the host shows. Pure: tested with fixtures. */
export function kvmUsable(devKvmOpens: boolean, devKvmExists: boolean, cpuinfo: string): { kvm: boolean; why?: string } {
  if (!devKvmExists) return { kvm: false, why: 'there is no /dev/kvm' };
  if (!devKvmOpens) return { kvm: false, why: '/dev/kvm cannot be opened read-write by this user (add it to the kvm group)' };
  // /dev/kvm can exist without hardware virtualisation (e.g. the PVM flavour of KVM, which runs
  // only PVM-enabled guest kernels): a normal guest would not boot there.
  if (!cpuHasVirt(cpuinfo)) return { kvm: false, why: 'the CPU has no hardware virtualisation (no vmx/svm flag); /dev/kvm here cannot run ordinary guests' };
  return { kvm: true };
}

function cacheKey(qemu: string): string {
  const st = (p: string) => {
    try {
      const s = fs.statSync(p);
      return `${s.size}:${s.mtimeMs}:${s.rdev}`;
    } catch {
      return '-';
    }
  };
  return [qemu, st(qemu), st('/dev/kvm'), st('/dev/vhost-net'), process.getuid?.(), 'tsc', 'cpu-help', `fw:${firmwareKey()}`].join('|');
}

export async function probeHost(paths: Paths, opts: { fresh?: boolean } = {}): Promise<HostFacts> {
  const qemu = findQemu();
  const key = cacheKey(qemu);
  const cacheFile = path.join(paths.cache, 'host-facts.json');
  if (!opts.fresh) {
    try {
      const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { key: string; facts: HostFacts };
      if (c.key === key) return c.facts;
    } catch {
      /* no cache yet */
    }
  }
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const k = kvmUsable(canOpenRw('/dev/kvm'), fs.existsSync('/dev/kvm'), cpuinfo);
  const facts: HostFacts = {
    qemuBinary: qemu,
    kvm: k.kvm,
    kvmWhy: k.why,
    vhostNet: fs.existsSync('/dev/vhost-net'),
    machines: [],
    accels: [],
    runAs: 'none',
    sandbox: false,
    tscKhz: tscKhz(cpuinfo),
    firmware: probeFirmware(),
  };
  const [ver, machines, accels, help, cpuHelp] = await Promise.all([
    run([qemu, '--version'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined),
    run([qemu, '-machine', 'help'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined),
    run([qemu, '-accel', 'help'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined),
    run([qemu, '-help'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined),
    run([qemu, '-cpu', 'help'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined),
  ]);
  if (cpuHelp?.exitCode === 0) Object.assign(facts, parseCpuHelp(cpuHelp.stdout));
  facts.qemuVersion = /version (\d+\.\d+(?:\.\d+)?)/.exec(ver?.stdout ?? '')?.[1];
  facts.machines = parseMachineHelp(machines?.stdout ?? '');
  facts.accels = (accels?.stdout ?? '').split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  const h = help?.stdout ?? '';
  facts.runAs = /^-run-with\b.*user=/m.test(h) ? 'run-with' : /^-runas\b/m.test(h) ? 'runas' : 'none';
  facts.sandbox = /^-sandbox\b/m.test(h);
  if (facts.qemuVersion) {
    fs.mkdirSync(paths.cache, { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ key, facts }, null, 2));
    fs.renameSync(tmp, cacheFile);
  }
  return facts;
}

/** The host's TSC rate from /proc/cpuinfo ("cpu MHz" is the TSC rate when the TSC is constant). Pure. */
export function tscKhz(cpuinfo: string): number | undefined {
  if (!/^flags\s*:.*\bconstant_tsc\b/m.test(cpuinfo)) return undefined;
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
  return mhz > 0 ? Math.round(mhz * 1000) : undefined;
}

/** `-machine help` → machine names, aliases included ("q35  ... (alias of pc-q35-7.2)"). */
export function parseMachineHelp(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const m = /^(\S+)\s/.exec(line);
    if (m) out.add(m[1]!);
    const alias = /\(alias of (\S+)\)/.exec(line);
    if (alias) out.add(alias[1]!);
  }
  return [...out];
}

/** `-cpu help` → model names (versions and aliases included) and the CPUID flags QEMU recognises. Pure. */
export function parseCpuHelp(text: string): { cpuModels: string[]; cpuFlags: string[] } {
  const [models = '', flags = ''] = text.split(/^Recognized CPUID flags:$/m);
  const cpuModels = new Set<string>();
  for (const line of models.split('\n')) {
    const m = /^\S+\s+(\S+)/.exec(line);
    if (m && line !== 'Available CPUs:') cpuModels.add(m[1]!);
  }
  return { cpuModels: [...cpuModels], cpuFlags: flags.split(/\s+/).filter(Boolean) };
}
