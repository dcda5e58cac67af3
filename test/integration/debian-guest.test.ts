/**
 * A real Debian 12 guest end to end (issue #15): kvmctl builds its Debian image with mmdebstrap
 * (cached under .cache/guest/debian-12/<key>; cold ≈2 min here, warm 0 s), boots an overlay of it
 * on the desktop profile — q35, OVMF with Secure Boot and the Microsoft keys, a vTPM 2.0 from
 * swtpm, the guest agent channel — and then, only through kvmctl's CLI and the agent in the guest:
 * the guest kernel says Secure Boot is on and sees the TPM; `guest info/exec/ssh-key` work;
 * a snapshot of the running VM freezes and thaws its filesystems; `stop --method agent` ends it
 * through guest-shutdown and leaves no QEMU or swtpm behind.
 *
 * No NIC: the agent needs none, and DHCP on a bridge is covered by the network tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const can =
  canBootGuest() &&
  process.getuid?.() === 0 &&
  ['/usr/bin/mmdebstrap', '/usr/bin/swtpm', '/usr/share/OVMF/OVMF_CODE_4M.ms.fd'].every((f) => fs.existsSync(f));
let h: Home;
let paths: Paths;
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
const def = 'name: deb\nprofile: desktop\nmemory: 1G\ncpu: { count: 2 }\ndisks:\n  - file: deb.qcow2\nstopTimeout: 60\n';
const exec = async (...argv: string[]) => h.cli(['guest', 'exec', 'deb', '--', ...argv], { timeoutMs: 90_000 });

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
}, 30_000);
afterAll(async () => {
  const pidFile = paths && path.join(paths.run, 'vms/deb/swtpm.pid');
  const tpm = pidFile && fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : undefined;
  await h?.cleanup();
  if (tpm && alive(tpm) && fs.readFileSync(`/proc/${tpm}/cmdline`, 'utf8').startsWith('swtpm')) process.kill(tpm, 'SIGKILL');
});

describe.skipIf(!can)('a Debian 12 guest with UEFI Secure Boot, a vTPM and the guest agent', () => {
  let swtpm = 0;

  it('builds (or finds) the Debian image and makes an overlay of it; the base stays read-only', async () => {
    const r = await h.cli(['image', 'debian-12', '--disk', 'deb.qcow2', '--json'], { timeoutMs: 1_500_000 });
    expect(r.code, r.stderr).toBe(0);
    const img = JSON.parse(r.stdout);
    expect(img.kernelVersion).toMatch(/-cloud-amd64$/);
    expect(img.packages['qemu-guest-agent']).toBeTruthy();
    expect(fs.statSync(img.disk).mode & 0o222).toBe(0); // nobody writes the base
    expect(img.overlay).toBe(path.join(paths.images, 'deb.qcow2'));
    const again = await h.cli(['image', 'debian-12', '--disk', 'deb.qcow2']);
    expect(again.code).not.toBe(0); // an existing disk is never overwritten
    expect(again.stderr).toMatch(/exists/);
  }, 1_600_000);

  it('boots through shim and GRUB with Secure Boot to a running guest agent', async () => {
    await h.apply(def);
    const s = await h.cli(['start', 'deb'], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    const p = await h.cli(['guest', 'ping', 'deb', '--wait', '300', '--json'], { timeoutMs: 320_000 });
    expect(p.code, p.stderr).toBe(0);
    console.log(`Debian 12 (TCG, UEFI Secure Boot) agent up ${JSON.parse(p.stdout).waitedMs} ms after start`);
    swtpm = Number(fs.readFileSync(path.join(paths.run, 'vms/deb/swtpm.pid'), 'utf8'));
    expect(alive(swtpm)).toBe(true);
  }, 400_000);

  it('guest info names Debian 12; the guest kernel has Secure Boot on and a TPM 2.0', async () => {
    const i = await h.cli(['guest', 'info', 'deb', '--json']);
    expect(i.code, i.stderr).toBe(0);
    const info = JSON.parse(i.stdout);
    expect(info.os).toMatchObject({ id: 'debian', 'version-id': '12' });
    expect(info.hostname).toBe('debian12');
    expect(info.fsfreeze).toBe('thawed');
    const sb = await exec('/bin/sh', '-c', 'dmesg | grep -i "secure boot enabled"; cat /sys/class/tpm/tpm0/tpm_version_major');
    expect(sb.code, sb.stderr).toBe(0);
    expect(sb.stdout).toMatch(/secureboot: Secure boot enabled/);
    expect(sb.stdout).toMatch(/^2$/m);
  }, 120_000);

  it('guest exec passes stdin and the exit code through', async () => {
    const input = path.join(h.dir, 'in.txt');
    fs.writeFileSync(input, 'hello from the host\n');
    const c = await h.cli(['guest', 'exec', 'deb', '--input-file', input, '--', '/bin/cat']);
    expect(c.stdout).toBe('hello from the host\n');
    expect((await exec('/bin/sh', '-c', 'exit 7')).code).toBe(7);
  }, 120_000);

  it('guest ssh-key adds a key to root\'s authorized_keys', async () => {
    const pub = path.join(h.dir, 'k.pub');
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvmctlTestKeyOnlyForTheTestSuite0000000000 test@kvmctl';
    fs.writeFileSync(pub, `${key}\n`);
    const r = await h.cli(['guest', 'ssh-key', 'deb', pub]);
    expect(r.code, r.stderr).toBe(0);
    expect((await exec('/bin/cat', '/root/.ssh/authorized_keys')).stdout).toContain(key);
    const bad = await h.cli(['guest', 'ssh-key', 'deb', input()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/BAD_SSH_KEY/);
    function input() {
      const f = path.join(h.dir, 'not-a-key.pub');
      fs.writeFileSync(f, 'hello\n');
      return f;
    }
  }, 120_000);

  it('a snapshot of the running VM freezes the guest filesystems around the switch and thaws them', async () => {
    const r = await h.cli(['snapshot', 'deb', 'before-upgrade', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ mode: 'external', frozen: true });
    const i = JSON.parse((await h.cli(['guest', 'info', 'deb', '--json'])).stdout);
    expect(i.fsfreeze).toBe('thawed');
    // the guest still writes after the thaw
    expect((await exec('/bin/sh', '-c', 'echo ok > /root/after-snapshot && sync && cat /root/after-snapshot')).stdout).toBe('ok\n');
  }, 180_000);

  it('stop --method agent ends the guest through guest-shutdown; no QEMU or swtpm is left', async () => {
    const qemu = Number(fs.readFileSync(path.join(paths.run, 'vms/deb/qemu.pid'), 'utf8'));
    const r = await h.cli(['stop', 'deb', '--method', 'agent', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).how).toBe('agent');
    expect(alive(qemu)).toBe(false);
    const end = Date.now() + 5_000;
    while (alive(swtpm) && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
    expect(alive(swtpm)).toBe(false);
    expect(JSON.parse((await h.cli(['status', 'deb', '--json'])).stdout).lastExit.how).toBe('agent');
    // the VM's own NVRAM and TPM state stay for the next boot
    expect(fs.existsSync(path.join(paths.data, 'vms/deb/nvram.fd'))).toBe(true);
    expect(fs.existsSync(path.join(paths.data, 'vms/deb/tpm/tpm2-00.permall'))).toBe(true);
  }, 150_000);

  it('the agent commands say clearly when the VM is not running, or has no agent', async () => {
    const r = await h.cli(['guest', 'info', 'deb']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/VM_NOT_RUNNING/);
    await h.apply('name: noagent\nmemory: 128M\nkernel: { builtin: test-guest }\n');
    const n = await h.cli(['guest', 'ping', 'noagent']);
    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/AGENT_DISABLED/);
  }, 60_000);
});
