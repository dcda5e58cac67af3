import { vmRuntimeFiles, vmStateDir, type Paths } from '../host/paths.js';
import type { RuntimePaths } from '../qemu/argv.js';
import type { VmSpec } from '../definition/vm.js';

export function runtimePaths(paths: Paths, name: string): RuntimePaths {
  const f = vmRuntimeFiles(paths, name);
  return { dir: f.dir, qmp: f.qmp, serial: f.serial, serialLog: f.serialLog, pidfile: f.pidfile, vnc: f.vnc, qmpEvents: `${f.dir}/qmp-events.sock`, qga: `${f.dir}/qga.sock`, tpm: `${f.dir}/swtpm.sock` };
}

/** The VM's own UEFI vars: the definition's firmware.vars (an imported NVRAM), else nvram.fd in its state dir. */
export function nvramPath(paths: Paths, vm: Pick<VmSpec, 'name' | 'firmware'>): string {
  return vm.firmware?.vars ?? `${vmStateDir(paths, vm.name)}/nvram.fd`;
}
