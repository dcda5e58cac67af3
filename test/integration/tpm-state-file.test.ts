/**
 * File-backed TPM state (`tpm: {state: FILE}`), as Proxmox keeps a VM's TPM in its tpmstate0
 * volume and runs swtpm's file backend on it (issue #18: an imported TPM keeps its state). Real
 * swtpm, real QEMU, the test guest (tpm_crb built in): a state made beforehand by swtpm_setup on
 * a file is used as it is (no swtpm_setup run, same file, the guest reads a PCR through it), an
 * absent file is made once, and a backup carries the blob.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const haveSwtpm = fs.existsSync('/usr/bin/swtpm') && fs.existsSync('/usr/bin/swtpm_setup');
let h: Home;
let paths: Paths;

beforeAll(() => {
  h = makeHome();
  paths = resolvePaths(h.env);
});
afterAll(async () => {
  await h?.cleanup();
});

const def = (name: string, state: string, extra = '') => `name: ${name}\nmemory: 256M\nmachine: q35\ntpm: { version: "2.0", state: ${state} }\nkernel: { builtin: test-guest }\nstopTimeout: 10\n${extra}`;

describe.skipIf(!haveSwtpm || !canBootGuest())('TPM state in one file (swtpm file backend)', () => {
  it('uses a state made beforehand as it is: no swtpm_setup, same file, the guest reads a PCR', async () => {
    const file = path.join(h.images, 'vm-100-disk-2.raw');
    // What Proxmox does when it creates a tpmstate volume (here a file; on LVM a block device).
    execFileSync('swtpm_setup', ['--tpm2', '--tpmstate', `file://${file}`, '--createek', '--not-overwrite', '--logfile', path.join(h.dir, 'pve-setup.log')]);
    const before = fs.statSync(file);
    expect(before.size).toBeGreaterThan(0);
    await h.apply(def('tf', file));
    const s = await h.cli(['start', 'tf', '--wait-for-guest'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.existsSync(path.join(paths.data, 'vms/tf/tpm/setup.log'))).toBe(false); // not re-made
    const pid = Number(fs.readFileSync(path.join(paths.run, 'vms/tf/swtpm.pid'), 'utf8'));
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain(`backend-uri=file://${file}`);
    const r = await serialExec(paths, 'tf', 'cat /sys/class/tpm/tpm0/tpm_version_major; cat /sys/class/tpm/tpm0/pcr-sha256/0');
    expect(r.output).toMatch(/^2$/m);
    expect(r.output).toMatch(/^[0-9A-F]{64}$/m);
    const st = await h.cli(['stop', 'tf']);
    expect(st.code, st.stderr).toBe(0);
    expect(fs.statSync(file).ino).toBe(before.ino);
    expect(fs.statSync(file).size).toBeGreaterThan(0);
  }, 180_000);

  it('an absent state file is made once by swtpm_setup; a backup carries it and restore puts it back', async () => {
    const file = path.join(h.images, 'tg-tpm.raw');
    await h.apply(def('tg', file, 'disks: [{ file: tg.qcow2, create: { size: 16M } }]\n'));
    const s = await h.cli(['start', 'tg', '--wait'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.statSync(file).size).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(paths.data, 'vms/tg/tpm/tpm.json'))).toBe(true);
    expect((await h.cli(['kill', 'tg'])).code).toBe(0);
    const repo = path.join(h.dir, 'data/backups');
    const b = await h.cli(['backup', 'create', 'tg', '--to', repo, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const m = JSON.parse(b.stdout).manifest;
    expect(m.tpm).toMatchObject({ dir: 'tpm', stateFile: file });
    const blob = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.alloc(blob.length)); // the state is damaged
    const refused = await h.cli(['backup', 'restore', `tg@${m.id}`, '--to', repo]);
    expect(refused.code).toBe(2); // exists: never overwritten without --force
    expect(refused.stderr).toMatch(/TPM state: .* exists/);
    const ok = await h.cli(['backup', 'restore', `tg@${m.id}`, '--to', repo, '--force']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(fs.readFileSync(file).equals(blob)).toBe(true);
  }, 180_000);
});
