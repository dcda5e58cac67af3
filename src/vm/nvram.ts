/**
 * A VM's own UEFI vars (NVRAM): copied from the firmware's template at the VM's first UEFI start,
 * never shared, never overwritten or reset by kvmctl (boot entries, Secure Boot keys and MOK
 * state live there). Removed only with the VM's state (`kvmctl rm --purge-state`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import type { FirmwareChoice } from '../qemu/firmware.js';
import { OVMF_HINT } from '../qemu/firmware.js';
import type { VmSpec } from '../definition/vm.js';
import { nvramPath } from './runtime-paths.js';

export type NvramMeta = { template: string; code: string; type: string; createdAt: string };
export type NvramResult = { file: string; created: boolean; warnings: string[] };

const metaFile = (file: string) => `${file}.json`;

export function readNvramMeta(file: string): NvramMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(metaFile(file), 'utf8')) as NvramMeta;
  } catch {
    return undefined;
  }
}

export function ensureNvram(paths: Paths, vm: Pick<VmSpec, 'name' | 'firmware'>, fw: FirmwareChoice, owner?: { uid: number; gid: number }): NvramResult {
  const file = nvramPath(paths, vm);
  const warnings: string[] = [];
  if (fs.existsSync(file)) {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new KvmError('NVRAM_BAD', `${file} (the VM's UEFI vars) is not a regular file`, { exit: 2, hint: 'point firmware.vars at a vars file, or move this aside' });
    const meta = readNvramMeta(file);
    const tplSize = fw.varsTemplate && fs.existsSync(fw.varsTemplate) ? fs.statSync(fw.varsTemplate).size : undefined;
    if (tplSize !== undefined && st.size !== tplSize) {
      throw new KvmError('NVRAM_MISMATCH', `${file} is ${st.size} bytes but the firmware's vars are ${tplSize} bytes (${fw.varsTemplate}): it belongs to another firmware build`, {
        exit: 2,
        hint: `kvmctl never overwrites a VM's NVRAM: stop the VM, move ${file} aside and start again for a fresh copy, or set firmware.code to the firmware it was made with`,
      });
    }
    if (meta && fw.varsTemplate && meta.template !== fw.varsTemplate) {
      warnings.push(
        `the VM's UEFI vars were made from ${meta.template} (firmware ${meta.type}) and are kept; the firmware now is ${fw.type} (template ${fw.varsTemplate})` +
          (fw.type === 'uefi-secure' && meta.type !== 'uefi-secure' ? ': Secure Boot stays off until keys are enrolled; move nvram.fd aside (VM stopped) for a copy with the Microsoft keys' : ''),
      );
    }
    return { file, created: false, warnings };
  }
  if (!fw.varsTemplate) throw new KvmError('FIRMWARE_MISSING', `the firmware ${fw.code} has no vars template to copy for VM "${vm.name}"`, { hint: `set firmware.varsTemplate, or ${OVMF_HINT}` });
  if (!fs.existsSync(fw.varsTemplate)) throw new KvmError('FIRMWARE_MISSING', `the vars template ${fw.varsTemplate} does not exist`, { hint: OVMF_HINT });
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Copy to a temp name, then link into place: the file appears whole or not at all, and an
  // existing one (another start, a race) is never replaced.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.copyFileSync(fw.varsTemplate, tmp);
  fs.chmodSync(tmp, 0o600);
  if (owner) fs.chownSync(tmp, owner.uid, owner.gid);
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return { file, created: false, warnings };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const meta: NvramMeta = { template: fw.varsTemplate, code: fw.code, type: fw.type, createdAt: new Date().toISOString() };
  fs.writeFileSync(metaFile(file), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
  return { file, created: true, warnings };
}
