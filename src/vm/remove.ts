/** `rm`: a VM's definition goes; its disks stay (unless asked), and a running VM is refused. */
import fs from 'node:fs';
import { badInput } from '../errors.js';
import { vmRunDir, type Paths } from '../host/paths.js';
import { removeDef } from '../spec/store.js';
import { vmStatus } from './status.js';

export async function removeVm(paths: Paths, name: string): Promise<void> {
  const s = await vmStatus(paths, name);
  if (s.state !== 'stopped' && s.state !== 'crashed') {
    throw badInput('VM_RUNNING', `VM "${name}" is ${s.state}`, `stop it first: kvmctl stop ${name}`);
  }
  removeDef(paths, 'vm', name);
  fs.rmSync(vmRunDir(paths, name), { recursive: true, force: true });
}
