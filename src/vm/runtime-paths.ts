import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import type { RuntimePaths } from '../qemu/argv.js';

export function runtimePaths(paths: Paths, name: string): RuntimePaths {
  const f = vmRuntimeFiles(paths, name);
  return { dir: f.dir, qmp: f.qmp, serial: f.serial, serialLog: f.serialLog, pidfile: f.pidfile, vnc: f.vnc, qmpEvents: `${f.dir}/qmp-events.sock` };
}
