/**
 * A real Debian 12 guest end to end (issue #15), inside a network namespace of its own with a
 * kvmctl nat network (dnsmasq DHCP): kvmctl builds its Debian image with mmdebstrap (cached under
 * .cache/guest/debian-12/<key>; cold ≈2–3 min here, warm 0 s), boots an overlay of it on the
 * desktop profile — q35, OVMF with Secure Boot and the Microsoft keys, its own NVRAM, a vTPM 2.0
 * from swtpm, the guest agent — with a cloud-init seed (host name, a user with an SSH key), and
 * then, only through kvmctl's CLI and the agent in the guest, checks:
 *  - cloud-init set the host name, the user and the key; `mokutil --sb-state` says Secure Boot is
 *    on; `tpm2_pcrread sha256:0` reads the TPM; the agent's address is the DHCP lease;
 *  - `guest exec` passes stdin and exit codes; `ssh-key` adds a key; resume after a pause sets
 *    the guest clock; a snapshot freezes and thaws the guest's filesystems; so does a backup
 *    (full, then incremental), which carries the NVRAM and TPM state that restore --as copies;
 *  - a file written a second before the snapshot is there after the revert, one written after is
 *    not; an EFI boot entry made with efibootmgr survives the stop/start (the VM's own NVRAM);
 *  - `stop --method agent` ends it; no QEMU, swtpm or dnsmasq is left; the root namespace is
 *    unchanged (links, nft ruleset, ip_forward).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';

const can =
  canBootGuest() &&
  canUseNetns().ok &&
  process.getuid?.() === 0 &&
  ['/usr/bin/mmdebstrap', '/usr/bin/swtpm', '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', '/usr/sbin/dnsmasq', '/usr/sbin/nft'].every((f) => fs.existsSync(f));
let h: Home;
let paths: Paths;
let ns: Netns;
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvmctlTestKeyOnlyForTheTestSuite0000000000 test@kvmctl';
const defs = `kind: network
name: dnat
type: nat
address: 10.79.0.1/24
dns: { upstream: [] }
---
name: deb
profile: desktop
memory: 1G
cpu: { count: 2 }
disks:
  - file: deb.qcow2
nics: [{ network: dnat }]
cloudInit:
  userData:
    hostname: deb-e2e
    users: [{ name: ops, sshAuthorizedKeys: ["${KEY}"], sudo: true }]
stopTimeout: 60
`;
const exec = async (...argv: string[]) => h.cli(['guest', 'exec', 'deb', '--timeout', '120', '--', ...argv], { timeoutMs: 150_000 });
const rootState = async () => ({
  links: (await run(['ip', '-o', 'link', 'show'])).stdout.replace(/\s+state \S+.*$/gm, '').split('\n').map((l) => l.split(':')[1]?.trim()).sort().join(' '),
  nft: (await run(['nft', 'list', 'ruleset'], { allowFailure: true })).stdout,
  ipForward: fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'),
});
let before: Awaited<ReturnType<typeof rootState>>;
let swtpm = 0;

beforeAll(async () => {
  if (!can) return;
  h = makeHome();
  paths = resolvePaths(h.env);
  before = await rootState();
  ns = await createNetns('kvt-deb');
}, 60_000);
afterAll(async () => {
  if (!can) return;
  const pidFile = path.join(paths.run, 'vms/deb/swtpm.pid');
  const tpm = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : undefined;
  await h?.cli(['net', 'down', 'dnat', '--force', '--netns', ns.name]).catch(() => undefined);
  for (const pid of dnsmasqPids(natFiles(paths, 'dnat').conf)) process.kill(pid, 'SIGKILL');
  await h?.cleanup();
  if (tpm && alive(tpm) && fs.readFileSync(`/proc/${tpm}/cmdline`, 'utf8').startsWith('swtpm')) process.kill(tpm, 'SIGKILL');
  await ns?.destroy();
}, 120_000);

describe.skipIf(!can)('a Debian 12 guest with UEFI Secure Boot, a vTPM, the guest agent and cloud-init', () => {
  it('builds (or finds) the Debian image and makes an overlay of it; the base stays read-only', async () => {
    const t0 = Date.now();
    const r = await h.cli(['image', 'debian-12', '--disk', 'deb.qcow2', '--json'], { timeoutMs: 1_500_000 });
    expect(r.code, r.stderr).toBe(0);
    console.log(`Debian image ready in ${Date.now() - t0} ms (cache ${Date.now() - t0 < 10_000 ? 'warm' : 'cold'})`);
    const img = JSON.parse(r.stdout);
    expect(img.packages['qemu-guest-agent']).toBeTruthy();
    expect(fs.statSync(img.disk).mode & 0o222).toBe(0); // nobody writes the base
    expect(img.overlay).toBe(path.join(paths.images, 'deb.qcow2'));
    const again = await h.cli(['image', 'debian-12', '--disk', 'deb.qcow2']);
    expect(again.code).not.toBe(0); // an existing disk is never overwritten
    expect(again.stderr).toMatch(/exists/);
  }, 1_600_000);

  it('boots through shim and GRUB with Secure Boot on a nat network to a running agent', async () => {
    await h.apply(defs);
    const u = await h.cli(['net', 'up', 'dnat', '--netns', ns.name]);
    expect(u.code, u.stderr).toBe(0);
    const s = await h.cli(['start', 'deb', '--netns', ns.name], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    const p = await h.cli(['guest', 'ping', 'deb', '--wait', '400', '--json'], { timeoutMs: 420_000 });
    expect(p.code, p.stderr).toBe(0);
    console.log(`Debian 12 (TCG, UEFI Secure Boot, TPM, cloud-init) agent up ${JSON.parse(p.stdout).waitedMs} ms after start`);
    swtpm = Number(fs.readFileSync(path.join(paths.run, 'vms/deb/swtpm.pid'), 'utf8'));
    expect(alive(swtpm)).toBe(true);
  }, 500_000);

  it('cloud-init set the host name, the user and its key; Secure Boot is on; the TPM answers', async () => {
    const ci = await exec('/usr/bin/cloud-init', 'status', '--wait', '--long');
    expect(ci.stdout, ci.stderr).toMatch(/status: done/);
    const info = JSON.parse((await h.cli(['guest', 'info', 'deb', '--json'])).stdout);
    expect(info.os).toMatchObject({ id: 'debian', 'version-id': '12' });
    expect(info.hostname).toBe('deb-e2e');
    expect((await exec('/bin/cat', '/home/ops/.ssh/authorized_keys')).stdout).toContain(KEY);
    const sb = await exec('/usr/bin/mokutil', '--sb-state');
    expect(sb.stdout).toMatch(/SecureBoot enabled/);
    const pcr = await exec('/usr/bin/tpm2_pcrread', 'sha256:0');
    expect(pcr.code, pcr.stderr).toBe(0);
    expect(pcr.stdout).toMatch(/0 ?: 0x[0-9A-F]{64}/);
  }, 300_000);

  it("the agent's address on the NIC is the DHCP lease kvmctl ip reports", async () => {
    const lease = await h.cli(['ip', 'deb', '--timeout', '120'], { timeoutMs: 150_000 });
    expect(lease.code, lease.stderr).toBe(0);
    const ip = lease.stdout.trim();
    expect(ip).toMatch(/^10\.79\.0\.\d+$/);
    const ifs = JSON.parse((await h.cli(['guest', 'ip', 'deb', '--json'])).stdout) as { addresses: string[] }[];
    expect(ifs.flatMap((i) => i.addresses)).toContain(`${ip}/24`);
    // show lists both, side by side.
    const show = JSON.parse((await h.cli(['show', 'deb', '--json'])).stdout) as { addresses: { leases: { ip: string }[]; agent: { addresses: string[] }[] } };
    expect(show.addresses.leases.map((l) => l.ip)).toEqual([ip]);
    expect(show.addresses.agent.flatMap((i) => i.addresses)).toContain(`${ip}/24`);
  }, 200_000);

  it('guest exec passes stdin and exit codes; ssh-key adds a key; bad keys are refused', async () => {
    const input = path.join(h.dir, 'in.txt');
    fs.writeFileSync(input, 'hello from the host\n');
    const c = await h.cli(['guest', 'exec', 'deb', '--input-file', input, '--', '/bin/cat']);
    expect(c.stdout).toBe('hello from the host\n');
    expect((await exec('/bin/sh', '-c', 'exit 7')).code).toBe(7);
    const pub = path.join(h.dir, 'k.pub');
    fs.writeFileSync(pub, `${KEY.replace('test@kvmctl', 'root@kvmctl')}\n`);
    expect((await h.cli(['guest', 'ssh-key', 'deb', pub])).code).toBe(0);
    expect((await exec('/bin/cat', '/root/.ssh/authorized_keys')).stdout).toContain('root@kvmctl');
    fs.writeFileSync(path.join(h.dir, 'bad.pub'), 'hello\n');
    const bad = await h.cli(['guest', 'ssh-key', 'deb', path.join(h.dir, 'bad.pub')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/BAD_SSH_KEY/);
  }, 200_000);

  it('guest time-sync --apply configures chrony through the agent: NTP from the host address (no PTP clock under TCG)', async () => {
    const r = await h.cli(['guest', 'time-sync', 'deb', '--init', 'systemd', '--apply', '--json'], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { source: string; sources: string; chronyConf: string };
    expect(j.chronyConf).toBe('/etc/chrony/chrony.conf');
    expect(j.source).toBe('ntp');
    expect(j.sources).toMatch(/10\.79\.0\.1/);
    expect((await exec('/bin/systemctl', 'is-active', 'chrony.service')).stdout.trim()).toBe('active');
    expect((await exec('/bin/cat', '/etc/chrony/chrony.conf')).stdout).toMatch(/^server 10\.79\.0\.1 iburst$/m);
    expect((await exec('/bin/systemctl', 'is-active', 'systemd-timesyncd.service')).stdout.trim()).not.toBe('active');
  }, 200_000);

  it('resume after a pause sets the guest clock to the host\'s through the agent', async () => {
    expect((await h.cli(['pause', 'deb'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 6_000));
    const r = await h.cli(['resume', 'deb', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).clockSynced).toBe(true);
    const g = Number((await exec('/bin/date', '+%s')).stdout.trim());
    expect(Math.abs(g - Date.now() / 1000)).toBeLessThan(3);
  }, 120_000);

  it('a snapshot freezes the filesystems; an EFI boot entry is written to the VM\'s NVRAM', async () => {
    const e = await exec('/usr/bin/efibootmgr', '-c', '-d', '/dev/vda', '-p', '1', '-L', 'kvmctl-test', '-l', '\\EFI\\BOOT\\BOOTX64.EFI');
    expect(e.code, e.stderr).toBe(0);
    expect((await exec('/bin/sh', '-c', 'echo before > /root/marker && sync')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1_000));
    const s = await h.cli(['snapshot', 'deb', 'before-upgrade', '--json'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ mode: 'external', frozen: true });
    expect(JSON.parse((await h.cli(['guest', 'info', 'deb', '--json'])).stdout).fsfreeze).toBe('thawed');
    expect((await exec('/bin/sh', '-c', 'echo after > /root/after && sync && cat /root/after')).stdout).toBe('after\n');
  }, 200_000);

  it('a backup of the running guest is frozen (application-consistent) and carries the NVRAM and TPM state; restore --as copies them', async () => {
    const t0 = Date.now();
    const b = await h.cli(['backup', 'create', 'deb', '--json', '-q'], { timeoutMs: 600_000 });
    expect(b.code, b.stderr).toBe(0);
    const full = JSON.parse(b.stdout).manifest;
    expect(full).toMatchObject({ kind: 'full', frozen: true, nvram: { file: 'nvram.fd' } });
    expect(Object.keys(full.tpm.files).length).toBeGreaterThan(0);
    expect((await exec('/bin/sh', '-c', 'echo inc > /root/inc && sync')).code).toBe(0);
    const i = await h.cli(['backup', 'create', 'deb', '--json', '-q'], { timeoutMs: 600_000 });
    expect(i.code, i.stderr).toBe(0);
    const inc = JSON.parse(i.stdout).manifest;
    expect(inc).toMatchObject({ kind: 'incremental', parent: full.id, frozen: true });
    console.log(`Debian backups: full ${full.durationMs} ms (${(full.disks[0].fileSize / 1048576).toFixed(0)} MiB), incremental ${inc.durationMs} ms (${(inc.disks[0].fileSize / 1048576).toFixed(1)} MiB); ${Date.now() - t0} ms in all`);
    const r = await h.cli(['backup', 'restore', `deb@${inc.id}`, '--as', 'deb2', '--json'], { timeoutMs: 600_000 });
    expect(r.code, r.stderr).toBe(0);
    const { nvram, tpm } = JSON.parse(r.stdout);
    const dir = path.join(paths.data, 'backups/deb', inc.id);
    expect(fs.readFileSync(nvram)).toEqual(fs.readFileSync(path.join(dir, 'nvram.fd')));
    for (const f of Object.keys(inc.tpm.files)) expect(fs.readFileSync(path.join(tpm, f))).toEqual(fs.readFileSync(path.join(dir, 'tpm', f)));
    expect((await h.cli(['rm', 'deb2'])).code).toBe(0);
  }, 900_000);

  it('stop --method agent ends the guest; no QEMU or swtpm is left', async () => {
    const qemu = Number(fs.readFileSync(path.join(paths.run, 'vms/deb/qemu.pid'), 'utf8'));
    const r = await h.cli(['stop', 'deb', '--method', 'agent', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).how).toBe('agent');
    expect(alive(qemu)).toBe(false);
    const end = Date.now() + 5_000;
    while (alive(swtpm) && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
    expect(alive(swtpm)).toBe(false);
  }, 150_000);

  it('after the revert the file from before the snapshot is there and the later one is not; the boot entry survived', async () => {
    const rv = await h.cli(['snapshot', 'deb', 'before-upgrade', '--revert']);
    expect(rv.code, rv.stderr).toBe(0);
    expect((await h.cli(['start', 'deb', '--netns', ns.name], { timeoutMs: 60_000 })).code).toBe(0);
    expect((await h.cli(['guest', 'ping', 'deb', '--wait', '400'], { timeoutMs: 420_000 })).code).toBe(0);
    expect((await exec('/bin/cat', '/root/marker')).stdout).toBe('before\n');
    expect((await exec('/bin/ls', '/root/after')).code).not.toBe(0);
    expect((await exec('/usr/bin/efibootmgr')).stdout).toMatch(/kvmctl-test/);
    const st = await h.cli(['stop', 'deb'], { timeoutMs: 120_000 });
    expect(st.code, st.stderr).toBe(0);
  }, 500_000);

  it('agent commands say clearly when the VM is not running or has no agent; the root namespace is unchanged', async () => {
    const r = await h.cli(['guest', 'info', 'deb']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/VM_NOT_RUNNING/);
    await h.apply('name: noagent\nmemory: 128M\nkernel: { builtin: test-guest }\n');
    const n = await h.cli(['guest', 'ping', 'noagent']);
    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/AGENT_DISABLED/);
    expect((await h.cli(['net', 'down', 'dnat', '--netns', ns.name])).code).toBe(0);
    expect(dnsmasqPids(natFiles(paths, 'dnat').conf)).toEqual([]);
    expect(await rootState()).toEqual(before);
  }, 60_000);
});
