/**
 * The QEMU command line, as a pure function of the definition, the host facts and the runtime
 * context (socket paths, resolved NIC attachments, resolved builtin kernel). No I/O here: every
 * fact about the host arrives as data, so this is golden-tested for a KVM host and for a TCG host.
 */
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { HostFacts } from '../host/facts.js';
import type { DiskSpec, NicSpec, VmSpec } from '../definition/vm.js';
import { formatSize } from '../definition/units.js';
import type { NicAttachment } from './attachments.js';
import { qemuEscape, qemuOpts } from './escape.js';
import { deriveMac } from '../net/mac.js';
import { effectiveAgent, effectiveFirmware, effectiveHotplugSlots, effectiveTpm } from '../definition/vm-effective.js';
import { pickFirmware } from './firmware.js';
import { agentArgs, firmwareArgs, hotplugPortArgs, tpmArgs, uefiBootIndexes } from './platform.js';
import { rbdBlockdevArgs, rbdSecretArgs, type RbdVolumeArg } from './argv-rbd.js';
import { balloonArgs, blkDeviceOpts, cpuArg, diskNeedsDevice, iothreadArgs, memoryArgs, nicQueueOpts, passthroughArgs } from './argv-tuning.js';

export type RuntimePaths = {
  dir: string; qmp: string; serial: string; serialLog: string; pidfile: string; vnc: string;
  /** A second QMP socket for the long-lived event watcher of `kvmctl serve` (QEMU serves one client per socket). */
  qmpEvents?: string;
  /** The guest agent's chardev socket (default: qga.sock in dir). */
  qga?: string;
  /** swtpm's control socket (default: swtpm.sock in dir). */
  tpm?: string;
};

export type ArgvContext = {
  runtime: RuntimePaths;
  /** Relative disk and ISO paths are resolved against this directory. */
  imagesDir: string;
  /** One per NIC, in the definition's order. */
  attachments: NicAttachment[];
  /** The kernel to boot directly, with builtin names already resolved to files. */
  kernel?: { path: string; initrd?: string; append?: string };
  /** Apply `boot.once` (an install boot from the CD-ROM). */
  bootOnce?: boolean;
  /** Per disk id: the image QEMU opens instead of the definition's file (the top of an external snapshot chain, src/vm/storage.ts). */
  diskFiles?: Record<string, { file: string; format: string }>;
  /** A cloud-init NoCloud seed image (label cidata), attached read-only as a virtio disk. */
  seed?: string;
  /** Per virtiofs share id: the vhost-user socket of the virtiofsd kvmctl runs for it (src/vm/virtiofs.ts). */
  virtiofs?: Record<string, string>;
  /** Live migration destination: `-incoming URI` (e.g. tcp:10.0.0.2:49200); QMP reports `inmigrate` until it is done. */
  incoming?: string;
  /** The VM's own UEFI vars file (src/vm/nvram.ts); needed when the firmware is UEFI. */
  nvram?: string;
  /** Per volume disk id: the RBD image and the key file (src/storage/attach.ts); required for every disk with storage:. */
  volumes?: Record<string, RbdVolumeArg>;
};

export type BuiltArgv = { argv: string[]; warnings: string[]; accel: 'kvm' | 'tcg'; cpuModel: string };

const NIC_DEVICE: Record<NicSpec['model'], string> = {
  virtio: 'virtio-net-pci',
  e1000: 'e1000',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
  vmxnet3: 'vmxnet3',
};
const BOOT_LETTER = { disk: 'c', cdrom: 'd', network: 'n' } as const;

export function nicId(nic: NicSpec, i: number): string {
  return nic.id ?? `net${i}`;
}
export function diskId(disk: DiskSpec, i: number): string {
  return disk.id ?? `disk${i}`;
}

function volumeOf(ctx: ArgvContext, id: string, d: DiskSpec): RbdVolumeArg {
  const v = ctx.volumes?.[id];
  if (!v) throw new KvmError('INTERNAL', `buildArgv: disk ${id} names volume ${d.storage}/${d.volume} but the context has no resolved volume for it`);
  return v;
}

function resolveIn(dir: string, file: string): string {
  return path.isAbsolute(file) ? file : path.join(dir, file);
}

/** The file of a file disk (callers that handle files only; a volume disk has none). */
export function diskFile(d: Pick<DiskSpec, 'file' | 'storage' | 'volume'>): string {
  if (d.file === undefined) throw new KvmError('INTERNAL', `disk of volume ${d.storage}/${d.volume} has no file`);
  return d.file;
}

/** Infer a disk's format from its extension when the definition leaves it out. */
export function diskFormat(disk: DiskSpec): string {
  if (disk.format) return disk.format;
  if (disk.file === undefined) return 'raw'; // an RBD volume
  const ext = path.extname(disk.file).slice(1).toLowerCase();
  return ['qcow2', 'vmdk', 'vdi', 'vhdx', 'qed'].includes(ext) ? ext : 'raw';
}

export function buildArgv(vm: VmSpec, facts: HostFacts, ctx: ArgvContext): BuiltArgv {
  const a: string[] = [facts.qemuBinary];
  const warnings: string[] = [];
  const add = (...xs: string[]) => a.push(...xs);

  // Accelerator: the first one in the definition's list that the host can use; TCG otherwise.
  const usable = (x: string) => (x === 'kvm' ? facts.kvm : facts.accels.length === 0 || facts.accels.includes(x));
  let accel = vm.machine.accel.find(usable) as 'kvm' | 'tcg' | undefined;
  if (!accel) {
    accel = 'tcg';
    warnings.push(`KVM is not usable here (${facts.kvmWhy ?? 'unknown reason'}): running under TCG software emulation, roughly 10–50× slower`);
  } else if (accel === 'tcg' && vm.machine.accel[0] === 'kvm') {
    warnings.push(`KVM is not usable here (${facts.kvmWhy ?? 'unknown reason'}): falling back to TCG software emulation, roughly 10–50× slower`);
  }
  const layout = machineLayout(vm, facts, ctx, warnings, accel); // the fast-boot profile (microvm / qboot)
  const machineType = layout.type;
  const fw = pickFirmware(vm, facts, machineType); // undefined = BIOS
  if (fw && !ctx.nvram) throw new KvmError('INTERNAL', 'buildArgv: UEFI firmware but no vars file in the context');
  const uefiBoot = fw ? uefiBootIndexes(vm, !!ctx.bootOnce) : undefined;
  const dev = (pci: string) => (layout.mmio ? pci.replace(/-pci$/, '-device') : pci); // virtio-mmio on microvm
  if (facts.machines.length > 0 && !facts.machines.includes(machineType)) {
    throw new KvmError('MACHINE_UNKNOWN', `machine type "${machineType}" is not known to ${facts.qemuBinary} ${facts.qemuVersion ?? ''}`.trim(), {
      exit: 2,
      hint: `pick one of: ${facts.machines.filter((m) => !/\d/.test(m)).join(', ')} (qemu-system-x86_64 -machine help)`,
    });
  }
  const cpuModel = cpuArg(vm, facts, accel, warnings); // checked against -cpu help (argv-tuning.ts)

  add('-name', qemuEscape(vm.name));
  add('-machine', qemuOpts(undefined, { type: machineType, accel, 'mem-merge': vm.machine.memMerge ? undefined : 'off', smm: fw?.smm ? 'on' : undefined, ...layout.machineOpts }));
  add('-nodefaults', '-no-user-config');
  if (fw) add(...firmwareArgs(fw, ctx.nvram!));
  if (layout.bios) add('-bios', layout.bios);
  if (layout.noReboot) add('-no-reboot');
  if (vm.rng) {
    const source = vm.rng === true ? '/dev/urandom' : vm.rng.source;
    add('-object', qemuOpts('rng-random', { id: 'rng0', filename: source }), '-device', `${dev('virtio-rng-pci')},rng=rng0`);
  }
  add('-cpu', cpuModel);
  const { count, sockets, cores, threads, maxCount } = vm.cpu;
  const maxcpus = maxCount !== undefined && maxCount > count ? maxCount : undefined; // vCPU hotplug slots
  add('-smp', sockets || cores || threads || maxcpus ? qemuOpts(String(count), { sockets, cores, threads, maxcpus }) : String(count));
  add('-m', formatSize(vm.memory));
  const memArgs = memoryArgs(vm, vm.shares.some((s) => s.driver === 'virtiofs')); // hugepages, NUMA, mem-lock (argv-tuning.ts)
  if (memArgs) add(...memArgs);
  add(...iothreadArgs(vm, vm.disks.map((d, i) => diskId(d, i))));

  // Disks.
  let scsi = false;
  const vols = vm.disks.flatMap((d, i) => (d.file === undefined ? [volumeOf(ctx, diskId(d, i), d)] : []));
  add(...rbdSecretArgs(vols));
  vm.disks.forEach((d, i) => {
    const id = diskId(d, i);
    if (d.file === undefined) {
      // A volume (RBD): -blockdev nodes and a separate device (argv-rbd.ts).
      const { args, writeCache } = rbdBlockdevArgs(id, volumeOf(ctx, id, d), d);
      add(...args);
      const bootindex = uefiBoot?.disks[i];
      if (d.interface === 'virtio') add('-device', qemuOpts(dev('virtio-blk-pci'), { drive: id, ...blkDeviceOpts(d, id), 'write-cache': writeCache, bootindex }));
      else if (d.interface === 'scsi') {
        if (!scsi) add('-device', `${dev('virtio-scsi-pci')},id=scsi0`);
        scsi = true;
        add('-device', qemuOpts('scsi-hd', { drive: id, bus: 'scsi0.0', 'write-cache': writeCache, bootindex }));
      } else if (d.interface === 'nvme') add('-device', qemuOpts('nvme', { drive: id, serial: id, bootindex }));
      else {
        const q35 = /q35/.test(machineType);
        const bus = d.index === undefined ? {} : q35 ? { bus: `ide.${d.index}` } : { bus: `ide.${d.index >> 1}`, unit: d.index & 1 };
        add('-device', qemuOpts('ide-hd', { drive: id, ...bus, 'write-cache': writeCache, bootindex }));
      }
      return;
    }
    const file = ctx.diskFiles?.[id]?.file ?? resolveIn(ctx.imagesDir, d.file!);
    const common = { file, format: ctx.diskFiles?.[id]?.format ?? diskFormat(d), cache: d.cache, aio: d.aio, discard: d.discard, 'detect-zeroes': d.detectZeroes, readonly: d.readOnly };
    const bootindex = uefiBoot?.disks[i];
    if ((uefiBoot && (d.interface === 'virtio' || d.interface === 'ide' || d.interface === 'sata')) || (diskNeedsDevice(d) && !layout.mmio)) {
      // UEFI: the device is separate from the drive so that it can carry its bootindex.
      const q35 = /q35/.test(machineType);
      const bus = d.interface === 'virtio' || d.index === undefined ? {} : q35 ? { bus: `ide.${d.index}` } : { bus: `ide.${d.index >> 1}`, unit: d.index & 1 };
      add('-drive', qemuOpts(undefined, { ...common, if: 'none', id }), '-device', qemuOpts(d.interface === 'virtio' ? 'virtio-blk-pci' : 'ide-hd', { drive: id, ...bus, ...(d.interface === 'virtio' ? blkDeviceOpts(d, id) : {}), serial: d.serial, bootindex }));
    } else if (d.interface === 'virtio' && layout.mmio) {
      add('-drive', qemuOpts(undefined, { ...common, if: 'none', id }), '-device', qemuOpts('virtio-blk-device', { drive: id, ...blkDeviceOpts(d, id), serial: d.serial }));
    } else if (d.interface === 'virtio' || d.interface === 'ide' || d.interface === 'sata') {
      const iface = d.interface === 'sata' ? 'ide' : d.interface; // q35's IDE buses are its AHCI ports
      add('-drive', qemuOpts(undefined, { ...common, if: iface, index: d.index, media: 'disk', id }));
    } else if (d.interface === 'scsi') {
      if (!scsi) add('-device', `${dev('virtio-scsi-pci')},id=scsi0`);
      scsi = true;
      add('-drive', qemuOpts(undefined, { ...common, if: 'none', id }), '-device', qemuOpts('scsi-hd', { drive: id, bus: 'scsi0.0', serial: d.serial, bootindex }));
    } else {
      add('-drive', qemuOpts(undefined, { ...common, if: 'none', id }), '-device', qemuOpts('nvme', { drive: id, serial: d.serial ?? id, bootindex }));
    }
  });
  vm.cdroms.forEach((c, i) => {
    if (uefiBoot) {
      const id = c.id ?? `cd${i}`;
      add('-drive', qemuOpts(undefined, { file: resolveIn(ctx.imagesDir, c.file), if: 'none', media: 'cdrom', readonly: true, id }), '-device', qemuOpts('ide-cd', { drive: id, bootindex: uefiBoot.cdroms[i] }));
      return;
    }
    add('-drive', qemuOpts(undefined, { file: resolveIn(ctx.imagesDir, c.file), if: 'ide', media: 'cdrom', readonly: true, id: c.id ?? `cd${i}` }));
  });
  if (ctx.seed && layout.mmio) add('-drive', qemuOpts(undefined, { file: ctx.seed, format: 'raw', if: 'none', readonly: true, id: 'cidata' }), '-device', 'virtio-blk-device,drive=cidata');
  else if (ctx.seed) add('-drive', qemuOpts(undefined, { file: ctx.seed, format: 'raw', if: 'virtio', media: 'disk', readonly: true, id: 'cidata' }));

  // Boot: direct kernel, or the firmware's boot order.
  if (ctx.kernel) {
    add('-kernel', ctx.kernel.path);
    if (ctx.kernel.initrd) add('-initrd', ctx.kernel.initrd);
    const append = [ctx.kernel.append, layout.append].filter(Boolean).join(' ');
    if (append) add('-append', append);
  }
  if (vm.boot && uefiBoot) {
    if (vm.boot.menu !== undefined) add('-boot', qemuOpts(undefined, { menu: vm.boot.menu }));
  } else if (vm.boot) {
    const order = vm.boot.order.map((b) => BOOT_LETTER[b]).join('');
    const once = ctx.bootOnce && vm.boot.once ? BOOT_LETTER[vm.boot.once] : undefined;
    add('-boot', once || vm.boot.menu !== undefined ? qemuOpts(undefined, { order, once, menu: vm.boot.menu }) : order);
  }

  // NICs.
  if (ctx.attachments.length !== vm.nics.length) {
    throw new KvmError('INTERNAL', `buildArgv: ${vm.nics.length} NICs but ${ctx.attachments.length} attachments`);
  }
  const noVhost: string[] = [];
  vm.nics.forEach((nic, i) => {
    const id = nicId(nic, i);
    const at = ctx.attachments[i]!;
    let mac = nic.mac ?? deriveMac(vm.name, id); // stable across restarts
    if (at.kind === 'user') {
      const fwd = at.forwards.map((f) => `${f.proto}:${f.hostAddr ?? ''}:${f.hostPort}-:${f.guestPort}`);
      add('-netdev', ['user', `id=${id}`, ...fwd.map((f) => `hostfwd=${f}`)].join(','));
    } else {
      const wantVhost = nic.vhost === 'on' || (nic.vhost === 'auto' && at.vhost);
      const vhost = wantVhost && facts.vhostNet;
      if (wantVhost && !facts.vhostNet && nic.vhost === 'on') noVhost.push(id);
      if (at.kind === 'tap') {
        add('-netdev', qemuOpts('tap', { id, ifname: at.ifname, vhost: vhost ? 'on' : 'off', script: 'no', downscript: 'no', ...nicQueueOpts(nic).netdev }));
      } else {
        if ((nic.queues ?? 1) > 1) throw new KvmError('UNSUPPORTED', `nics[${i}]: multiqueue on a macvtap is not supported by kvmctl (it opens one /dev/tapN queue)`, { exit: 2, hint: 'use a bridge network for queues > 1, or remove queues' });
        add('-netdev', qemuOpts('tap', { id, fd: at.fd, vhost: vhost ? 'on' : 'off' }));
        mac = at.mac; // macvtap: the guest MAC must be the macvtap interface's
      }
    }
    add('-device', qemuOpts(dev(NIC_DEVICE[nic.model]), { netdev: id, mac, id: `${id}-dev`, ...(at.kind === 'user' ? {} : nicQueueOpts(nic).device), bootindex: uefiBoot?.nics[i] }));
  });
  if (noVhost.length) {
    warnings.push(`/dev/vhost-net is missing: vhost turned off for ${noVhost.join(', ')} (virtio-net runs in QEMU's own thread, slower)`);
  }

  // Control sockets: QMP always (kvmctl's own), the seed-style monitor when asked.
  add('-qmp', `unix:${qemuEscape(ctx.runtime.qmp)},server=on,wait=off`);
  if (ctx.runtime.qmpEvents) add('-qmp', `unix:${qemuEscape(ctx.runtime.qmpEvents)},server=on,wait=off`);
  if (vm.monitor !== false) {
    if (vm.monitor === true) add('-monitor', `unix:${qemuEscape(path.join(ctx.runtime.dir, 'monitor.sock'))},server=on,wait=off`);
    else if ('socket' in vm.monitor) add('-monitor', `unix:${qemuEscape(vm.monitor.socket)},server=on,wait=off`);
    else add('-monitor', `telnet:${vm.monitor.telnet},server=on,wait=off`);
  }
  if (vm.serial === 'socket') {
    add('-chardev', qemuOpts('socket', { id: 'serial0', path: ctx.runtime.serial, server: 'on', wait: 'off', logfile: ctx.runtime.serialLog }));
    add('-serial', 'chardev:serial0');
  }
  if (effectiveAgent(vm)) add(...agentArgs(ctx.runtime.qga ?? path.join(ctx.runtime.dir, 'qga.sock'), layout.mmio));
  const tpm = effectiveTpm(vm);
  if (tpm) add(...tpmArgs(ctx.runtime.tpm ?? path.join(ctx.runtime.dir, 'swtpm.sock'), tpm.version));

  // Display.
  if (vm.display.type === 'none') add('-display', 'none');
  else {
    add('-device', 'VGA');
    if (vm.display.type === 'curses') add('-display', 'curses');
    else {
      add('-display', 'none');
      const listen = vm.display.vnc?.listen;
      add('-vnc', listen ? listen : `unix:${qemuEscape(vm.display.vnc?.socket ?? ctx.runtime.vnc)}`);
    }
  }

  // Shared folders.
  // virtiofs: guest RAM must be shared with virtiofsd (a memfd backend on one NUMA node).
  // (memoryArgs above put it on memory-backend-memfd,share=on.)
  vm.shares.forEach((s, i) => {
    const id = s.id ?? `fs${i}`;
    if (s.driver === 'virtiofs') {
      const sock = ctx.virtiofs?.[id];
      if (!sock) throw new KvmError('UNSUPPORTED', `shares[${i}]: virtiofs needs a virtiofsd, and none was found`, { exit: 2, hint: "Debian's QEMU ships /usr/lib/qemu/virtiofsd (qemu-system-common); or use driver: 9p" });
      add('-chardev', qemuOpts('socket', { id: `${id}-vfs`, path: sock }), '-device', qemuOpts(dev('vhost-user-fs-pci'), { chardev: `${id}-vfs`, tag: s.tag, 'queue-size': 1024 }));
      return;
    }
    add('-fsdev', qemuOpts('local', { id, path: s.path, security_model: s.securityModel, readonly: s.readOnly }));
    add('-device', qemuOpts(dev('virtio-9p-pci'), { fsdev: id, mount_tag: s.tag }));
  });

  add(...passthroughArgs(vm)); // vfio-pci, usb-host
  add(...balloonArgs(vm, dev)); // memory.balloon
  if (!layout.mmio) add(...hotplugPortArgs(effectiveHotplugSlots(vm, machineType))); // spare ports, last (src/vm/device-hotplug.ts)

  // Process: pidfile, privilege drop, sandbox.
  add('-pidfile', ctx.runtime.pidfile);
  if (vm.runAs) {
    if (facts.runAs === 'run-with') add('-run-with', qemuOpts(undefined, { user: vm.runAs.group ? `${vm.runAs.user}:${vm.runAs.group}` : vm.runAs.user }));
    else if (facts.runAs === 'runas') add('-runas', vm.runAs.user);
    else throw new KvmError('RUNAS_UNSUPPORTED', `${facts.qemuBinary} supports neither -runas nor -run-with`, { hint: 'remove runAs or install a QEMU that can drop privileges' });
  }
  if (facts.sandbox) {
    // set*id must stay allowed when QEMU drops privileges itself (-runas runs after the filter is installed).
    add('-sandbox', qemuOpts('on', { obsolete: 'deny', elevateprivileges: vm.runAs ? undefined : 'deny', spawn: 'deny', resourcecontrol: 'deny' }));
  }
  add('-msg', 'timestamp=on');
  if (ctx.incoming) add('-incoming', ctx.incoming);
  a.push(...vm.extraArgs);
  return { argv: a, warnings, accel, cpuModel };
}

/* ------------------------------------------------------------------ fast-boot profile ---- */

/** How the machine is laid out: the definition's machine type, or the fast profile's choice. */
export type MachineLayout = {
  type: string;
  /** virtio devices on virtio-mmio (`-device virtio-*-device`) instead of PCI. */
  mmio: boolean;
  machineOpts: Record<string, string>;
  /** Minimal firmware for a q35 direct-kernel boot (qboot, shipped in Debian's qemu-system-data). */
  bios?: string;
  noReboot: boolean;
  /** Added to the kernel command line (microvm under TCG: the TSC rate, see below). */
  append?: string;
};

/** What keeps a definition off the microvm machine (no PCI, no ISA IDE, no VGA). Empty = fits. */
export function microvmBlockers(vm: VmSpec, hasKernel: boolean): string[] {
  const why: string[] = [];
  if (!hasKernel) why.push('it boots through firmware (microvm needs direct kernel boot: kernel.path or kernel.builtin)');
  else if (effectiveFirmware(vm) !== 'bios') why.push(`it boots through UEFI (firmware ${effectiveFirmware(vm)}; microvm has no pflash)`);
  if (effectiveTpm(vm)) why.push('it has a TPM (microvm has no TPM interface)');
  vm.disks.forEach((d, i) => {
    if (d.interface !== 'virtio' && d.interface !== 'scsi') why.push(`disks[${i}] uses interface ${d.interface} (microvm has only virtio-mmio: use virtio or scsi)`);
  });
  if (vm.cdroms.length) why.push('it has CD-ROMs (IDE; microvm has no IDE controller)');
  vm.nics.forEach((n, i) => {
    if (n.model !== 'virtio') why.push(`nics[${i}] is a ${n.model} (PCI) NIC (microvm needs model virtio)`);
  });
  if (vm.display.type !== 'none') why.push(`display ${vm.display.type} needs a VGA card (PCI)`);
  if (vm.pci?.length) why.push('it passes PCI devices through (vfio-pci needs a PCI bus)');
  if (vm.usb?.length || vm.usbController) why.push('it passes USB devices through (microvm has no USB controller)');
  if (vm.cpu.maxCount !== undefined && vm.cpu.maxCount > vm.cpu.count) why.push('it has vCPU hotplug slots (cpu.maxCount; microvm has no ACPI CPU hotplug)');
  if ((vm.machine.hotplugSlots ?? 0) > 0) why.push(`it asks for ${vm.machine.hotplugSlots} hotplug slots (machine.hotplugSlots; microvm has no PCI)`);
  return why;
}

export const FAST_GIVES_UP =
  'no PCI (no PCI passthrough or hotplug of PCI devices), no VGA/display, no CD-ROMs or IDE/SATA/NVMe disks, ' +
  'no firmware boot (direct kernel boot only), and guest reboot, a panic with panic=-1 or `kvmctl reset` end the VM (-no-reboot)';

/**
 * Kernel arguments the fast profile adds to a direct-kernel boot (measured, BENCHMARKS.md #19).
 * `cryptomgr.notests`: skip the boot-time self-tests of the kernel's built-in crypto algorithms
 * (crypto_algapi_init ran them for ~165 ms of a ~1.8 s TCG boot of the Debian kernel). They
 * check the kernel's own implementations, not anything the guest configures; a kernel booted
 * with fips=1 runs them anyway (the kernel ignores notests in FIPS mode). Not added when the
 * definition's append already has it.
 */
export const FAST_KERNEL_ARGS = 'cryptomgr.notests';

/**
 * microvm has no HPET and no ACPI PM timer. Under KVM the guest reads its TSC rate from kvm-clock;
 * under TCG it calibrates the TSC against the PIT, which fails on a loaded host ("Fast TSC
 * calibration failed ... No reference (HPET/PMTIMER) available") and the boot then hangs. So under
 * TCG microvm is used only when the host TSC rate is known, and the kernel is told it
 * (tsc_early_khz=: a TCG guest's TSC is the host's).
 */
export function machineLayout(vm: VmSpec, facts: HostFacts, ctx: ArgvContext, warnings: string[], accel: 'kvm' | 'tcg' = 'kvm'): MachineLayout {
  const userAppend = ctx.kernel?.append ?? '';
  const tscArg = accel === 'tcg' && facts.tscKhz && ctx.kernel && !/\btsc_early_khz=/.test(userAppend) ? `tsc_early_khz=${facts.tscKhz}` : undefined;
  const isMicro = vm.machine.type === 'microvm';
  const std: MachineLayout = { type: vm.machine.type, mmio: isMicro, machineOpts: {}, noReboot: false, append: isMicro ? tscArg : undefined };
  if (vm.machine.type === 'microvm') {
    // Asked for by name: devices must fit, there is nothing to fall back to.
    const why = microvmBlockers(vm, !!ctx.kernel);
    if (why.length) throw new KvmError('MICROVM_UNFIT', `${vm.name}: machine type microvm cannot be used: ${why.join('; ')}`, { exit: 2, hint: 'use machine: q35 with profile: fast, or change the devices listed' });
  }
  if (vm.profile !== 'fast') return std;
  const fastAppend = [tscArg, ctx.kernel && !/\bcryptomgr\.notests\b/.test(userAppend) ? FAST_KERNEL_ARGS : undefined].filter(Boolean).join(' ') || undefined;
  const canMicrovm = facts.machines.length === 0 || facts.machines.includes('microvm');
  const why = microvmBlockers(vm, !!ctx.kernel);
  if (!(accel === 'kvm' || facts.tscKhz || /\btsc_early_khz=/.test(userAppend)))
    why.push('under TCG microvm needs the host TSC rate (it has no HPET/PM timer to calibrate against) and it is unknown here');
  if (vm.machine.type === 'microvm' || (vm.machine.type === 'q35' && canMicrovm && why.length === 0)) {
    warnings.push(`profile fast: microvm machine with virtio-mmio devices; gives up ${FAST_GIVES_UP}`);
    return { type: 'microvm', mmio: true, machineOpts: { 'x-option-roms': 'off' }, noReboot: true, append: fastAppend };
  }
  const reason = vm.machine.type !== 'q35' ? `machine ${vm.machine.type} was asked for` : !canMicrovm ? `${facts.qemuBinary} has no microvm machine` : why.join('; ');
  const qboot = ctx.kernel && vm.display.type === 'none' && effectiveFirmware(vm) === 'bios' && (vm.machine.type === 'q35' || vm.machine.type === 'pc');
  warnings.push(
    `profile fast: staying on ${vm.machine.type} (${reason})${qboot ? ' with qboot firmware' : ''} and -no-reboot: ` +
      `guest reboot, a panic with panic=-1 or \`kvmctl reset\` end the VM${qboot ? '; qboot boots only the direct kernel' : ''}`,
  );
  return { ...std, bios: qboot ? 'qboot.rom' : undefined, noReboot: true, append: [std.append, ctx.kernel && !/\bcryptomgr\.notests\b/.test(userAppend) ? FAST_KERNEL_ARGS : undefined].filter(Boolean).join(' ') || undefined };
}
