/**
 * The managed vTPM (issue #15 item 2) on real QEMU and Debian's swtpm, with the test guest (its
 * Debian kernel has tpm_crb built in): the state is made once with swtpm_setup (kvmctl's own
 * local CA, never /var/lib/swtpm-localca) and kept across starts; the guest sees a TPM 2.0 and
 * reads a PCR through it; after stop, and after kill -9 of QEMU, no swtpm of the VM is left; `rm`
 * keeps the state and `rm --purge-state` deletes it; TPM 1.2 state is not reused for a 2.0 TPM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const haveSwtpm = fs.existsSync('/usr/bin/swtpm') && fs.existsSync('/usr/bin/swtpm_setup');
let h: Home;
let paths: Paths;
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
const swtpmPid = () => Number(fs.readFileSync(path.join(paths.run, 'vms/tv/swtpm.pid'), 'utf8'));
const stateDir = () => path.join(paths.data, 'vms/tv/tpm');
const localCaBefore = fs.existsSync('/var/lib/swtpm-localca') ? fs.readdirSync('/var/lib/swtpm-localca').sort() : undefined;

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
}, 30_000);
afterAll(async () => {
  await h?.cleanup();
});

describe.skipIf(!haveSwtpm || !canBootGuest())('vTPM with swtpm', () => {
  const def = (v = '2.0') => `name: tv\nmemory: 256M\nmachine: q35\ntpm: { version: "${v}" }\nkernel: { builtin: test-guest }\nstopTimeout: 10\n`;

  it('first start makes the TPM state and the guest reads a PCR through swtpm', async () => {
    await h.apply(def());
    const cmd = await h.cli(['cmdline', 'tv']);
    expect(cmd.stdout).toContain('tpm-crb');
    // not the PVH vmlinux: its initrd would overlap SeaBIOS's ACPI tables once a TPM log is reserved
    expect(cmd.stdout).toMatch(/-kernel \S+\/vmlinuz/);
    expect(fs.existsSync(stateDir())).toBe(false); // cmdline changes nothing
    const s = await h.cli(['start', 'tv', '--wait-for-guest'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.statSync(stateDir()).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(path.join(stateDir(), 'tpm2-00.permall'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(stateDir(), 'tpm.json'), 'utf8'))).toMatchObject({ version: '2.0', certs: true });
    expect(fs.existsSync(path.join(paths.data, 'tpm-ca/issuercert.pem'))).toBe(true); // kvmctl's own CA
    expect(alive(swtpmPid())).toBe(true);
    const r = await serialExec(paths, 'tv', 'cat /sys/class/tpm/tpm0/tpm_version_major; cat /sys/class/tpm/tpm0/pcr-sha256/0');
    expect(r.output).toMatch(/^2$/m);
    expect(r.output).toMatch(/^[0-9A-F]{64}$/m); // PCR 0, read from the TPM by the guest kernel
  }, 150_000);

  it('after stop no swtpm of the VM runs; the state is kept and reused at the next start', async () => {
    const pid = swtpmPid();
    const st = await h.cli(['stop', 'tv']);
    expect(st.code, st.stderr).toBe(0);
    expect(alive(pid)).toBe(false);
    const keep = fs.readFileSync(path.join(stateDir(), 'tpm.json'), 'utf8');
    const s = await h.cli(['start', 'tv', '--wait-for-guest'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(fs.readFileSync(path.join(stateDir(), 'tpm.json'), 'utf8')).toBe(keep); // not made again
    expect(fs.existsSync(path.join(stateDir(), 'tpm2-00.permall'))).toBe(true);
  }, 150_000);

  it('after kill -9 of QEMU, status leaves no swtpm behind', async () => {
    const tpmPid = swtpmPid();
    const qemuPid = Number(fs.readFileSync(path.join(paths.run, 'vms/tv/qemu.pid'), 'utf8'));
    process.kill(qemuPid, 'SIGKILL');
    const end = Date.now() + 10_000;
    while (alive(qemuPid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const s = await h.cli(['status', 'tv', '--json']);
    expect(JSON.parse(s.stdout).state).toBe('crashed');
    expect(alive(tpmPid)).toBe(false);
    expect(fs.existsSync(path.join(paths.run, 'vms/tv/swtpm.pid'))).toBe(false);
  }, 60_000);

  it('a TPM 2.0 definition over TPM 1.2 state is refused (exit 2) and the state is untouched', async () => {
    await h.apply(def().replace('name: tv', 'name: tv12'));
    const dir = path.join(paths.data, 'vms/tv12/tpm');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tpm-00.permall'), 'old 1.2 state');
    const r = await h.cli(['start', 'tv12']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TPM 1\.2 state/);
    expect(fs.readdirSync(dir)).toEqual(['tpm-00.permall']);
    expect(fs.readFileSync(path.join(dir, 'tpm-00.permall'), 'utf8')).toBe('old 1.2 state');
  }, 60_000);

  it('rm keeps the TPM state; rm --purge-state deletes it', async () => {
    const r = await h.cli(['rm', 'tv']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('--purge-state');
    expect(fs.existsSync(path.join(stateDir(), 'tpm2-00.permall'))).toBe(true);
    await h.apply(def());
    const p = await h.cli(['rm', 'tv', '--purge-state']);
    expect(p.code, p.stderr).toBe(0);
    expect(fs.existsSync(path.join(paths.data, 'vms/tv'))).toBe(false);
  }, 60_000);

  it("never wrote to the host's /var/lib/swtpm-localca", () => {
    const now = fs.existsSync('/var/lib/swtpm-localca') ? fs.readdirSync('/var/lib/swtpm-localca').sort() : undefined;
    expect(now).toEqual(localCaBefore);
  });
});
