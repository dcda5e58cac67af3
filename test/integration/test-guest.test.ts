/**
 * Builds the real test guest (Debian kernel + busybox initramfs) and boots it under real QEMU (TCG).
 *
 * The build is cached in $KVMCTL_GUEST_CACHE, which this file defaults to /var/tmp/kvmctl-guest so
 * that repeated runs (each with its own temp KVMCTL_HOME) reuse one build: the first run on a
 * machine downloads ~70 MB and takes ~7 s, later runs take milliseconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POWEROFF_MARKER, READY_MARKER } from '../../src/guest/init-script.js';
import { ensureTestGuest, findTestGuest, type TestGuestManifest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';

process.env.KVMCTL_GUEST_CACHE ??= '/var/tmp/kvmctl-guest';

const QEMU = '/usr/bin/qemu-system-x86_64';
const have = (f: string) => fs.existsSync(f);
// Needs QEMU and a Debian host whose apt can fetch packages (or a guest already in the cache).
const canRun = have(QEMU) && have('/usr/bin/apt-get') && have('/usr/bin/dpkg-deb');

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-g-'));
const paths = resolvePaths({ KVMCTL_HOME: home });
const started: ChildProcess[] = [];
let guest: TestGuestManifest;

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

type Vm = {
  proc: ChildProcess;
  out: () => string;
  qmp: string;
  waitFor: (re: RegExp, ms: number) => Promise<RegExpMatchArray>;
  sh: (cmd: string, ms?: number) => Promise<string>;
  exited: Promise<number | null>;
  readyMs: Promise<number>;
};

let seq = 0;
function boot(kernel: string, append: string, extra: string[] = []): Vm {
  const dir = fs.mkdtempSync(path.join(home, 'vm-'));
  const qmp = path.join(dir, 'qmp.sock');
  const t0 = performance.now();
  const proc = spawn(QEMU, [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '256M', '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', 'stdio', '-qmp', `unix:${qmp},server=on,wait=off`,
    '-kernel', kernel, '-initrd', guest.initrd, '-append', `${guest.appendDefault} ${append}`.trim(),
    ...extra,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  started.push(proc);
  let buf = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  // 'close', not 'exit': the last serial bytes (the poweroff marker) arrive before stdio closes.
  const exited = new Promise<number | null>((res) => proc.once('close', (code) => { res(code); for (const w of waiters.splice(0)) w(); }));
  const waitFor = (re: RegExp, ms: number) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${re}; serial so far:\n${stripAnsi(buf).slice(-3000)}`)), ms);
      const check = () => {
        const m = stripAnsi(buf).match(re);
        if (m) { clearTimeout(timer); resolve(m); return; }
        if (proc.exitCode !== null) { clearTimeout(timer); reject(new Error(`QEMU exited (${proc.exitCode}) before ${re}:\n${stripAnsi(buf).slice(-3000)}`)); return; }
        waiters.push(check);
      };
      check();
    });
  const readyMs = waitFor(new RegExp(`^${READY_MARKER}\\r?$`, 'm'), 60_000).then(() => performance.now() - t0);
  /** Run a shell command on the serial console; markers are computed by the guest's shell so the echoed command line never matches them. */
  const sh = async (cmd: string, ms = 20_000) => {
    const n = ++seq;
    proc.stdin!.write(`echo B$((${n}*1))B; ${cmd}; echo E$((${n}*1))E\n`);
    const m = await waitFor(new RegExp(`B${n}B\\r?\\n([\\s\\S]*?)E${n}E`), ms);
    return m[1]!.replace(/\r/g, '').trim();
  };
  return { proc, out: () => stripAnsi(buf), qmp, waitFor, sh, exited, readyMs };
}

/** A few raw lines of QMP: greeting, capabilities, then one command. */
function qmpCommand(sock: string, execute: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let buf = '';
    let step = 0;
    c.setTimeout(10_000, () => { c.destroy(); reject(new Error(`QMP ${execute}: timeout`)); });
    c.on('error', reject);
    c.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (step === 0 && msg.QMP) { step = 1; c.write('{"execute":"qmp_capabilities"}\n'); }
        else if (step === 1 && 'return' in msg) { step = 2; c.write(`${JSON.stringify({ execute })}\n`); }
        else if (step === 2 && ('return' in msg || 'error' in msg)) { c.end(); 'error' in msg ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.return); }
      }
    });
  });
}

function exitWithin(vm: Vm, ms: number): Promise<boolean> {
  return Promise.race([vm.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

describe.skipIf(!canRun)('test guest (real Debian kernel + busybox, real QEMU under TCG)', () => {
  beforeAll(async () => {
    const t = performance.now();
    guest = await ensureTestGuest(paths, { log: (m) => console.log(`[test-guest] ${m}`) });
    console.log(`[test-guest] ensureTestGuest: ${Math.round(performance.now() - t)} ms → ${guest.dir}`);
  }, 600_000);

  afterAll(() => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('is cached: a second call returns the same build without rebuilding', async () => {
    const t = performance.now();
    const again = await ensureTestGuest(paths);
    expect(performance.now() - t).toBeLessThan(2_000);
    expect(again.builtAt).toBe(guest.builtAt);
    expect((await findTestGuest(paths))?.dir).toBe(guest.dir);
    expect(guest.kernelVersion).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect(guest.modules.slice(0, 5)).toEqual(['virtio_ring.ko', 'virtio.ko', 'virtio_pci_modern_dev.ko', 'virtio_pci_legacy_dev.ko', 'virtio_pci.ko']);
    for (const f of [guest.kernel, guest.initrd]) expect(fs.statSync(f).size).toBeGreaterThan(100_000);
    // nothing half-built left behind by this process (other processes may be building right now)
    expect(fs.readdirSync(path.dirname(guest.dir)).filter((n) => n.startsWith(`.build-${process.pid}-`))).toEqual([]);
  });

  it('bzImage: boots to the ready marker, answers on the serial shell, mounts 9p, sets up NICs; ACPI power button powers off', async () => {
    const share = fs.mkdtempSync(path.join(home, 'share-'));
    fs.writeFileSync(path.join(share, 'from-host.txt'), 'host says hi\n');
    const vm = boot(guest.kernel, 'kvt.9p=host_share:/mnt/share kvt.hostname=tiny-1 kvt.dhcp=eth0 kvt.ip1=192.168.77.2/24 kvt.gw=192.168.77.1', [
      '-fsdev', `local,id=fs0,path=${share},security_model=mapped-xattr`, '-device', 'virtio-9p-pci,fsdev=fs0,mount_tag=host_share',
      '-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0',
      '-netdev', 'user,id=n1,restrict=on', '-device', 'virtio-net-pci,netdev=n1',
    ]);
    const ms = await vm.readyMs;
    console.log(`[test-guest] bzImage spawn → ${READY_MARKER}: ${(ms / 1000).toFixed(2)} s`);
    const word = `hello-${Math.floor(Math.random() * 1e6)}`;
    expect(await vm.sh(`echo ${word}`)).toBe(word);
    expect(await vm.sh('hostname')).toBe('tiny-1');
    expect(await vm.sh('cat /mnt/share/from-host.txt')).toBe('host says hi');
    await vm.sh(`echo ${word} > /mnt/share/from-guest.txt`);
    expect(fs.readFileSync(path.join(share, 'from-guest.txt'), 'utf8')).toBe(`${word}\n`);
    expect(await vm.sh('ip -4 -o addr show dev eth0')).toContain('10.0.2.15/24'); // slirp's DHCP lease
    expect(await vm.sh('ip -4 -o addr show dev eth1')).toContain('192.168.77.2/24');
    // restrict=on: slirp's DHCP offers no router (nothing may leave the host), so the static gateway wins
    expect(await vm.sh('ip route')).toMatch(/^default via 192\.168\.77\.1 dev eth1/m);
    const lsmod = (await vm.sh('cut -d" " -f1 /proc/modules')).split('\n');
    console.log(`[test-guest] modules loaded: ${lsmod.slice().reverse().join(' ')}`);
    for (const m of ['virtio_net', '9p', '9pnet_virtio', 'button', 'evdev', 'virtio_pci']) expect(lsmod).toContain(m);
    expect(vm.out()).not.toMatch(/kvt: .*failed/);

    const t = performance.now();
    await qmpCommand(vm.qmp, 'system_powerdown');
    expect(await exitWithin(vm, 15_000)).toBe(true);
    console.log(`[test-guest] system_powerdown → QEMU exit: ${Math.round(performance.now() - t)} ms`);
    expect(vm.out()).toMatch(new RegExp(`^${POWEROFF_MARKER}\\r?$`, 'm'));
    expect(vm.proc.exitCode).toBe(0);
  }, 120_000);

  it.skipIf(!fs.existsSync('/usr/bin/xz'))('vmlinux (PVH): boots faster; with kvt.noacpi=1 the power button is ignored', async () => {
    expect(guest.vmlinux, guest.vmlinuxNote).toBeTruthy();
    const vm = boot(guest.vmlinux!, 'kvt.noacpi=1');
    const ms = await vm.readyMs;
    console.log(`[test-guest] vmlinux spawn → ${READY_MARKER}: ${(ms / 1000).toFixed(2)} s`);
    expect(await vm.sh('echo $((40+2))')).toBe('42');
    await qmpCommand(vm.qmp, 'system_powerdown');
    expect(await exitWithin(vm, 3_000)).toBe(false);
    expect(vm.out()).not.toContain(POWEROFF_MARKER);
    expect(await vm.sh('echo still-here')).toBe('still-here');
    await qmpCommand(vm.qmp, 'quit');
    expect(await exitWithin(vm, 5_000)).toBe(true);
  }, 120_000);

  it('a panic makes QEMU exit (panic=-1 with -no-reboot)', async () => {
    const vm = boot(guest.vmlinux ?? guest.kernel, '');
    await vm.readyMs;
    vm.proc.stdin!.write('echo c > /proc/sysrq-trigger\n');
    expect(await exitWithin(vm, 20_000)).toBe(true);
  }, 120_000);

  it('concurrent builds replace a stale build (other recipe) with one complete guest', async () => {
    // A fresh cache root that reuses the downloaded .debs, so this tests the build, not the network.
    const root = fs.mkdtempSync(path.join(home, 'cache-'));
    const debs = path.join(path.dirname(path.dirname(guest.dir)), 'debs');
    fs.mkdirSync(path.join(root, 'debs'));
    for (const f of fs.readdirSync(debs)) fs.symlinkSync(path.join(debs, f), path.join(root, 'debs', f));
    // A build from an older recipe: never booted, replaced.
    const stale = path.join(root, 'test-guest', guest.kernelVersion);
    fs.mkdirSync(stale, { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img']) fs.writeFileSync(path.join(stale, f), 'old');
    fs.writeFileSync(path.join(stale, 'manifest.json'), JSON.stringify({ ...guest, recipe: 'old', builtAt: '2020-01-01T00:00:00Z' }));
    const env = { KVMCTL_GUEST_CACHE: root };
    expect(await findTestGuest(paths, env)).toBeUndefined();
    const [a, b] = await Promise.all([ensureTestGuest(paths, { env }), ensureTestGuest(paths, { env })]);
    expect(a.dir).toBe(b.dir);
    expect(a.builtAt).toBe(b.builtAt); // the second waited for the first and reused its build
    const base = path.join(root, 'test-guest');
    expect(fs.readdirSync(base).filter((n) => !n.startsWith('.build.lock'))).toEqual([guest.kernelVersion]);
    expect(a.modules).toEqual(guest.modules);
    expect(a.recipe).toBe(guest.recipe);
    expect(fs.statSync(a.initrd).size).toBeGreaterThan(100_000);
  }, 300_000);
});
