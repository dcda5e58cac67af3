/**
 * A stopped VM's disks opened by qemu-storage-daemon, so that its backup goes through the same
 * QMP block jobs as a running VM's (and its persistent dirty bitmaps are loaded, updated and stored
 * by QEMU's own code). The daemon is started with --daemonize (it returns once its monitor
 * listens; it has no seccomp sandbox, unlike QEMU) and ended with QMP `quit`, which writes the
 * bitmaps back; if it does not end, it is killed by its PID.
 *
 * RBD volume disks (issue #21) are opened the way QEMU opens them (src/qemu/argv-rbd.ts: an rbd
 * protocol node and a raw format node named by the disk id), with the cephx key in a secret object
 * read from a 0600 file that is removed as soon as the daemon runs; with a network namespace the
 * daemon runs inside it (where Ceph is reachable, as the VM's QEMU would).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import type { Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import { isAlive } from '../vm/proc.js';
import { rbdBlockdevArgs, rbdSecretArgs, type RbdVolumeArg } from '../qemu/argv-rbd.js';

export const QSD = 'qemu-storage-daemon';

export type DaemonDisk = { id: string; file: string; format: string } | { id: string; volume: RbdVolumeArg };

/** QEMU's single-dash options as qemu-storage-daemon (getopt_long) wants them. */
const long = (args: string[]) => args.map((a) => (a === '-blockdev' || a === '-object' ? `-${a}` : a));

/** The daemon's argv (pure; exported for tests). Disks are node-named by their disk id. */
export function storageDaemonArgv(o: { socket: string; pidfile: string; disks: DaemonDisk[]; netns?: string }): string[] {
  const vols = o.disks.flatMap((d) => ('volume' in d ? [d.volume] : []));
  return [
    ...(o.netns ? ['ip', 'netns', 'exec', o.netns] : []),
    QSD,
    '--chardev', `socket,path=${o.socket.replace(/,/g, ',,')},server=on,wait=off,id=kvmon`,
    '--monitor', 'chardev=kvmon',
    ...long(rbdSecretArgs(vols)),
    ...o.disks.flatMap((d) =>
      'volume' in d
        ? long(rbdBlockdevArgs(d.id, d.volume, { readOnly: false }).args)
        : ['--blockdev', JSON.stringify({ driver: d.format, 'node-name': d.id, file: { driver: 'file', filename: d.file } })],
    ),
    '--pidfile', o.pidfile,
    '--daemonize',
  ];
}

export type StorageDaemon = { q: QmpClient; pid: number; close: () => Promise<void> };

export async function openStorageDaemon(paths: Paths, vm: string, disks: DaemonDisk[], o: { netns?: string; keyFiles?: string[] } = {}): Promise<StorageDaemon> {
  const dir = path.join(paths.run, 'backup');
  fs.mkdirSync(dir, { recursive: true });
  const socket = path.join(dir, `${vm}.qsd.sock`);
  const pidfile = path.join(dir, `${vm}.qsd.pid`);
  fs.rmSync(socket, { force: true });
  try {
    await run(storageDaemonArgv({ socket, pidfile, disks, netns: o.netns }), {
      timeoutMs: 60_000,
      errorCode: 'BACKUP_FAILED',
      hint: 'qemu-storage-daemon (Debian: qemu-system-common) could not open the disks; is another program using them? (an RBD volume: kvmctl storage check STORAGE)',
    });
  } finally {
    // The daemon read the key when it created the secret object (or failed): the file goes now.
    for (const f of o.keyFiles ?? []) fs.rmSync(f, { force: true });
  }
  const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
  let q: QmpClient;
  try {
    q = await QmpClient.connect(socket, { timeoutMs: 10_000 });
  } catch (e) {
    if (pid > 1) process.kill(pid, 'SIGKILL');
    throw e;
  }
  const close = async () => {
    await q.execute('quit').catch(() => undefined);
    await q.close().catch(() => undefined);
    for (let i = 0; i < 200 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    if (isAlive(pid)) {
      process.kill(pid, 'SIGKILL');
      throw new KvmError('BACKUP_FAILED', `qemu-storage-daemon (PID ${pid}) did not quit; killed it, so its dirty bitmaps were not stored`, { hint: 'the next backup of this VM is full' });
    }
    fs.rmSync(socket, { force: true });
    fs.rmSync(pidfile, { force: true });
  };
  return { q, pid, close };
}
