/**
 * The per-import state every option family of the command-line import works on
 * (src/qemu/import-map.ts drives it; import-machine/-drives/-net/-console.ts map their options
 * into it): the options as split from the argv, each one's parsed `key=val` list, the definition
 * being built, the notes and warnings, and what goes to extraArgs with its reason.
 */
import path from 'node:path';
import type { ImportNote, ImportOptions } from '../import/types.js';
import { parseOpts, type QemuOpts } from './parse-opts.js';
import type { Redirect, Word } from './shell-words.js';

/** QEMU options that take no argument (everything else takes one). */
const FLAGS = new Set([
  'enable-kvm', 'nographic', 'daemonize', 'no-user-config', 'nodefaults', 'usb', 'no-reboot', 'no-shutdown', 'S', 's',
  'snapshot', 'no-hpet', 'no-acpi', 'full-screen', 'no-fd-bootchk', 'no-quit', 'enable-fips', 'only-migratable', 'version',
  'help', 'h', 'no-frame', 'alt-grab', 'ctrl-grab', 'win2k-hack', 'rtc-td-hack', 'preconfig', 'nodefconfig', 'enable-sync-profile',
  // Flags of older QEMUs that still appear in scripts.
  'mem-prealloc', 'no-kvm', 'no-kvm-irqchip', 'no-kvm-pit', 'no-kvm-pit-reinjection', 'enable-nesting', 'localtime', 'std-vga', 'curses', 'sdl', 'no-quit',
]);
/** Options known to take a value; an unknown option followed by another option is read as a flag. */
const VALUED = new Set([
  'name', 'machine', 'M', 'accel', 'cpu', 'smp', 'm', 'drive', 'hda', 'hdb', 'hdc', 'hdd', 'cdrom', 'fda', 'fdb', 'boot', 'netdev', 'nic', 'net',
  'device', 'object', 'chardev', 'fsdev', 'virtfs', 'monitor', 'mon', 'qmp', 'qmp-pretty', 'serial', 'parallel', 'display', 'vnc', 'vga', 'kernel',
  'initrd', 'append', 'dtb', 'runas', 'run-with', 'chroot', 'pidfile', 'sandbox', 'msg', 'rtc', 'global', 'bios', 'L', 'k', 'audiodev', 'soundhw',
  'incoming', 'loadvm', 'D', 'd', 'trace', 'spice', 'usbdevice', 'numa', 'mem-path', 'overcommit', 'smbios', 'fw_cfg', 'iscsi',
  'blockdev', 'add-fd', 'semihosting-config', 'icount', 'watchdog', 'watchdog-action', 'action', 'compat', 'set', 'readconfig', 'gdb', 'uuid',
]);
/** Device keys kvmctl sets itself (placement, ids, boot index): dropped with a note. */
// Where a device sits (bus, slot, IDE unit, SCSI target/LUN), its boot index, and write-cache (follows the drive's cache mode): kvmctl sets these itself.
export const DEVICE_PLACEMENT = ['id', 'bus', 'addr', 'bootindex', 'unit', 'channel', 'scsi-id', 'lun', 'write-cache'];
/**
 * Guest-visible device details kvmctl has no field for (disk geometry, WWNs and vendor strings,
 * error policies, virtio transport and offload switches). A device carrying them is still imported
 * as a disk or NIC; each is named in a warning as not kept — the libvirt importer drops the same.
 */
export const DROPPED_DEVICE_PROPS = new Set([
  'cyls', 'heads', 'secs', 'bios-chs-trans', 'rotation_rate', 'logical_block_size', 'physical_block_size', 'discard_granularity', 'min_io_size', 'opt_io_size',
  'wwn', 'vendor', 'product', 'device_id', 'rerror', 'werror', 'share-rw', 'removable', 'port', 'scsi', 'queue-size', 'acpi-index', 'ver', 'model',
  'ats', 'iommu_platform', 'packed', 'page-per-vq', 'event_idx', 'ioeventfd', 'indirect_desc', 'disable-legacy', 'disable-modern',
  'rss', 'hash', 'rx_queue_size', 'tx_queue_size', 'host_mtu', 'mq', 'vectors', 'tx', 'failover', 'speed', 'duplex',
  'csum', 'gso', 'guest_csum', 'guest_tso4', 'guest_tso6', 'guest_ecn', 'guest_ufo', 'host_tso4', 'host_tso6', 'host_ecn', 'host_ufo', 'mrg_rxbuf',
]);
/** Split a device's keys beyond `known` into those dropped with a warning and those kvmctl cannot import at all. */
export function deviceExtras(p: QemuOpts, known: string[]): { dropped: string[]; unknown: string[] } {
  const rest = p.unknown(known);
  return { dropped: rest.filter((k) => DROPPED_DEVICE_PROPS.has(k)), unknown: rest.filter((k) => !DROPPED_DEVICE_PROPS.has(k)) };
}

export type Opt = {
  name: string;
  value?: string;
  word?: Word;
  line: number;
  /** mapped into the definition, dropped with a note, or kept in extraArgs */
  status?: 'mapped' | 'dropped' | 'extra';
  reason?: string;
  spelled: string;
};

export type Nic = { id?: string; network?: string; tap?: string; user?: true | { forwards: unknown[] }; model: string; mac?: string; vhost?: 'on' | 'off' };
export type Disk = Record<string, unknown> & { file: string };
export type Macvtap = { name: string; parent: string; mode: string; line: number };
export type Ctx = ImportOptions & { vars: Record<string, string>; macvtaps: Macvtap[]; notes: ImportNote[] };

/** 1. Split the words into options (a bare argument is QEMU's first hard disk image). */
export function splitOptions(words: Word[], notes: ImportNote[]): Opt[] {
  const opts: Opt[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.text.startsWith('-') && w.text.length > 1) {
      const name = w.text.replace(/^--?/, '');
      const next = words[i + 1]?.text;
      if (FLAGS.has(name) || (!VALUED.has(name) && next !== undefined && /^--?[A-Za-z]/.test(next))) opts.push({ name, line: w.line, spelled: w.text });
      else if (i + 1 < words.length) {
        opts.push({ name, value: words[i + 1]!.text, word: words[i + 1], line: w.line, spelled: w.text });
        i++;
      } else opts.push({ name, line: w.line, spelled: w.text, status: 'extra', reason: 'its value is missing' });
    } else if (/^\$[@*]$/.test(w.text) && w.unresolved.length) {
      notes.push({ level: 'warning', line: w.line, message: `${w.text}: the script passes its own arguments on to QEMU; whatever was given there is not imported` });
    } else {
      // A bare argument is QEMU's first hard disk image.
      opts.push({ name: 'hda', value: w.text, word: w, line: w.line, spelled: '' });
    }
  }
  return opts;
}

export class ImportState {
  readonly notes: ImportNote[];
  readonly parsed = new Map<Opt, QemuOpts>();
  /** Extra args that belong to an option (machine/smp/boot/-m properties QEMU merges). */
  readonly pushes = new Map<Opt, [string, string, string][]>();
  readonly vm: Record<string, any> = {};
  readonly disks: Disk[] = [];
  readonly cdroms: Record<string, unknown>[] = [];
  readonly nics: Nic[] = [];
  readonly shares: Record<string, unknown>[] = [];
  readonly accels: string[] = [];
  readonly emittedNetworks: Record<string, unknown>[] = [];
  machineType: string | undefined;
  /** kvmctl's own hotplug root ports seen (-device pcie-root-port,id=kvhpN). */
  hotplugPorts = 0;
  memMerge: boolean | undefined;
  rng: boolean | { source: string } = false;
  display: Record<string, unknown> | undefined;
  nographic = false;
  netNone = false;
  nodefaults = false;
  private relNoted = false;
  // 2. Backends by id, for the devices that use them.
  readonly drives: Map<string, Opt>;
  readonly netdevs: Map<string, Opt>;
  readonly chardevs: Map<string, Opt>;
  readonly fsdevs: Map<string, Opt>;
  readonly objects: Map<string, Opt>;

  constructor(readonly opts: Opt[], readonly redirects: Redirect[], readonly ctx: Ctx) {
    this.notes = ctx.notes;
    this.drives = this.byId('drive');
    this.netdevs = this.byId('netdev', 'type');
    this.chardevs = this.byId('chardev', 'backend');
    this.fsdevs = this.byId('fsdev', 'driver');
    this.objects = this.byId('object', 'qom-type');
  }

  readonly warn = (o: Opt | undefined, message: string) => this.notes.push({ level: 'warning', line: o?.line, message });
  readonly note = (o: Opt | undefined, message: string) => this.notes.push({ level: 'note', line: o?.line, message });
  readonly all = (n: string) => this.opts.filter((o) => o.name === n && !o.status);
  readonly given = (...n: string[]) => this.opts.some((o) => n.includes(o.name));
  readonly unresolved = (o: Opt, value = o.value ?? '') => o.word?.unresolved.find((u) => value.includes(u.text));
  readonly P = (o: Opt, implied?: string) => {
    let p = this.parsed.get(o);
    if (!p) this.parsed.set(o, (p = parseOpts(o.value ?? '', implied)));
    return p;
  };
  readonly extra = (o: Opt, reason: string) => {
    if (o.status === 'extra') return;
    o.status = 'extra';
    o.reason = reason;
  };
  readonly mapped = (...os: (Opt | undefined)[]) => os.forEach((o) => o && o.status !== 'extra' && (o.status = 'mapped'));
  readonly dropped = (o: Opt, why: string) => {
    o.status = 'dropped';
    this.note(o, `${o.spelled} ${o.value ?? ''}`.trim() + `: ${why}`);
  };
  readonly extraArgsPush = (o: Opt, flag: string, value: string, why: string) => {
    if (!this.pushes.has(o)) this.pushes.set(o, []);
    this.pushes.get(o)!.push([flag, value, why]);
  };
  readonly fileNote = (o: Opt, f: string) => {
    if (!path.isAbsolute(f) && !this.relNoted) {
      this.relNoted = true;
      this.note(o, `relative image paths such as "${f}" are resolved in kvmctl's images dir, not the script's working directory: move the images there or give absolute paths`);
    }
  };

  private byId(kind: string, implied?: string): Map<string, Opt> {
    const m = new Map<string, Opt>();
    for (const o of this.opts.filter((x) => x.name === kind)) {
      const id = this.P(o, implied).get('id');
      if (id !== undefined) m.set(id, o);
    }
    return m;
  }
}
