/**
 * Boot the test guest with real QEMU (TCG) INSIDE a network namespace (`ip netns exec NS qemu…`,
 * which execs QEMU in place: the PID we hold is QEMU's), with extra fds handed over at spawn
 * (stdio[3], [4], … → QEMU's fd=3, 4, …) and a serial shell on stdio. Killed by PID by `kill()`.
 * Used by the network tests until the VM lifecycle is wired to namespaces.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { READY_MARKER } from '../../src/guest/init-script.js';
import { findTestGuest, ensureTestGuest } from '../../src/guest/test-guest.js';
import type { Paths } from '../../src/host/paths.js';

process.env.KVMCTL_GUEST_CACHE ??= '/var/tmp/kvmctl-guest';

export const QEMU = '/usr/bin/qemu-system-x86_64';
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

export type GuestVm = {
  pid: number;
  ready: Promise<number>;
  sh(cmd: string, ms?: number): Promise<string>;
  out(): string;
  kill(): Promise<void>;
};

export function canBootGuest(): boolean {
  return fs.existsSync(QEMU) && (fs.existsSync('/usr/bin/apt-get') || !!process.env.KVMCTL_GUEST_CACHE);
}

export async function guestFiles(paths: Paths) {
  return (await findTestGuest(paths)) ?? (await ensureTestGuest(paths));
}

let seq = 0;
export async function bootGuest(o: { paths: Paths; netns: string; append: string; netArgs: string[]; fds?: number[] }): Promise<GuestVm> {
  const g = await guestFiles(o.paths);
  const t0 = performance.now();
  const argv = [
    'netns', 'exec', o.netns, QEMU,
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '256M', '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', g.vmlinux ?? g.kernel, '-initrd', g.initrd, '-append', `${g.appendDefault} ${o.append}`,
    ...o.netArgs,
  ];
  const proc: ChildProcess = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe', ...(o.fds ?? [])] });
  let buf = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((res) => proc.once('exit', () => { res(); for (const w of waiters.splice(0)) w(); }));
  const waitFor = (re: RegExp, ms: number) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${re}; serial:\n${stripAnsi(buf).slice(-2000)}`)), ms);
      const check = () => {
        const m = stripAnsi(buf).match(re);
        if (m) { clearTimeout(timer); resolve(m); return; }
        if (proc.exitCode !== null || proc.signalCode !== null) { clearTimeout(timer); reject(new Error(`QEMU exited before ${re}:\n${stripAnsi(buf).slice(-2000)}`)); return; }
        waiters.push(check);
      };
      check();
    });
  await new Promise<void>((res, rej) => { proc.once('spawn', res); proc.once('error', rej); });
  const ready = waitFor(new RegExp(`^${READY_MARKER}\\r?$`, 'm'), 90_000).then(() => performance.now() - t0);
  ready.catch(() => undefined);
  return {
    pid: proc.pid!,
    ready,
    out: () => stripAnsi(buf),
    async sh(cmd, ms = 30_000) {
      const n = ++seq;
      proc.stdin!.write(`echo B$((${n}*1))B; ${cmd}; echo E$((${n}*1))E\n`);
      const m = await waitFor(new RegExp(`B${n}B\\r?\\n([\\s\\S]*?)E${n}E`), ms);
      return m[1]!.replace(/\r/g, '').trim();
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid!, 'SIGKILL');
        await exited;
      }
    },
  };
}
