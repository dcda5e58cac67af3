/**
 * `rm`: a VM's definition goes; its disks stay (unless asked), and a running VM is refused. Its
 * persistent state (UEFI vars, TPM state: <data>/vms/NAME) stays too unless `purgeState` is given,
 * so a VM defined again under the same name finds its boot entries, keys and TPM secrets.
 */
import fs from 'node:fs';
import { badInput } from '../errors.js';
import { vmRunDir, vmStateDir, type Paths } from '../host/paths.js';
import { removeDef } from '../definition/store.js';
import { vmStatus } from './status.js';

export type RemoveResult = { removed: string; stateDir: string; state: 'kept' | 'purged' | 'none' };

export async function removeVm(paths: Paths, name: string, opts: { purgeState?: boolean } = {}): Promise<RemoveResult> {
  const s = await vmStatus(paths, name);
  if (s.state !== 'stopped' && s.state !== 'crashed') {
    throw badInput('VM_RUNNING', `VM "${name}" is ${s.state}`, `stop it first: kvmctl stop ${name}`);
  }
  removeDef(paths, 'vm', name);
  fs.rmSync(vmRunDir(paths, name), { recursive: true, force: true });
  const stateDir = vmStateDir(paths, name);
  if (!fs.existsSync(stateDir)) return { removed: name, stateDir, state: 'none' };
  if (!opts.purgeState) return { removed: name, stateDir, state: 'kept' };
  fs.rmSync(stateDir, { recursive: true, force: true });
  return { removed: name, stateDir, state: 'purged' };
}
