/**
 * The VM lifecycle with real QEMU (TCG here) and the real test guest, driven through the CLI.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { makeHome, qemuProcessesMentioning, TINY, type Home } from '../helpers/kvmctl.js';

let h: Home;
beforeAll(async () => {
  h = makeHome();
  await h.apply(TINY('tiny'));
  await h.apply(TINY('deaf', 'kvt.noacpi=1'));
  // Build (or find) the test guest once, outside the timed parts.
  await ensureTestGuest(resolvePaths(h.env));
}, 320_000);
afterAll(async () => {
  await h?.cleanup();
});

const json = <T = any>(s: string): T => JSON.parse(s) as T;

describe('start / status / stop', () => {
  it('starts detached, reaches the guest ready marker, reports running, stops gracefully by ACPI', async () => {
    const s = await h.cli(['start', 'tiny', '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    const started = json(s.stdout);
    expect(started.accel).toMatch(/kvm|tcg/);
    expect(started.guestReadyMs).toBeGreaterThan(started.qmpReadyMs);
    expect(fs.readFileSync(path.join(h.dir, 'run/vms/tiny/serial.log'), 'utf8')).toContain('KVMCTL-GUEST-READY');
    // The CLI has exited: QEMU lives on in its own session.
    const st = json((await h.cli(['status', 'tiny', '--json'])).stdout);
    expect(st).toMatchObject({ state: 'running', pid: started.pid });
    expect(fs.readFileSync(`/proc/${started.pid}/stat`, 'utf8').split(' ')[5]).toBe(String(started.pid)); // session leader
    const list = json((await h.cli(['list', '--json'])).stdout) as { name: string; state: string }[];
    expect(list.find((v) => v.name === 'tiny')?.state).toBe('running');
    expect(list.find((v) => v.name === 'deaf')?.state).toBe('stopped');

    const stop = await h.cli(['stop', 'tiny', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(json(stop.stdout).how).toBe('acpi');
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('stopped');
    expect(fs.existsSync(path.join(h.dir, 'run/vms/tiny/qmp.sock'))).toBe(false);
  });

  it('a guest that ignores ACPI is ended by quit within timeout + 2 s', async () => {
    expect((await h.cli(['start', 'deaf', '--wait-for-guest'])).code).toBe(0);
    const stop = await h.cli(['stop', 'deaf', '--timeout', '3', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    const r = json(stop.stdout);
    expect(r.how).toBe('quit');
    expect(r.tookMs).toBeGreaterThanOrEqual(3000);
    expect(r.tookMs).toBeLessThan(5000);
    expect(json((await h.cli(['status', 'deaf', '--json'])).stdout).state).toBe('stopped');
  });

  it('kill -9 of QEMU shows as crashed, with stale files cleaned', async () => {
    const s = json((await h.cli(['start', 'tiny', '--json'])).stdout);
    process.kill(s.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const st = json((await h.cli(['status', 'tiny', '--json'])).stdout);
    expect(st.state).toBe('crashed');
    expect(st.reason).toMatch(/without a clean shutdown|killed|signal/i);
    expect(fs.existsSync(path.join(h.dir, 'run/vms/tiny/qemu.pid'))).toBe(false);
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('crashed'); // remembered
    // A crashed VM can be started again.
    const again = await h.cli(['start', 'tiny', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((await h.cli(['kill', 'tiny'])).code).toBe(0);
  });

  it('ten concurrent starts of one VM give exactly one QEMU', async () => {
    const runs = await Promise.all(Array.from({ length: 10 }, () => h.cli(['start', 'tiny', '--json'])));
    const ok = runs.filter((r) => r.code === 0);
    expect(ok).toHaveLength(1);
    for (const r of runs.filter((x) => x.code !== 0)) expect(r.stderr).toMatch(/VM_RUNNING|already/);
    expect(qemuProcessesMentioning(path.join(h.dir, 'run/vms/tiny/'))).toHaveLength(1);
    expect((await h.cli(['kill', 'tiny'])).code).toBe(0);
    expect(qemuProcessesMentioning(path.join(h.dir, 'run/vms/tiny/'))).toHaveLength(0);
  });

  it('killing kvmctl in the middle of start leaves either a running VM or nothing', async () => {
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('stopped');
    const seen = new Set<string>();
    for (const delay of [50, 300, 700, 1500]) {
      const child = h.spawnCli(['start', 'tiny']);
      const closed = new Promise((r) => child.once('close', r)); // listen before it can close
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await closed;
      // A lock left by the killed CLI goes stale within seconds; until then the VM is "starting".
      let st = json((await h.cli(['status', 'tiny', '--json'])).stdout);
      for (let i = 0; i < 40 && st.state === 'starting'; i++) {
        await new Promise((r) => setTimeout(r, 250));
        st = json((await h.cli(['status', 'tiny', '--json'])).stdout);
      }
      seen.add(st.state);
      const procs = qemuProcessesMentioning(path.join(h.dir, 'run/vms/tiny/'));
      if (st.state === 'running') {
        expect(procs).toEqual([st.pid]);
        expect((await h.cli(['kill', 'tiny'])).code).toBe(0);
      } else {
        expect(st.state).toBe('stopped');
        expect(procs, `delay ${delay}: status ${JSON.stringify(st)}, files ${fs.existsSync(path.join(h.dir, "run/vms/tiny")) ? fs.readdirSync(path.join(h.dir, "run/vms/tiny")).join(" ") : "-"}`).toHaveLength(0);
      }
      expect(qemuProcessesMentioning(path.join(h.dir, 'run/vms/tiny/')), `delay ${delay} after kill`).toHaveLength(0);
      // And the next start works.
      expect((await h.cli(['start', 'tiny'])).code).toBe(0);
      expect((await h.cli(['kill', 'tiny'])).code).toBe(0);
    }
    expect(seen.size).toBeGreaterThan(0);
  }, 180_000);
});

describe('control of a running VM', () => {
  beforeAll(async () => {
    const r = await h.cli(['start', 'tiny', '--wait-for-guest']);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await h.cli(['kill', 'tiny']);
  });

  it('monitor runs HMP commands without socat', async () => {
    const r = await h.cli(['monitor', 'tiny', 'info', 'status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/VM status: running/);
  });

  it('qmp sends raw QMP', async () => {
    const r = await h.cli(['qmp', 'tiny', '{"execute":"query-status"}']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r.stdout).return).toMatchObject({ status: 'running', running: true });
    const bad = await h.cli(['qmp', 'tiny', '{"execute":"no-such-command"}']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/CommandNotFound/);
  });

  it('pause and resume', async () => {
    expect((await h.cli(['pause', 'tiny'])).code).toBe(0);
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('paused');
    expect((await h.cli(['resume', 'tiny'])).code).toBe(0);
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('running');
  });

  it('console shows the ready marker and runs a command in the guest', async () => {
    const child = h.spawnCli(['console', 'tiny']);
    const closed = new Promise((r) => child.once('close', r));
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    await new Promise((r) => setTimeout(r, 800));
    child.stdin!.write('echo con$((6*7))sole\n');
    const end = Date.now() + 40_000;
    while (!out.includes('con42sole') && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    child.stdin!.write(Buffer.from([0x1d])); // Ctrl-] detaches
    await closed;
    expect(err).toBe('');
    expect(out).toContain('KVMCTL-GUEST-READY');
    expect(out).toContain('con42sole');
    // Still running after the console detached.
    expect(json((await h.cli(['status', 'tiny', '--json'])).stdout).state).toBe('running');
  }, 90_000);

  it('logs prints the serial log', async () => {
    const r = await h.cli(['logs', 'tiny', '-n', '50']);
    expect(r.stdout).toContain('KVMCTL-GUEST-READY');
  });
});

describe('runAs', () => {
  const user = `kvt${Math.random().toString(36).slice(2, 8)}`;
  let made = false;
  beforeAll(async () => {
    const { spawnSync } = await import('node:child_process');
    made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]).status === 0;
  });
  afterAll(async () => {
    await h.cli(['kill', 'asuser']);
    const { spawnSync } = await import('node:child_process');
    if (made) spawnSync('userdel', [user]);
  });

  it('runs QEMU as that user under seccomp, and a guest power-off reads as stopped, not crashed', async () => {
    expect(made, 'useradd failed').toBe(true);
    // A private (0700) home is refused up front: the user could not reach its runtime dir.
    await h.apply(`name: asuser\nmemory: 256M\nkernel: { builtin: test-guest }\nrunAs: ${user}\n`);
    const refused = await h.cli(['start', 'asuser']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`runAs: user "${user}" cannot reach ${h.dir}`));
    fs.chmodSync(h.dir, 0o755);
    await h.apply(`name: asuser\nmemory: 256M\nkernel: { builtin: test-guest }\nrunAs: ${user}\n`);
    const s = await h.cli(['start', 'asuser', '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    const pid = json(s.stdout).pid as number;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
    expect(uid).not.toBe(0);
    expect(fs.readFileSync('/etc/passwd', 'utf8')).toContain(`${user}:x:${uid}:`);
    expect(status).toMatch(/^Seccomp:\s+2/m);
    const sock = fs.statSync(path.join(h.dir, 'run/vms/asuser/qmp.sock'));
    expect(sock.uid).toBe(uid);
    expect(sock.mode & 0o777).toBe(0o660);
    // The guest powers itself off: QEMU (unprivileged) must still be able to remove its pidfile.
    const { serialExec } = await import('../../src/vm/serial-exec.js');
    const { resolvePaths } = await import('../../src/host/paths.js');
    await serialExec(resolvePaths(h.env), 'asuser', 'poweroff -f', 2000).catch(() => undefined);
    const end = Date.now() + 10_000;
    let st = json((await h.cli(['status', 'asuser', '--json'])).stdout);
    while (st.state === 'running' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      st = json((await h.cli(['status', 'asuser', '--json'])).stdout);
    }
    expect(st.state).toBe('stopped');
    expect(st.lastExit.how).toBe('guest');
  });
});

describe('bad input gets a clear error and changes nothing', () => {
  it('unknown VM', async () => {
    const r = await h.cli(['start', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/VM_NOT_FOUND: no VM named "nope"/);
  });

  it('starting a running VM, stopping a stopped one', async () => {
    expect((await h.cli(['start', 'tiny'])).code).toBe(0);
    const again = await h.cli(['start', 'tiny']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/VM_RUNNING: VM "tiny" is already running/);
    expect((await h.cli(['kill', 'tiny'])).code).toBe(0);
    const stop = await h.cli(['stop', 'tiny']);
    expect(stop.code).toBe(2);
    expect(stop.stderr).toMatch(/VM_NOT_RUNNING/);
  });

  it('a missing disk', async () => {
    await h.apply(`name: nodisk\nmemory: 128M\ndisks: [{ file: nonexistent.img }]\n`);
    const r = await h.cli(['start', 'nodisk']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/disks\[0\]\.file: \S*\/data\/images\/nonexistent\.img does not exist/);
    expect(fs.existsSync(path.join(h.dir, 'run/vms/nodisk/qmp.sock'))).toBe(false);
  });

  it('a disk already locked by another QEMU', async () => {
    const img = path.join(h.images, 'shared.img');
    fs.writeFileSync(img, Buffer.alloc(1024 * 1024));
    await h.apply(`name: lock-a\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ file: ${img}, format: raw }]\n`);
    await h.apply(`name: lock-b\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ file: ${img}, format: raw, readOnly: true }]\n`);
    expect((await h.cli(['start', 'lock-a'])).code).toBe(0);
    const r = await h.cli(['start', 'lock-b']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/START_FAILED[\s\S]*lock/);
    expect(r.stderr).toMatch(/hint: another QEMU has this disk open/);
    expect(json((await h.cli(['status', 'lock-b', '--json'])).stdout).state).toBe('stopped');
    expect((await h.cli(['kill', 'lock-a'])).code).toBe(0);
  });

  it('a socket path too long for a unix socket', async () => {
    // An explicit path is refused when the definition is applied…
    const f = path.join(h.dir, 'longsock.yaml');
    fs.writeFileSync(f, `name: longsock\nmemory: 128M\nkernel: { builtin: test-guest }\nmonitor: { socket: /tmp/${'x'.repeat(120)}.sock }\n`);
    const r = await h.cli(['apply', '-f', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/monitor\.socket: .*over the 107-byte limit/);
    expect(fs.existsSync(path.join(h.dir, 'config/vms/longsock.yaml'))).toBe(false);
    // …and one that only gets too long under a deep KVMCTL_HOME is refused at start, naming it.
    const deep = path.join(h.dir, 'd'.repeat(60), 'e'.repeat(40));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(f, `name: longsock\nmemory: 128M\nkernel: { builtin: test-guest }\n`);
    expect((await h.cli(['apply', '-f', f], { env: { KVMCTL_HOME: deep } })).code).toBe(0);
    const s = await h.cli(['start', 'longsock'], { env: { KVMCTL_HOME: deep } });
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/qmp: socket path is \d+ bytes, over the 107-byte limit/);
    expect(fs.existsSync(path.join(deep, 'run/vms/longsock/qemu.pid'))).toBe(false);
  });

  it('a runAs user that does not exist', async () => {
    await h.apply(`name: nouser\nmemory: 128M\nkernel: { builtin: test-guest }\nrunAs: no-such-user-kvt\n`);
    const r = await h.cli(['start', 'nouser']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/runAs\.user: user "no-such-user-kvt" does not exist/);
  });
});
