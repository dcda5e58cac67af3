/**
 * UEFI and Secure Boot on real QEMU with Debian's OVMF (issue #15 item 1), with the test guest's
 * kernel booted through OVMF: the VM gets its own vars from the Microsoft-keys template at its
 * first start, the guest runs with EFI and Secure Boot on, and the vars the firmware wrote are
 * kept (not reset from the template) across a stop and a start. Secure Boot on `pc` is refused
 * with exit 2 and nothing is made.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.ms.fd';
const have = fs.existsSync(TEMPLATE);
let h: Home;
let paths: Paths;
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
}, 30_000);
afterAll(async () => {
  await h?.cleanup();
});

describe.skipIf(!have)('UEFI Secure Boot with per-VM vars', () => {
  const nvram = () => path.join(paths.data, 'vms/sb/nvram.fd');
  it('first start copies the Microsoft-keys vars and boots with EFI and Secure Boot on', async () => {
    await h.apply('name: sb\nmemory: 256M\nfirmware: uefi-secure\nkernel: { builtin: test-guest }\nstopTimeout: 20\n');
    const cmd = await h.cli(['cmdline', 'sb']);
    expect(cmd.stdout).toContain('smm=on');
    expect(cmd.stdout).toContain(`file=${nvram()}`);
    expect(fs.existsSync(nvram())).toBe(false); // cmdline changes nothing
    const s = await h.cli(['start', 'sb', '--wait-for-guest'], { timeoutMs: 180_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.statSync(nvram()).size).toBe(fs.statSync(TEMPLATE).size);
    const efi = await serialExec(paths, 'sb', 'test -d /sys/firmware/efi && echo efi-yes; dmesg | grep -E "secureboot: Secure boot enabled|locked down from EFI Secure Boot"');
    expect(efi.output).toContain('efi-yes');
    expect(efi.output).toContain('secureboot: Secure boot enabled');
    expect(efi.output).toContain('Kernel is locked down from EFI Secure Boot'); // the guest kernel checked the firmware's SB state
  }, 200_000);

  it('the vars OVMF wrote survive a stop and a start (never reset from the template)', async () => {
    const st = await h.cli(['stop', 'sb']);
    expect(st.code, st.stderr).toBe(0);
    const afterFirst = sha(nvram());
    expect(afterFirst).not.toBe(sha(TEMPLATE)); // the firmware stored its boot options
    const ino = fs.statSync(nvram()).ino;
    const s = await h.cli(['start', 'sb', '--wait-for-guest'], { timeoutMs: 180_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.statSync(nvram()).ino).toBe(ino);
    await h.cli(['stop', 'sb']);
    expect(sha(nvram())).not.toBe(sha(TEMPLATE));
  }, 200_000);

  it('host check lists both OVMF images', async () => {
    const r = await h.cli(['host', 'check', '--json']);
    const items = JSON.parse(r.stdout).items as { id: string; status: string; detail: string }[];
    expect(items.find((i) => i.id === 'firmware.uefi-secure')).toMatchObject({ status: 'PASS' });
    expect(items.find((i) => i.id === 'firmware.uefi-secure')!.detail).toContain('OVMF_VARS_4M.ms.fd');
    expect(items.find((i) => i.id === 'firmware.uefi')).toMatchObject({ status: 'PASS' });
  }, 60_000);
});

describe('Secure Boot needs q35', () => {
  it('is refused on pc and on microvm with exit 2, and nothing is stored', async () => {
    for (const m of ['pc', 'microvm']) {
      const f = path.join(h.dir, `sb-${m}.yaml`);
      fs.writeFileSync(f, `name: sb-${m}\nmachine: ${m}\nfirmware: uefi-secure\nkernel: { builtin: test-guest }\n`);
      const r = await h.cli(['apply', '-f', f]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/firmware uefi-secure needs machine q35/);
      expect(fs.existsSync(path.join(paths.vmDefs, `sb-${m}.yaml`))).toBe(false);
    }
  }, 60_000);
});
