/** The HMP monitor socket of a running VM (the seed's -monitor unix:…), for interactive sessions. */
import path from 'node:path';
import { badInput } from '../errors.js';
import { vmRunDir, type Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';

export async function monitorSocketFor(paths: Paths, name: string): Promise<string> {
  const vm = readVm(paths, name);
  if (vm.monitor === true) return path.join(vmRunDir(paths, name), 'monitor.sock');
  if (vm.monitor !== false && 'socket' in vm.monitor) return vm.monitor.socket;
  throw badInput('NO_MONITOR', `VM "${name}" has no monitor socket`, `add "monitor: true" to its definition for an interactive monitor, or run one command: kvmctl monitor ${name} 'info status'`);
}
