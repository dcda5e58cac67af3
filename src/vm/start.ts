/**
 * `start`: preflight → disks → NICs → argv → spawn QEMU detached in its own session → QMP ready.
 * Runs under the VM's lock (ten concurrent starts give one QEMU). A start that fails half-way
 * undoes everything it did: QEMU killed by PID, NICs released, sockets and pidfile removed.
 */
import fs from 'node:fs';
import { badInput, KvmError } from '../errors.js';
import { spawnDetached } from '../host/exec.js';
import { mark } from '../trace.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { probeHost } from '../host/probe.js';
import { buildArgv } from '../qemu/argv.js';
import { pickFirmware } from '../qemu/firmware.js';
import { readVm } from '../definition/store.js';
import { effectiveTpm } from '../definition/vm-effective.js';
import { resolveKernel } from './kernel.js';
import { withVmLock } from './lock.js';
import { checkStartCapacity } from './capacity.js';
import { vmPathIssues } from './path-check.js';
import { lookupGroup, preflight } from './preflight.js';
import { procStat, waitGone } from './proc.js';
import { qmpOnce } from './qmp-once.js';
import { runtimePaths } from './runtime-paths.js';
import { qemuLogTail, writeJson, type RunState } from './state.js';
import { vmStatus } from './status.js';
import { waitForQmp, waitForSerial } from './wait.js';
import { taskLog } from '../tasks/current.js';

export type StartOptions = {
  /** Wait until QMP reports the VM running (the default: QMP is up within ~0.1 s). */
  wait?: boolean;
  /** Also wait for this text on the serial console (true = the test guest's ready marker). */
  waitForGuest?: string | boolean;
  timeoutMs?: number;
  /** Boot once from `boot.once` (an install from the CD-ROM). */
  bootOnce?: boolean;
  /** `kvmctl install`: this ISO in the first CD-ROM drive, boot once from it (src/vm/storage.ts). */
  install?: { iso: string };
  /** Network namespace the VM's links live in (kvmctl run under `ip netns exec NS`). */
  netns?: string;
  log?: (msg: string) => void;
  /** Live migration destination: start with `-incoming URI` and return while QMP says `inmigrate` (src/cluster/migrate.ts). */
  incoming?: string;
};

export type StartResult = { name: string; pid: number; accel: 'kvm' | 'tcg'; warnings: string[]; argv: string[]; qmpReadyMs: number; guestReadyMs?: number; /** Threads pinned by cpu.pin (src/vm/pin.ts). */ pinned?: { tid: number; cpus: string; what: string }[] };

export const GUEST_READY_MARKER = 'KVMCTL-GUEST-READY';

export async function startVm(paths: Paths, name: string, opts: StartOptions = {}): Promise<StartResult> {
  const vm = opts.install ? (await import('./storage.js')).withInstallMedium(readVm(paths, name), opts.install.iso, paths) : readVm(paths, name);
  const t0 = Date.now();
  mark('start: definition read');
  return withVmLock(paths, name, async () => {
    mark('start: VM lock taken');
    const now = await vmStatus(paths, name, { lockHeld: true });
    if (now.state !== 'stopped' && now.state !== 'crashed') {
      throw badInput('VM_RUNNING', `VM "${name}" is already ${now.state}${now.pid ? ` (pid ${now.pid})` : ''}`, `kvmctl stop ${name} first, or kvmctl restart ${name}`);
    }
    checkStartCapacity(paths, vm);
    // A start killed after binding PCI devices left its record: give those back before looking at the host.
    if (fs.existsSync(`${vmRuntimeFiles(paths, name).dir}/vfio.json`)) (await import('../host/vfio-bind.js')).releaseVfioRecord(vmRuntimeFiles(paths, name).dir);
    let tuningFacts: import('../host/tuning-facts.js').TuningFacts | undefined;
    let sysRoot = '/sys';
    if (vm.cpu.pin || vm.memoryTuning || vm.pci?.length) {
      // Hugepages free, host CPUs and nodes, IOMMU groups: read now (they change), judged purely.
      const { assertTuningFits, needsTuningCheck } = await import('./tuning-check.js');
      if (needsTuningCheck(vm)) {
        const { readTuningFacts, sysfsRoot } = await import('../host/tuning-facts.js');
        sysRoot = sysfsRoot();
        tuningFacts = readTuningFacts(sysRoot);
        assertTuningFits(vm, tuningFacts);
      }
    }
    mark('start: locked, checks done');
    const facts = await probeHost(paths);
    mark('host facts');
    const rt = runtimePaths(paths, name);
    const files = vmRuntimeFiles(paths, name);
    const kernel = await resolveKernel(vm, paths, { build: true, log: opts.log });
    mark('kernel resolved');
    const { runAs } = preflight(vm, rt, paths.images, kernel, vmPathIssues(vm, paths));
    const fw = pickFirmware(vm, facts);
    const nvram = fw ? (await import('./nvram.js')).ensureNvram(paths, vm, fw, runAs ? { uid: runAs.uid, gid: runAs.gid } : undefined) : undefined;
    if (vm.disks.some((d) => d.create)) {
      const { ensureDisk } = await import('../disk/images.js');
      for (const d of vm.disks) if (d.create) await ensureDisk(d, paths);
    }
    fs.mkdirSync(rt.dir, { recursive: true, mode: 0o750 });
    for (const p of [rt.qmp, rt.serial, rt.vnc, rt.pidfile, files.state, `${rt.dir}/vcpu-unplugged`]) fs.rmSync(p, { force: true });
    // QEMU running as another user must be able to remove its pidfile and sockets when it exits
    // cleanly: that is how a guest power-off is told apart from a crash.
    if (runAs) fs.chownSync(rt.dir, runAs.uid, lookupGroup('kvm') ?? runAs.gid);

    const needsNet = vm.nics.length > 0;
    const net = needsNet ? await import('../net/attach.js') : undefined;
    if (net) {
      // Leftovers of a start killed half-way, and of any VM that died without cleaning up.
      await net.releaseNics(name, paths, { netns: opts.netns });
      const { gcLinks } = await import('../net/gc.js');
      await gcLinks({ paths, netns: opts.netns });
    }
    const nics = net
      ? await net.prepareNics(vm, { paths, facts, runAs: runAs ? { uid: runAs.uid, gid: runAs.gid } : undefined, netns: opts.netns })
      : { attachments: [], fds: [] as number[], macs: [] as string[], warnings: [] as string[], closeFds: () => undefined, release: async () => undefined };
    let pid: number | undefined;
    let exited: Promise<unknown> | undefined;
    let vfs: { stop: () => Promise<void>; sockets: Record<string, string> } | undefined; // virtiofsd per virtiofs share
    let tpm: { stop: () => Promise<void>; warnings: string[] } | undefined; // swtpm, up before QEMU connects
    let keyFiles: string[] = []; // cephx keys for QEMU's secret objects: removed once QEMU has read them
    let vfioTaken = false; // managed pci: devices moved to vfio-pci, recorded in <run>/vfio.json
    try {
      const managed = (vm.pci ?? []).filter((p) => p.managed !== false).map((p) => p.host);
      if (managed.length && tuningFacts) {
        const vfio = await import('../host/vfio-bind.js');
        const plan = vfio.vfioPlan(managed, tuningFacts);
        if (plan.length) {
          vfioTaken = true;
          const taken = vfio.bindVfio(sysRoot, plan, (t) => vfio.writeVfioRecord(rt.dir, { sysfs: sysRoot, taken: t }));
          taskLog(`bound to vfio-pci: ${taken.map((t) => `${t.address} (from ${t.driver ?? 'no driver'})`).join(', ')}`);
        }
      }
      // Disks open the top of their snapshot chain; a cloud-init seed is built fresh (src/vm/storage.ts).
      mark('runtime dir ready');
      const storage = await import('./storage.js');
      mark('storage module');
      const layers = storage.activeDiskFiles(paths, vm);
      const seed = await storage.buildVmSeed(paths, vm);
      vfs = vm.shares.some((s) => s.driver === 'virtiofs') ? await (await import('./virtiofs.js')).startVirtiofsd(vm, rt) : undefined;
      const tpmSpec = effectiveTpm(vm);
      tpm = tpmSpec ? await (await import('./swtpm.js')).startSwtpm(paths, name, tpmSpec, rt) : undefined;
      mark('disk layers + seed');
      // Volume disks (RBD, src/storage/attach.ts): every image exists, the keys are files for -object secret.
      const vols = vm.disks.some((d) => d.storage !== undefined) ? await import('../storage/attach.js') : undefined;
      const volumes = vols ? await vols.resolveVolumes(paths, vm, rt.dir) : undefined;
      if (vols && volumes) {
        await vols.checkVolumes(volumes, opts.netns);
        keyFiles = await vols.writeKeys(volumes, rt.dir, runAs ? { uid: runAs.uid, gid: runAs.gid } : undefined);
      }
      const built = buildArgv(vm, facts, { runtime: rt, imagesDir: paths.images, attachments: nics.attachments, kernel, bootOnce: opts.bootOnce || !!opts.install, diskFiles: layers.files, seed, virtiofs: vfs?.sockets, incoming: opts.incoming, nvram: nvram?.file, volumes: volumes?.volumes });
      built.warnings.push(...layers.warnings, ...(nvram?.warnings ?? []), ...(tpm?.warnings ?? []));
      built.warnings.push(...nics.warnings);
      const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...built.argv] : built.argv;
      writeJson(files.argv, argv);
      const log = fs.openSync(files.qemuLog, 'w');
      try {
        mark('argv built');
        const child = await spawnDetached(argv, { stdio: ['ignore', log, log, ...nics.fds] });
        mark('QEMU spawned');
        pid = child.pid;
        exited = child.exited;
      } finally {
        fs.closeSync(log);
        nics.closeFds(); // QEMU holds its own copies now
      }
      const first = await waitForQmp(rt.qmp, exited!, opts.timeoutMs ?? 30_000, () => qemuLogTail(paths, name, 10));
      const qmpReadyMs = Date.now() - t0;
      mark('QMP answered query-status');
      taskLog(`QEMU ${pid} up (${built.accel.toUpperCase()}), QMP answered after ${qmpReadyMs} ms`);
      for (const w of built.warnings) taskLog(`warning: ${w}`);
      for (const f of keyFiles) fs.rmSync(f, { force: true }); // QEMU read its secret objects before QMP answered
      const run: RunState = {
        name,
        pid: pid!,
        starttime: procStat(pid!)?.starttime ?? 0,
        startedAt: new Date().toISOString(),
        accel: built.accel,
        qemuVersion: facts.qemuVersion,
        netns: opts.netns,
        warnings: built.warnings,
      };
      writeJson(files.state, run);
      if (runAs) shareSockets(rt, runAs.uid);
      if (opts.wait !== false && !first.running && !opts.incoming) {
        throw new KvmError('START_FAILED', `VM "${name}" is ${first.status} right after start`, { hint: qemuLogTail(paths, name) || undefined });
      }
      // cpu.pin: vCPU, iothread and emulator threads exist once QMP answers.
      let pinned = vm.cpu.pin ? await (await import('./pin.js')).applyPinning(vm, pid!, rt.qmp) : undefined;
      let guestReadyMs: number | undefined;
      if (opts.waitForGuest) {
        const marker = opts.waitForGuest === true ? GUEST_READY_MARKER : opts.waitForGuest;
        await waitForSerial(rt.serialLog, marker, opts.timeoutMs ?? 120_000, () => procStat(pid!) !== undefined && procStat(pid!)!.state !== 'Z');
        guestReadyMs = Date.now() - t0;
        taskLog(`guest ready after ${guestReadyMs} ms`);
        // Worker threads started during the boot inherit their creator's mask: pin them as emulator threads too.
        if (vm.cpu.pin) pinned = await (await import('./pin.js')).applyPinning(vm, pid!, rt.qmp);
      }
      return { name, pid: pid!, accel: built.accel, warnings: built.warnings, argv, qmpReadyMs, guestReadyMs, pinned };
    } catch (e) {
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await waitGone(pid, 5000);
      }
      await nics.release().catch(() => undefined);
      await vfs?.stop().catch(() => undefined);
      await tpm?.stop().catch(() => undefined);
      if (vfioTaken) (await import('../host/vfio-bind.js')).releaseVfioRecord(rt.dir);
      for (const f of keyFiles) fs.rmSync(f, { force: true });
      for (const p of [rt.qmp, rt.serial, rt.vnc, rt.pidfile, files.state]) fs.rmSync(p, { force: true });
      writeJson(`${rt.dir}/last-exit.json`, { at: new Date().toISOString(), how: 'start-failed', reason: e instanceof Error ? e.message : String(e) });
      throw e;
    }
  });
}

/** Sockets made by QEMU (as root, before it drops privileges) opened to the VM's user and the kvm group. */
function shareSockets(rt: { dir: string; qmp: string; serial: string; vnc: string }, uid: number): void {
  const kvm = lookupGroup('kvm') ?? 0;
  for (const p of [rt.qmp, rt.serial, rt.vnc]) {
    if (!fs.existsSync(p)) continue;
    fs.chownSync(p, uid, kvm);
    fs.chmodSync(p, 0o660);
  }
}
