/**
 * A VM's own UEFI vars (issue #15 item 1), on real files in a temp home: made from the template at
 * the first start, never overwritten afterwards, refused when it belongs to another firmware
 * build; and the path check of the firmware fields.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../../src/host/paths.js';
import { storageRoots } from '../../../src/host/storage-roots.js';
import type { FirmwareChoice } from '../../../src/qemu/firmware.js';
import { validateVm } from '../../../src/definition/load.js';
import { ensureNvram, readNvramMeta } from '../../../src/vm/nvram.js';
import { vmPathIssues } from '../../../src/vm/path-check.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'knv-'));
const paths = resolvePaths({ KVMCTL_HOME: home });
fs.mkdirSync(paths.images, { recursive: true });
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

const tpl = path.join(paths.images, 'VARS.fd');
fs.writeFileSync(tpl, Buffer.alloc(4096, 7));
const fw: FirmwareChoice = { type: 'uefi', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', varsTemplate: tpl, smm: false, from: 'test' };

describe('ensureNvram', () => {
  it('copies the template once (0600, with a note of where it came from), then keeps what the guest wrote', () => {
    const a = ensureNvram(paths, { name: 'v1' }, fw);
    expect(a.created).toBe(true);
    expect(a.file).toBe(path.join(paths.data, 'vms/v1/nvram.fd'));
    expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
    expect(readNvramMeta(a.file)).toMatchObject({ template: tpl, type: 'uefi' });
    fs.writeFileSync(a.file, Buffer.alloc(4096, 9)); // the guest wrote a boot entry
    const b = ensureNvram(paths, { name: 'v1' }, fw);
    expect(b.created).toBe(false);
    expect(fs.readFileSync(a.file)[0]).toBe(9);
    expect(fs.readdirSync(path.dirname(a.file)).sort()).toEqual(['nvram.fd', 'nvram.fd.json']); // no temp file left
  });
  it('two VMs never share one', () => {
    const x = ensureNvram(paths, { name: 'v2' }, fw).file;
    const y = ensureNvram(paths, { name: 'v3' }, fw).file;
    expect(x).not.toBe(y);
    expect(fs.statSync(x).ino).not.toBe(fs.statSync(y).ino);
  });
  it('vars of another size (another firmware build) are refused, not replaced', () => {
    const f = ensureNvram(paths, { name: 'v4' }, fw).file;
    fs.writeFileSync(f, Buffer.alloc(100, 1));
    expect(() => ensureNvram(paths, { name: 'v4' }, fw)).toThrow(/100 bytes but the firmware's vars are 4096 bytes/);
    expect(fs.statSync(f).size).toBe(100);
  });
  it('a firmware change keeps the old vars and says what that means for Secure Boot', () => {
    ensureNvram(paths, { name: 'v5' }, fw);
    const tpl2 = path.join(paths.images, 'VARS.ms.fd');
    fs.writeFileSync(tpl2, Buffer.alloc(4096, 8));
    const r = ensureNvram(paths, { name: 'v5' }, { ...fw, type: 'uefi-secure', varsTemplate: tpl2, smm: true });
    expect(r.created).toBe(false);
    expect(r.warnings.join('\n')).toMatch(/Secure Boot stays off until keys are enrolled/);
  });
  it("firmware.vars names an imported VM's NVRAM, which is used as it is", () => {
    const own = path.join(paths.images, 'imported_VARS.fd');
    fs.writeFileSync(own, Buffer.alloc(4096, 3));
    const r = ensureNvram(paths, { name: 'v6', firmware: { type: 'uefi', vars: own } }, fw);
    expect(r).toMatchObject({ file: own, created: false });
    expect(fs.readFileSync(own)[0]).toBe(3);
  });
});

describe('path check of the firmware fields', () => {
  const issues = (firmware: unknown) => vmPathIssues(validateVm({ name: 'v', firmware, kernel: { builtin: 'test-guest' } }), paths, storageRoots(paths, {}));
  it("firmware images may be read from the distribution's firmware dirs; vars must be in a root or kvmctl's state", () => {
    expect(issues({ type: 'uefi', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd' })).toEqual([]);
    expect(issues({ type: 'uefi', vars: path.join(paths.data, 'vms/v/nvram.fd') })).toEqual([]);
    expect(issues({ type: 'uefi', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' }).map((i) => i.path)).toEqual(['firmware.vars']);
    expect(issues({ type: 'uefi', code: '/etc/passwd' }).map((i) => i.path)).toEqual(['firmware.code']);
  });
});
