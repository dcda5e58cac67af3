/**
 * Read the real machine into `HostInputs` for the pure `checkHost`. Tools are run through
 * exec.ts; everything else is a file read. Nothing here fails: what cannot be read is recorded
 * as absent and judged as such.
 */
import { probeFirmware } from './firmware-probe.js';
import { readTuningFacts, sysfsRoot } from './tuning-facts.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './exec.js';
import { findQemu } from './probe.js';
import { findRunningKernelConfig, readKernelConfigFile } from './kernel-config.js';
import { DEVICES, FILES, type DeviceState, type FileKey, type HostInputs, type ToolState } from './check.js';

function readText(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

function nameById(file: string, id: number): string | undefined {
  for (const line of (readText(file) ?? '').split('\n')) {
    const f = line.split(':');
    if (f[2] === String(id)) return f[0];
  }
  return undefined;
}

function deviceState(dev: string): DeviceState {
  let st: fs.Stats;
  try {
    st = fs.statSync(dev);
  } catch {
    return { exists: false, rw: false };
  }
  let rw = false;
  try {
    fs.closeSync(fs.openSync(dev, 'r+'));
    rw = true;
  } catch {
    /* not for this user */
  }
  return {
    exists: true,
    rw,
    mode: (st.mode & 0o777).toString(8).padStart(4, '0'),
    owner: nameById('/etc/passwd', st.uid) ?? String(st.uid),
    group: nameById('/etc/group', st.gid) ?? String(st.gid),
  };
}

/** A program on PATH (plus the sbin dirs, which a non-root PATH often lacks). */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

async function output(argv: string[]): Promise<string | undefined> {
  try {
    const r = await run(argv, { allowFailure: true, timeoutMs: 10_000 });
    return r.exitCode === 0 ? `${r.stdout}\n${r.stderr}` : undefined;
  } catch {
    return undefined;
  }
}

async function qemuState(): Promise<ToolState> {
  const q = findQemu();
  const p = q.includes('/') ? (fs.existsSync(q) ? q : undefined) : findTool(q);
  if (!p) return {};
  const [ver, accel] = await Promise.all([output([p, '--version']), output([p, '-accel', 'help'])]);
  return {
    path: p,
    version: /version (\d+\.\d+(?:\.\d+)?)/.exec(ver ?? '')?.[1],
    accels: accel === undefined ? undefined : accel.split('\n').slice(1).map((l) => l.trim()).filter(Boolean),
  };
}

async function toolState(name: string, versionArgv: string[], re: RegExp): Promise<ToolState> {
  const p = findTool(name);
  if (!p) return {};
  const out = await output([p, ...versionArgv]);
  return { path: p, version: re.exec(out ?? '')?.[1] };
}

function iommuGroups(): number {
  try {
    return fs.readdirSync('/sys/kernel/iommu_groups').length;
  } catch {
    return 0;
  }
}

/** Read this machine. `kernelConfigFile` replaces the running kernel's config (it is then not "running"). */
export async function gatherHostInputs(opts: { kernelConfigFile?: string } = {}): Promise<HostInputs> {
  const release = os.release();
  let kernelConfig: HostInputs['kernelConfig'];
  if (opts.kernelConfigFile) {
    kernelConfig = { source: opts.kernelConfigFile, text: readKernelConfigFile(opts.kernelConfigFile), running: false };
  } else {
    const found = findRunningKernelConfig(release);
    if (found) kernelConfig = { ...found, running: true };
  }
  const files: Partial<Record<FileKey, string>> = {};
  for (const [k, p] of Object.entries(FILES) as [FileKey, string][]) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch {
      continue;
    }
    const t = st.isDirectory() ? '' : readText(p);
    if (t !== undefined) files[k] = t;
  }
  let sysModules: string[] = [];
  try {
    sysModules = fs.readdirSync('/sys/module').sort();
  } catch {
    /* no sysfs */
  }
  const [qemu, qemuImg, ip, dmesg, machine, swtpm] = await Promise.all([
    qemuState(),
    toolState('qemu-img', ['--version'], /version (\d+\.\d+(?:\.\d+)?)/),
    toolState('ip', ['-V'], /iproute2-(?:ss)?([\w.]+)/),
    output(['dmesg']),
    output(['uname', '-m']),
    toolState('swtpm', ['--version'], /version (\d+\.\d+(?:\.\d+)?)/),
  ]);
  return {
    machine: machine?.trim() || (os.arch() === 'x64' ? 'x86_64' : os.arch()),
    kernelRelease: release,
    cpuinfo: readText('/proc/cpuinfo') ?? '',
    kernelConfig,
    procModules: readText('/proc/modules'),
    sysModules,
    devices: Object.fromEntries(DEVICES.map((d) => [d, deviceState(d)])) as HostInputs['devices'],
    files,
    iommuGroups: iommuGroups(),
    tuning: readTuningFacts(sysfsRoot()),
    dmesg,
    groupFile: readText('/etc/group') ?? '',
    tools: { qemu, qemuImg, ip, swtpm },
    firmware: probeFirmware(),
  };
}
