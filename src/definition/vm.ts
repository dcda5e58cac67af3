/**
 * The VM definition: one YAML file per VM. Covers every option of the seed's launch script.
 * Unknown keys are errors (strict objects); cross-field checks are in `vmCrossChecks`.
 */
import { z } from 'zod';
import { backupSpecSchema } from '../backup/schedule.js';
import { IFNAME_RE, IFNAME_RULE, MAC_RE, NAME_RE, NAME_RULE, VOLUME_RE, isMulticastMac } from './names.js';
import { parseSize } from './units.js';
import { seedSchema } from '../disk/cloud-init-schema.js';
import { cpuPinSchema, diskTuningShape, memoryTuningShape, nicTuningShape, pciSchema, tuningIssues, usbSchema, type BalloonSpec, type MemoryTuning } from './tuning.js';

export const name = z.string({ error: 'must be a name (a string)' }).regex(NAME_RE, { error: NAME_RULE });

/** A size with units ("4G", "512M") → bytes. */
export const size = (what: string, min = 1) =>
  z.union([z.string(), z.number()], { error: `${what} must be a size such as 512M or 4G` }).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a size (use a number with K, M, G or T, e.g. 4G)` });
      return z.NEVER;
    }
    if (n < min) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is too small for ${what} (at least ${min} bytes)` });
      return z.NEVER;
    }
    return n;
  });

const filePath = (what: string) => z.string({ error: `${what} must be a path` }).min(1, { error: `${what} must not be empty` });
/** A unix socket path: sun_path holds 107 bytes plus the NUL, so a longer path can never work. */
const socketPath = filePath('socket').refine((p) => Buffer.byteLength(p) <= 107, { error: (i) => `is ${Buffer.byteLength(String(i.input))} bytes, over the 107-byte limit of a unix socket path` });

/** `string` shorthand → object, for friendlier YAML (`machine: q35`, `display: vnc`). */
const shorthand = <T extends z.ZodType>(key: string, schema: T) =>
  z.preprocess((v) => (typeof v === 'string' || typeof v === 'number' ? { [key]: v } : v), schema);

export const ACCELS = ['kvm', 'tcg'] as const;

export const machineSchema = shorthand(
  'type',
  z.strictObject({
    type: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, { error: 'must be a QEMU machine type such as q35, pc or microvm' }).default('q35'),
    /** Accelerators in order of preference; the first one the host can use wins. */
    accel: z.array(z.enum(ACCELS)).min(1).default(['kvm', 'tcg']),
    /** KSM: false adds mem-merge=off so this VM's memory is never merged. */
    memMerge: z.boolean().default(true),
    /**
     * Spare PCIe root ports for hotplugged disks and NICs (q35 only: its root bus takes no
     * hotplug; machine pc hotplugs on its own PCI bus, microvm not at all). Default: 4 on q35,
     * 0 with profile fast (src/definition/vm-effective.ts). Each is one device and one PCI slot.
     */
    hotplugSlots: z.number().int().min(0).max(16).optional(),
  }),
);

export const cpuSchema = shorthand(
  'count',
  z.strictObject({
    /** `host` passes the host CPU through (needs KVM); under TCG it falls back to `max`. */
    model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.,=+-]*$/, { error: 'must be a QEMU CPU model such as host, max or Skylake-Server' }).default('host'),
    count: z.number().int().min(1).max(1024).default(1),
    /** vCPU slots for hotplug (-smp count,maxcpus=maxCount; `kvmctl cpu set VM N`); the topology describes maxCount. */
    maxCount: z.number().int().min(1).max(1024).optional(),
    /** QEMU enforce: refuse to start when the accelerator cannot give every feature of the model (instead of dropping them). */
    enforce: z.boolean().optional(),
    sockets: z.number().int().min(1).optional(),
    cores: z.number().int().min(1).optional(),
    threads: z.number().int().min(1).optional(),
    /** Host CPUs for the vCPU, emulator and I/O threads, applied after start (src/vm/pin.ts). */
    pin: cpuPinSchema.optional(),
  }),
);

/** `memory: 4G`, or `memory: {size: 4G, hugepages: 2M, numa: […], lock: true}` (src/definition/tuning.ts). */
export const memorySchema = z
  .union([size('memory', 16 * 1024 * 1024), z.strictObject({ size: size('memory', 16 * 1024 * 1024), ...memoryTuningShape })])
  .transform((m) => (typeof m === 'number' ? { size: m, lock: false } : m));

export const DISK_FORMATS = ['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'qed'] as const;
export const DISK_INTERFACES = ['virtio', 'scsi', 'ide', 'sata', 'nvme'] as const;
export const CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;
export const PREALLOC = ['off', 'metadata', 'falloc', 'full'] as const;

export const volumeName = z.string({ error: 'must be a volume name (a string)' }).regex(VOLUME_RE, { error: 'must start with a letter or digit and hold only letters, digits, "_", "." and "-" (at most 100)' });

/** A disk serial the guest sees: 1–20 characters (virtio-blk's and IDE's limit), none that QEMU's option syntax or a by-id name would mangle. */
export const DISK_SERIAL_RE = /^[A-Za-z0-9._+:-]{1,20}$/;

export const diskSchema = z.strictObject({
  id: name.optional(),
  /** Image path; relative paths are resolved against the images dir. Absent for a volume disk. */
  file: filePath('file').optional(),
  /** A volume of a storage definition (`kind: storage`, type rbd; docs/storage-ceph.md): `storage: ceph1, volume: vm-web-disk0`. */
  storage: name.optional(),
  volume: volumeName.optional(),
  format: z.enum(DISK_FORMATS).optional(),
  interface: z.enum(DISK_INTERFACES).default('virtio'),
  cache: z.enum(CACHE_MODES).optional(),
  aio: z.enum(['threads', 'native', 'io_uring']).optional(),
  discard: z.enum(['ignore', 'unmap']).optional(),
  readOnly: z.boolean().default(false),
  index: z.number().int().min(0).max(63).optional(),
  /** The serial number the guest sees (/dev/disk/by-id/…-SERIAL); up to 20 characters, the virtio-blk and IDE limit. */
  serial: z.string().regex(DISK_SERIAL_RE, { error: 'a disk serial is 1–20 letters, digits, ".", "_", "+", ":" or "-"' }).optional(),
  /** Create the image on first start when it does not exist (never overwrites). */
  create: z.strictObject({ size: size('size', 512), prealloc: z.enum(PREALLOC).default('off') }).optional(),
  ...diskTuningShape,
}).superRefine((d, ctx) => {
  for (const i of diskSourceIssues(d)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
});

/** A disk is a file, or a volume of a storage: exactly one of them, and nothing of the other. */
export function diskSourceIssues(d: { file?: unknown; storage?: unknown; volume?: unknown; format?: unknown; create?: unknown }): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  const vol = d.storage !== undefined || d.volume !== undefined;
  if (d.file === undefined && !vol) out.push({ path: ['file'], message: 'is required (a path), unless the disk names a volume with storage: and volume:' });
  if (d.file !== undefined && vol) out.push({ path: [d.storage !== undefined ? 'storage' : 'volume'], message: 'a disk is either a file or a volume of a storage, not both: drop file: or storage:/volume:' });
  if (d.file === undefined && vol) {
    if (d.storage === undefined) out.push({ path: ['storage'], message: 'is required with volume: (the name of a kind: storage definition)' });
    if (d.volume === undefined) out.push({ path: ['volume'], message: 'is required with storage: (the volume (RBD image) name)' });
    if (d.create !== undefined) out.push({ path: ['create'], message: 'volumes are made with kvmctl volume create, not on first start' });
    if (d.format !== undefined && d.format !== 'raw') out.push({ path: ['format'], message: 'a volume is a raw RBD image (format: raw or none)' });
  }
  return out;
}


export const cdromSchema = shorthand('file', z.strictObject({ id: name.optional(), file: filePath('file') }));

export const BOOT_DEVICES = ['disk', 'cdrom', 'network'] as const;
export const bootSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { order: [v] } : Array.isArray(v) ? { order: v } : v),
  z.strictObject({
    order: z.array(z.enum(BOOT_DEVICES)).min(1).default(['disk']),
    /** Boot from this device on the next start only (an install), then from `order`. */
    once: z.enum(BOOT_DEVICES).optional(),
    menu: z.boolean().optional(),
  }),
);

export const kernelSchema = z
  .strictObject({
    /** Direct kernel boot: a kernel image path, or `builtin: test-guest` for kvmctl's tiny guest. */
    path: filePath('path').optional(),
    builtin: z.enum(['test-guest']).optional(),
    initrd: filePath('initrd').optional(),
    append: z.string().optional(),
  })
  .superRefine((k, ctx) => {
    if (!k.path === !k.builtin) ctx.addIssue({ code: 'custom', message: 'give exactly one of path or builtin', path: ['path'] });
  });

export const NIC_MODELS = ['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3'] as const;
export const portForwardSchema = z.strictObject({
  proto: z.enum(['tcp', 'udp']).default('tcp'),
  hostAddr: z.string().optional(),
  hostPort: z.number().int().min(1).max(65535),
  guestPort: z.number().int().min(1).max(65535),
});

export const nicSchema = z
  .strictObject({
    id: name.optional(),
    /** Attach to a kvmctl network (bridge, host-only, macvtap or user) by name. */
    network: name.optional(),
    /** Attach to an existing tap interface made by the host's boot config (the seed's tap0). */
    tap: z.string().regex(IFNAME_RE, { error: IFNAME_RULE }).optional(),
    /** QEMU user-mode networking (no host setup), with optional port forwards. */
    user: z.union([z.boolean(), z.strictObject({ forwards: z.array(portForwardSchema).default([]) })]).optional(),
    model: z.enum(NIC_MODELS).default('virtio'),
    mac: z.string().regex(MAC_RE, { error: 'is not a MAC address (six hex pairs such as 52:54:00:12:34:56)' }).optional(),
    vhost: z.enum(['auto', 'on', 'off']).default('auto'),
    /** Fixed IPv4 address (a static DHCP lease) on a nat network; checked against the network in cross.ts. */
    ip: z.string().regex(/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/, { error: 'must be an IPv4 address such as 192.168.100.10' }).optional(),
    ...nicTuningShape,
  })
  .superRefine((n, ctx) => nicChecks(n, ctx));

function nicChecks(n: { network?: unknown; tap?: unknown; user?: unknown; mac?: unknown }, ctx: z.RefinementCtx, at: (string | number)[] = []): void {
    const kinds = [n.network !== undefined, n.tap !== undefined, n.user !== undefined && n.user !== false].filter(Boolean).length;
    if (kinds !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of network, tap or user', path: [...at] });
    if (typeof n.mac === 'string' && MAC_RE.test(n.mac) && isMulticastMac(n.mac))
      ctx.addIssue({ code: 'custom', message: `"${n.mac}" is a multicast MAC (first octet is odd); use a unicast one such as 52:54:00:…`, path: [...at, 'mac'] });
}

const hostPort = z.string().regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, { error: 'must be HOST:PORT such as 127.0.0.1:10100' });

export const monitorSchema = z.union([
  z.boolean(),
  z.strictObject({ socket: socketPath }),
  z.strictObject({ telnet: hostPort }),
], { error: 'must be true, false, {socket: PATH} or {telnet: HOST:PORT}' });

export const displaySchema = shorthand(
  'type',
  z.strictObject({
    type: z.enum(['none', 'curses', 'vnc']).default('none'),
    /** VNC: a unix socket path (default: the VM's runtime dir) or HOST:DISPLAY. */
    vnc: z.strictObject({ socket: socketPath.optional(), listen: z.string().regex(/^[A-Za-z0-9.:[\]-]*:\d+$/).optional() }).optional(),
  }),
);

export const SECURITY_MODELS = ['mapped-xattr', 'mapped-file', 'passthrough', 'none'] as const;
export const shareSchema = z.strictObject({
  id: name.optional(),
  path: filePath('path'),
  tag: z.string().regex(/^[A-Za-z0-9_.-]{1,31}$/, { error: 'must be a mount tag of 1–31 letters, digits, "_", "." or "-"' }),
  securityModel: z.enum(SECURITY_MODELS).default('mapped-xattr'),
  readOnly: z.boolean().default(false),
  driver: z.enum(['9p', 'virtiofs']).default('9p'),
  /** Allow a source outside the storage roots, even / or /etc (the guest can then read or change the host there). */
  allowSystemPath: z.boolean().default(false),
});

export const runAsSchema = shorthand(
  'user',
  z.strictObject({ user: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/i, { error: 'must be a user name' }), group: z.string().optional() }),
);

export const autostartSchema = z.preprocess(
  (v) => (typeof v === 'boolean' ? { enabled: v } : v),
  z.strictObject({
    enabled: z.boolean().default(true),
    /** Lower starts first; VMs with the same order start in parallel. */
    order: z.number().int().default(0),
    /** Seconds to wait after this VM started before the next order group. */
    delay: z.number().min(0).default(0),
  }),
);

export const FIRMWARE_TYPES = ['bios', 'uefi', 'uefi-secure'] as const;
/** Firmware: SeaBIOS, OVMF (UEFI), or OVMF with Secure Boot and the Microsoft keys enrolled (src/qemu/firmware.ts). */
export const firmwareSchema = shorthand(
  'type',
  z.strictObject({
    type: z.enum(FIRMWARE_TYPES, { error: 'must be bios, uefi or uefi-secure' }),
    /** A code image instead of the one the host's firmware descriptors name (/usr/share/qemu/firmware). */
    code: filePath('code').optional(),
    /** The template the VM's own vars are copied from at first start (instead of the descriptor's). */
    varsTemplate: filePath('varsTemplate').optional(),
    /** Keep the VM's vars (NVRAM) in this file instead of <data>/vms/NAME/nvram.fd (an imported VM's NVRAM). */
    vars: filePath('vars').optional(),
  }),
);

/** A TPM emulated by swtpm (src/vm/swtpm.ts): `tpm: true` is a TPM 2.0; `false` turns the desktop profile's off. */
export const tpmSchema = z.preprocess(
  (v) => (v === true ? {} : v),
  z.union(
    [
      z.literal(false),
      z.strictObject({
        version: z.preprocess((v) => (v === 2 ? '2.0' : typeof v === 'number' ? String(v) : v), z.enum(['2.0', '1.2'], { error: 'must be "2.0" or "1.2"' })).default('2.0'),
        /**
         * Keep the TPM state in this one file (swtpm's file backend: a Proxmox tpmstate volume, file
         * or block device, used as it is) instead of <data>/vms/NAME/tpm; made by swtpm_setup when absent.
         */
        state: filePath('state').optional(),
      }),
    ],
    { error: 'must be true, false or {version: "2.0" | "1.2"}' },
  ),
);

export const PROFILES = ['standard', 'fast', 'server', 'desktop'] as const;

/** A host name or an IP address for a chrony server/pool line: nothing else can be smuggled into it. */
export const NTP_HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$|^[0-9a-fA-F:]+$/;
const ntpHost = z.string().regex(NTP_HOST_RE, {
  error: 'must be a host name or an IP address, such as 192.168.100.1 or 2.debian.pool.ntp.org',
});

export const vmSchema = z
  .strictObject({
    kind: z.literal('vm').optional(),
    name,
    description: z.string().optional(),
    machine: machineSchema.prefault({}),
    /**
     * `fast`: boot a direct-kernel guest on the microvm machine (virtio-mmio), -no-reboot; see docs/fast-boot.md.
     * `server`: UEFI with Secure Boot and the guest agent; `desktop`: the same plus a TPM 2.0 (docs/real-guests.md).
     */
    profile: z.enum(PROFILES).default('standard'),
    /** Default: uefi-secure for the server and desktop profiles, bios otherwise (src/definition/vm-effective.ts). */
    firmware: firmwareSchema.optional(),
    tpm: tpmSchema.optional(),
    /** The QEMU guest agent channel (org.qemu.guest_agent.0). Default: on for the server and desktop profiles. */
    agent: z.boolean().optional(),
    cpu: cpuSchema.prefault({}),
    memory: memorySchema.prefault('512M'),
    /** Entropy for the guest: true = /dev/urandom, or {source: PATH}. */
    rng: z.union([z.boolean(), z.strictObject({ source: filePath('source') })]).default(true),
    disks: z.array(diskSchema).default([]),
    cdroms: z.array(cdromSchema).default([]),
    boot: bootSchema.optional(),
    kernel: kernelSchema.optional(),
    nics: z.array(nicSchema).default([]),
    monitor: monitorSchema.default(false),
    qmp: z.strictObject({ socket: socketPath }).optional(),
    serial: z.enum(['socket', 'none']).default('socket'),
    display: displaySchema.prefault({}),
    shares: z.array(shareSchema).default([]),
    /** Host PCI devices passed through with vfio-pci (the host must bind their IOMMU group to vfio-pci). */
    pci: z.array(pciSchema).default([]),
    /** Host USB devices passed through with usb-host, by id or by bus and port. */
    usb: z.array(usbSchema).default([]),
    /** An xHCI controller even without usb: entries, so `kvmctl usb attach` can plug devices into the running VM. */
    usbController: z.boolean().optional(),
    /** cloud-init NoCloud seed (user-data, meta-data, network-config): built at each start and attached as a read-only virtio disk labelled cidata. */
    cloudInit: seedSchema.optional(),
    /** NTP sources for `kvmctl guest time-sync` when the guest has no KVM PTP clock (default: the host's address on the VM's network). */
    timeSync: z
      .strictObject({
        servers: z.array(ntpHost).default([]),
        pools: z.array(ntpHost).default([]),
      })
      .optional(),
    /** Escape hatch: appended verbatim to the QEMU command line. */
    extraArgs: z.array(z.string()).default([]),
    autostart: autostartSchema.prefault(false),
    /** Scheduled backups run by `kvmctl serve` (src/backup/schedule.ts, docs/backup.md). */
    backup: backupSpecSchema.optional(),
    runAs: runAsSchema.optional(),
    /** Seconds `stop` waits for an ACPI power-down before it forces the VM off. */
    stopTimeout: z.number().min(0).max(3600).default(60),
    /** Applied by `kvmctl serve`: restart after a crash (on-failure) or after any exit not done by kvmctl (always). */
    restart: z.enum(['no', 'on-failure', 'always']).default('no'),
    /** Exponential back-off: backoffSec, 2×, 4×… (capped at maxBackoffSec), at most maxRetries restarts; the count resets after resetAfterSec of running. */
    restartPolicy: z
      .strictObject({
        maxRetries: z.number().int().min(0).max(1000).default(5),
        backoffSec: z.number().min(0).max(3600).default(1),
        maxBackoffSec: z.number().min(0).max(86400).default(60),
        resetAfterSec: z.number().min(0).default(300),
      })
      .prefault({}),
    /** Cluster mode: restart on another host after this host's lease expired (needs disks on shared storage); see docs/cluster.md. */
    ha: z.boolean().default(false),
    /** Cluster mode: place only on these hosts. */
    hosts: z.array(name).optional(),
    /** Cluster mode: never on the same host as another VM of this group. */
    antiAffinity: name.optional(),
  })
  .superRefine((vm, ctx) => {
    vmCrossChecks(vm, ctx);
    for (const i of tuningIssues(vm)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
  })
  // `memory` stays a byte count for every consumer; its tuning keys move to `memoryTuning`.
  .transform(({ memory, ...rest }) => {
    const { size: bytes, balloon, ...t } = memory;
    const tuning: MemoryTuning | undefined = t.hugepages || t.numa || t.lock || t.prealloc !== undefined || t.share !== undefined ? t : undefined;
    // No key at all when there is no tuning: cached specs must round-trip through JSON unchanged.
    const out: typeof rest & { memory: number; memoryTuning?: MemoryTuning; balloon?: BalloonSpec } = { ...rest, memory: bytes };
    if (tuning) out.memoryTuning = tuning;
    if (balloon) out.balloon = balloon; // a virtio-balloon device (argv-tuning.ts), `kvmctl memory set`
    return out;
  });

export type VmInput = z.input<typeof vmSchema>;
export type VmSpec = z.output<typeof vmSchema>;
export type NicSpec = VmSpec['nics'][number];
export type DiskSpec = VmSpec['disks'][number];
export type ShareSpec = VmSpec['shares'][number];

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * Checks across fields. Tolerant of raw (unvalidated) input, so that a definition with a bad
 * field still gets its cross-field problems reported in the same run.
 */
export function vmCrossIssues(raw: unknown): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  if (!raw || typeof raw !== 'object') return out;
  const r = raw as any;
  const arr = (v: unknown): any[] => (Array.isArray(v) ? v.map((x) => (x && typeof x === 'object' ? x : {})) : []);
  const boot = typeof r.boot === 'string' ? { order: [r.boot] } : Array.isArray(r.boot) ? { order: r.boot } : r.boot;
  vmCrossChecks(
    {
      cpu: typeof r.cpu === 'object' && r.cpu ? { count: r.cpu.count ?? 1, ...r.cpu } : { count: 1 },
      nics: arr(r.nics),
      disks: arr(r.disks).map((d) => ({ interface: 'virtio', ...d })),
      shares: arr(r.shares),
      boot: boot && typeof boot === 'object' ? { order: Array.isArray(boot.order) ? boot.order : ['disk'], once: boot.once } : undefined,
      cdroms: arr(r.cdroms),
      kernel: r.kernel,
      machine: typeof r.machine === 'string' ? { type: r.machine } : r.machine && typeof r.machine === 'object' ? { type: r.machine.type ?? 'q35', hotplugSlots: r.machine.hotplugSlots } : { type: 'q35' },
      profile: typeof r.profile === 'string' ? r.profile : 'standard',
      firmware: typeof r.firmware === 'string' ? { type: r.firmware } : r.firmware && typeof r.firmware === 'object' ? r.firmware : undefined,
      tpm: r.tpm === false ? undefined : r.tpm,
    },
    { raw: true, addIssue: (i: any) => out.push({ path: i.path ?? [], message: i.message }) } as any,
  );
  out.push(...tuningIssues(r));
  return out;
}

function vmCrossChecks(vm: {
  cpu: { count: number; maxCount?: number; sockets?: number; cores?: number; threads?: number };
  nics: { id?: string; mac?: string }[];
  disks: { id?: string; interface: string; index?: number; file?: string; storage?: string; volume?: string; readOnly?: boolean }[];
  shares: { id?: string; tag: string }[];
  boot?: { order: string[]; once?: string };
  cdroms: unknown[];
  kernel?: unknown;
  machine: { type: string; hotplugSlots?: unknown };
  profile: string;
  firmware?: { type?: unknown };
  tpm?: unknown;
}, ctx: z.RefinementCtx): void {
  const { sockets, cores, threads, count, maxCount } = vm.cpu;
  if (typeof maxCount === 'number' && maxCount < count) ctx.addIssue({ code: 'custom', path: ['cpu', 'maxCount'], message: `maxCount ${maxCount} is less than count ${count}` });
  if (sockets || cores || threads) {
    const prod = (sockets ?? 1) * (cores ?? 1) * (threads ?? 1);
    if (typeof maxCount === 'number') {
      if (prod !== maxCount) ctx.addIssue({ code: 'custom', path: ['cpu', 'maxCount'], message: `sockets × cores × threads = ${prod} but maxCount is ${maxCount} (the topology describes every vCPU slot)` });
    } else if (prod !== count) ctx.addIssue({ code: 'custom', path: ['cpu', 'count'], message: `sockets × cores × threads = ${prod} but count is ${count}` });
  }
  vm.nics.forEach((n, i) => {
    // In a validated spec the NIC schema already ran these checks; on raw input run them here.
    if ((ctx as any).raw) nicChecks(n as any, ctx, ['nics', i]);
  });
  const seen = (items: (string | undefined)[], field: string, what: string, key: string) => {
    const first = new Map<string, number>();
    items.forEach((v, i) => {
      if (typeof v !== 'string') return;
      const k = v.toLowerCase();
      if (first.has(k)) ctx.addIssue({ code: 'custom', path: [field, i, key], message: `duplicate ${what} "${v}" (also ${field}[${first.get(k)}])` });
      else first.set(k, i);
    });
  };
  seen(vm.nics.map((n, i) => n.id ?? `net${i}`), 'nics', 'NIC id', 'id');
  seen(vm.nics.map((n) => n.mac), 'nics', 'MAC', 'mac');
  seen(vm.disks.map((d, i) => d.id ?? `disk${i}`), 'disks', 'disk id', 'id');
  seen(vm.disks.map((d) => d.file), 'disks', 'disk file', 'file');
  seen(vm.disks.map((d) => (d.storage && d.volume ? `${d.storage}/${d.volume}` : undefined)), 'disks', 'volume', 'volume');
  seen(vm.disks.map((d) => (d.index === undefined ? undefined : `${d.interface}:${d.index}`)), 'disks', 'interface index', 'index');
  seen(vm.shares.map((s) => s.tag), 'shares', 'mount tag', 'tag');
  seen(vm.shares.map((s, i) => s.id ?? `fs${i}`), 'shares', 'share id', 'id');
  firmwareChecks(vm, ctx);
  const slots = vm.machine.hotplugSlots;
  if (typeof slots === 'number' && slots > 0 && !isQ35(vm.machine.type))
    ctx.addIssue({
      code: 'custom',
      path: ['machine', 'hotplugSlots'],
      message: vm.machine.type === 'microvm' ? 'machine microvm has no PCI bus to hotplug into; use machine: q35' : `is for machine q35 (its root bus takes no hotplug); machine ${vm.machine.type} hotplugs on its own PCI bus, so leave it out`,
    });
  const wants = [...(vm.boot?.order ?? []), ...(vm.boot?.once ? [vm.boot.once] : [])];
  // boot.once is used by `kvmctl install --iso` only (src/vm/start.ts), which puts the ISO in the
  // first CD-ROM drive (adding cd0 when none is defined): once: cdrom has its drive then.
  if ((vm.boot?.order ?? []).includes('cdrom') && vm.cdroms.length === 0)
    ctx.addIssue({ code: 'custom', path: ['boot'], message: 'boots from cdrom but no cdroms are defined' });
  if (wants.includes('network') && vm.nics.length === 0)
    ctx.addIssue({ code: 'custom', path: ['boot'], message: 'boots from the network but no nics are defined' });
  if (vm.disks.length === 0 && vm.cdroms.length === 0 && !vm.kernel && wants.length > 0 && wants.includes('disk') && wants.length === 1)
    ctx.addIssue({ code: 'custom', path: ['boot'], message: 'boots from disk but no disks are defined' });
}

/** Machine types with SMM and the pflash the Secure Boot firmware needs: q35 and its versions. */
export const isQ35 = (type: string) => type === 'q35' || /^pc-q35-/.test(type);

function firmwareChecks(vm: { machine: { type: string }; profile: string; firmware?: { type?: unknown }; tpm?: unknown }, ctx: z.RefinementCtx): void {
  const asked = typeof vm.firmware?.type === 'string' ? vm.firmware.type : undefined;
  const fw = asked ?? (vm.profile === 'server' || vm.profile === 'desktop' ? 'uefi-secure' : 'bios');
  const where = asked ? ['firmware'] : ['profile'];
  const by = asked ? `firmware ${fw}` : `profile ${vm.profile} (firmware ${fw})`;
  const m = vm.machine.type;
  if (fw === 'uefi-secure' && !isQ35(m))
    ctx.addIssue({ code: 'custom', path: where, message: `${by} needs machine q35: Secure Boot runs the firmware in SMM, which machine ${m} does not have; use machine: q35, or firmware: uefi` });
  else if (fw === 'uefi' && m === 'microvm')
    ctx.addIssue({ code: 'custom', path: where, message: `${by} cannot run on machine microvm (no pflash; microvm boots a kernel directly); use machine: q35` });
  if (vm.tpm !== undefined && vm.tpm !== false && m === 'microvm') ctx.addIssue({ code: 'custom', path: ['tpm'], message: 'a TPM needs machine q35 or pc (microvm has no TPM interface)' });
}
