/**
 * virtiofs shares: kvmctl runs one virtiofsd per share (Debian's QEMU ships the C one at
 * /usr/lib/qemu/virtiofsd), detached in its own session like QEMU, its vhost-user socket and log
 * in the VM's runtime dir. virtiofsd ends by itself when QEMU closes the connection (stop, kill,
 * crash); leftovers of a start killed half-way are ended by PID at the next start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import { spawnDetached } from '../host/exec.js';
import type { RuntimePaths } from '../qemu/argv.js';
import type { VmSpec } from '../definition/vm.js';
import { MAX_SOCKET_PATH } from './preflight.js';
import { waitGone } from './proc.js';

const CANDIDATES = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/virtiofsd', '/usr/lib/virtiofsd', '/usr/bin/virtiofsd'];

export function findVirtiofsd(): string | undefined {
  return CANDIDATES.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const pidFiles = (dir: string) => {
  try {
    return fs.readdirSync(dir).filter((f) => /^virtiofsd-.*\.pid$/.test(f)).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
};

function isVirtiofsd(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('virtiofsd');
  } catch {
    return false;
  }
}

/** End the virtiofsd processes recorded in a VM's runtime dir (by PID, checked to be virtiofsd). */
export async function killVirtiofsd(runtimeDir: string): Promise<number> {
  let n = 0;
  for (const f of pidFiles(runtimeDir)) {
    const pid = Number(fs.readFileSync(f, 'utf8').trim());
    if (pid > 1 && isVirtiofsd(pid)) {
      try {
        process.kill(pid, 'SIGTERM');
        n++;
      } catch {
        /* gone */
      }
      if (!(await waitGone(pid, 2000))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    fs.rmSync(f, { force: true });
  }
  return n;
}

/** Where each virtiofs share's vhost-user socket lives (pure: also for `kvmctl cmdline`). */
export function virtiofsSockets(vm: VmSpec, runtimeDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  vm.shares.forEach((s, i) => {
    if (s.driver === 'virtiofs') out[s.id ?? `fs${i}`] = path.join(runtimeDir, `vfs-${s.id ?? `fs${i}`}.sock`);
  });
  return out;
}

export type Virtiofsds = { sockets: Record<string, string>; pids: number[]; stop: () => Promise<void> };

/** Start one virtiofsd per virtiofs share and wait for its socket. Nothing to do without such shares. */
export async function startVirtiofsd(vm: VmSpec, rt: RuntimePaths, timeoutMs = 10_000): Promise<Virtiofsds> {
  const shares = vm.shares.map((s, i) => ({ s, i, id: s.id ?? `fs${i}` })).filter((x) => x.s.driver === 'virtiofs');
  const out: Virtiofsds = { sockets: {}, pids: [], stop: async () => undefined };
  if (!shares.length) return out;
  await killVirtiofsd(rt.dir); // leftovers of a start killed half-way
  const bin = findVirtiofsd();
  if (!bin) {
    throw new KvmError('VIRTIOFSD_MISSING', `VM "${vm.name}" has virtiofs shares but no virtiofsd was found (looked in ${CANDIDATES.join(', ')})`, {
      exit: 2,
      hint: "install Debian's qemu-system-common (it ships /usr/lib/qemu/virtiofsd), or use driver: 9p",
    });
  }
  for (const { s, i } of shares) {
    if (s.readOnly) throw badInput('VIRTIOFS_READONLY', `shares[${i}]: this virtiofsd (${bin}) has no read-only mode`, 'use driver: 9p for a read-only share');
  }
  out.stop = async () => {
    for (const pid of out.pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    for (const pid of out.pids) await waitGone(pid, 2000);
    for (const f of pidFiles(rt.dir)) fs.rmSync(f, { force: true });
  };
  try {
    for (const { s, id } of shares) {
      const sock = virtiofsSockets(vm, rt.dir)[id]!;
      if (Buffer.byteLength(sock) > MAX_SOCKET_PATH) throw badInput('SOCKET_PATH_TOO_LONG', `virtiofs socket path is over ${MAX_SOCKET_PATH} bytes: ${sock}`, 'use a shorter KVMCTL_HOME or VM name');
      fs.rmSync(sock, { force: true });
      const logFile = path.join(rt.dir, `virtiofsd-${id}.log`);
      const log = fs.openSync(logFile, 'w');
      let child: Awaited<ReturnType<typeof spawnDetached>>;
      try {
        // cache=auto: the guest caches with close-to-open consistency; the host may change files.
        child = await spawnDetached([bin, `--socket-path=${sock}`, '-o', `source=${s.path}`, '-o', 'cache=auto'], { stdio: ['ignore', log, log] });
      } finally {
        fs.closeSync(log);
      }
      out.pids.push(child.pid);
      fs.writeFileSync(path.join(rt.dir, `virtiofsd-${id}.pid`), `${child.pid}\n`);
      let dead = false;
      void child.exited.then(() => (dead = true));
      const end = Date.now() + timeoutMs;
      while (!fs.existsSync(sock)) {
        if (dead || Date.now() > end) {
          const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join('\n');
          throw new KvmError('VIRTIOFSD_FAILED', `virtiofsd for share ${id} (${s.path}) ${dead ? 'exited' : 'did not open its socket'}${tail ? `: ${tail}` : ''}`, { hint: `see ${logFile}` });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      out.sockets[id] = sock;
    }
  } catch (e) {
    await out.stop();
    throw e;
  }
  return out;
}
