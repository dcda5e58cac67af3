/**
 * `status` and `list`: the state of each VM, derived from files, /proc and QMP. A QEMU that died
 * without a clean shutdown shows as crashed with the reason from its log; its stale pidfile and
 * sockets are cleaned (and its NICs released) the first time anyone looks.
 */
import fs from 'node:fs';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { listNames } from '../definition/store.js';
import { isVmLocked } from './lock.js';
import { procStat } from './proc.js';
import { qmpOnce } from './qmp-once.js';
import { observe, qemuLogTail, readJson, writeJson, type LastExit, type RunState, type VmState } from './state.js';

export type VmStatus = {
  name: string;
  state: VmState;
  pid?: number;
  accel?: 'kvm' | 'tcg';
  startedAt?: string;
  uptimeSec?: number;
  rssBytes?: number;
  /** QEMU's own run state (query-status), e.g. running, paused, shutdown, guest-panicked. */
  qemuStatus?: string;
  lastExit?: LastExit;
  /** Why it crashed, from QEMU's log. */
  reason?: string;
};

const PAGE = 4096;

/** Remove what a dead QEMU left behind and remember how it ended. Idempotent. */
export async function cleanupDead(paths: Paths, name: string, exit: LastExit | undefined): Promise<void> {
  const f = vmRuntimeFiles(paths, name);
  const run = readJson<RunState>(f.state);
  try {
    const { releaseNics } = await import('../net/attach.js');
    await releaseNics(name, paths, { netns: run?.netns });
  } catch {
    /* nothing to release, or the network layer reports it on the next start */
  }
  // swtpm ends by itself when QEMU closes the connection (--terminate); after a kill -9 it may not have yet.
  if (fs.existsSync(`${f.dir}/swtpm.pid`)) await (await import('./swtpm.js')).killSwtpm(f.dir).catch(() => undefined);
  // Managed PCI passthrough: the devices go back to their host drivers once QEMU is gone (src/host/vfio-bind.ts).
  if (fs.existsSync(`${f.dir}/vfio.json`)) {
    const warnings = (await import('../host/vfio-bind.js')).releaseVfioRecord(f.dir);
    for (const w of warnings) fs.appendFileSync(f.qemuLog, `kvmctl: PCI give-back: ${w}\n`);
  }
  for (const p of [f.pidfile, f.qmp, f.serial, f.vnc, `${f.dir}/monitor.sock`, `${f.dir}/qmp-events.sock`, `${f.dir}/swtpm.sock`, `${f.dir}/qga.sock`, f.state]) fs.rmSync(p, { force: true });
  // Also without state.json (a start killed between spawning QEMU and writing it): a QEMU that
  // died is still remembered as crashed.
  if (exit) writeJson(`${f.dir}/last-exit.json`, exit);
}

/** `lockHeld`: the caller holds the VM's lock itself, so a held lock does not mean "starting". */
export async function vmStatus(paths: Paths, name: string, opts: { cleanup?: boolean; lockHeld?: boolean } = {}): Promise<VmStatus> {
  const locked = async () => !opts.lockHeld && (await isVmLocked(paths, name));
  const o = observe(paths, name);
  const f = vmRuntimeFiles(paths, name);
  if (o.phase === 'alive') {
    const st = procStat(o.pid!);
    const base: VmStatus = {
      name,
      state: 'running',
      pid: o.pid,
      accel: o.run?.accel,
      startedAt: o.run?.startedAt,
      uptimeSec: o.run ? Math.round((Date.now() - Date.parse(o.run.startedAt)) / 1000) : undefined,
      rssBytes: st ? st.rssPages * PAGE : undefined,
    };
    if (o.run?.stoppingBy && procStat(o.run.stoppingBy)) return { ...base, state: 'stopping' };
    if (!o.run && (await locked())) return { ...base, state: 'starting' };
    try {
      const q = (await qmpOnce(f.qmp, 'query-status', undefined, 2000)) as { status: string; running: boolean };
      const state: VmState = q.running ? 'running' : q.status === 'shutdown' ? 'stopping' : q.status === 'prelaunch' || q.status === 'inmigrate' ? 'starting' : 'paused';
      return { ...base, state, qemuStatus: q.status };
    } catch {
      return { ...base, qemuStatus: 'unknown (QMP did not answer)' };
    }
  }
  if (o.phase === 'died') {
    const reason = qemuLogTail(paths, name) || `QEMU (pid ${o.pid}) ended without a clean shutdown and left no message: killed by a signal (SIGKILL, the OOM killer) or crashed`;
    const exit: LastExit = { at: new Date().toISOString(), how: 'crashed', reason };
    if (opts.cleanup !== false) await cleanupDead(paths, name, exit);
    return { name, state: 'crashed', pid: o.pid, reason, lastExit: exit };
  }
  if (o.phase === 'exited-clean') {
    // QEMU removed its pidfile: the guest powered itself off (or someone quit it outside kvmctl).
    const exit: LastExit = { at: new Date().toISOString(), how: 'guest' };
    if (opts.cleanup !== false) await cleanupDead(paths, name, exit);
    return { name, state: 'stopped', lastExit: exit };
  }
  if (await locked()) return { name, state: 'starting', lastExit: o.lastExit };
  // A start killed after making NICs but before spawning QEMU: nobody will use them, release them now.
  if (opts.cleanup !== false && !opts.lockHeld && (fs.existsSync(`${f.dir}/nics.json`) || fs.existsSync(`${f.dir}/vfio.json`))) await cleanupDead(paths, name, undefined);
  if (o.lastExit?.how === 'crashed') return { name, state: 'crashed', lastExit: o.lastExit, reason: o.lastExit.reason };
  return { name, state: 'stopped', lastExit: o.lastExit };
}

export async function listVms(paths: Paths): Promise<VmStatus[]> {
  return Promise.all(listNames(paths, 'vm').map((n) => vmStatus(paths, n)));
}
