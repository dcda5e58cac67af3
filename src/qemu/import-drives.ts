/**
 * Command-line import, the storage family: -drive, -hda…-hdd and bare image arguments, -cdrom,
 * -device virtio-blk/scsi-hd/ide-hd/nvme/ide-cd/scsi-cd with their if=none drive, the
 * virtio-scsi-pci controller, and 9p shares (-fsdev with -device virtio-9p-*, or -virtfs).
 */
import { NAME_RE } from '../definition/names.js';
import { CACHE_MODES, DISK_FORMATS, DISK_SERIAL_RE, SECURITY_MODELS } from '../definition/vm.js';
import { DEVICE_PLACEMENT, deviceExtras, type Disk, type ImportState, type Opt } from './import-state.js';
import { parseBool, type QemuOpts } from './parse-opts.js';

/** Disk and CD-ROM devices → the definition's interface. */
const BLOCK_DEVICES: Record<string, string> = {
  'virtio-blk-pci': 'virtio', 'virtio-blk': 'virtio', 'virtio-blk-pci-transitional': 'virtio', 'virtio-blk-pci-non-transitional': 'virtio',
  'scsi-hd': 'scsi', 'scsi-block': 'scsi', 'ide-hd': 'ide', nvme: 'nvme', 'ide-cd': 'ide', 'scsi-cd': 'scsi', 'usb-storage': 'virtio',
};
/** What a disk device becomes when kvmctl attaches it another way. */
const DEVICE_TRANSLATED: Record<string, string> = {
  'virtio-blk-pci-transitional': 'a virtio-blk-pci disk (kvmctl picks transitional or modern for the machine)',
  'virtio-blk-pci-non-transitional': 'a virtio-blk-pci disk (kvmctl picks transitional or modern for the machine)',
  'scsi-block': 'an emulated scsi-hd disk: SCSI commands are no longer passed through to the host device',
  'usb-storage': 'a virtio disk (kvmctl has no USB disks; the libvirt importer does the same)',
};

/** Map one option of this family; false when the option is not one of its. */
export function mapDriveOption(s: ImportState, o: Opt, v: string): boolean {
  const { P, note, extra, mapped, fileNote, disks, cdroms } = s;
  switch (o.name) {
    case 'drive': {
      const p = P(o);
      if (p.get('if') === 'none') break; // used by a -device below, or kept at the end
      const r = mapDrive(p, p.get('if') ?? 'ide');
      if ('reason' in r) { extra(o, r.reason); break; }
      if (r.cdrom) cdroms.push(r.cdrom);
      else if (!addDisk(s, o, r.disk!)) break;
      fileNote(o, p.get('file') ?? '');
      r.notes.forEach((n) => note(o, n));
      mapped(o);
      break;
    }
    case 'hda': case 'hdb': case 'hdc': case 'hdd':
      disks.push({ file: v, interface: 'ide', index: 'abcd'.indexOf(o.name[2]!) });
      fileNote(o, v);
      if (o.spelled === '') note(o, `"${v}" (a bare argument) is QEMU's first hard disk: imported as an IDE disk`);
      mapped(o);
      break;
    case 'cdrom':
      cdroms.push({ file: v });
      fileNote(o, v);
      mapped(o);
      break;
    case 'virtfs': {
      const p = P(o, 'driver');
      const r = mapShare(p, p.get('mount_tag') ?? '', true);
      if ('reason' in r) { extra(o, r.reason); break; }
      s.shares.push(r.share);
      mapped(o);
      break;
    }
    default:
      return false;
  }
  return true;
}

/** `-device virtio-blk-pci,drive=X` (and the other disk and CD-ROM devices); false when drv is not one. */
export function mapDiskDevice(s: ImportState, o: Opt, p: QemuOpts, drv: string, dropPlacement: () => void): boolean {
  const iface = BLOCK_DEVICES[drv];
  if (!iface || !p.has('drive')) return false;
  const { P, note, warn, extra, mapped, fileNote } = s;
  const dr = s.drives.get(p.get('drive')!);
  if (!dr || dr.status) { extra(o, `its drive ${p.get('drive')} is not an if=none -drive kvmctl imports`); return true; }
  const { dropped, unknown } = deviceExtras(p, ['driver', 'drive', 'serial', 'num-queues', 'iothread', ...DEVICE_PLACEMENT]);
  if (unknown.length) { extra(o, `device properties ${p.describe(unknown)} have no field in the definition`); return true; }
  const dp = P(dr);
  const r = mapDrive(dp, iface, drv.endsWith('-cd'));
  if ('reason' in r) { extra(o, r.reason); extra(dr, r.reason); return true; }
  if (r.cdrom) s.cdroms.push(r.cdrom);
  else {
    const disk = r.disk!;
    const serial = p.get('serial');
    if (serial !== undefined && drv !== 'nvme') {
      if (DISK_SERIAL_RE.test(serial)) disk.serial = serial;
      else warn(o, `serial=${serial} not kept: a definition's disk serial is 1–20 letters, digits, ".", "_", "+", ":" or "-"`);
    }
    if (iface === 'virtio' && p.has('num-queues')) {
      const q = Number(p.get('num-queues'));
      if (Number.isInteger(q) && q >= 1 && q <= 64) disk.queues = q;
      else warn(o, `num-queues=${p.get('num-queues')} not kept (1–64)`);
    }
    if (p.has('iothread')) {
      if (iface === 'virtio') { disk.iothread = 'auto'; note(o, `iothread=${p.get('iothread')}: the disk gets an I/O thread of its own (iothread: auto)`); }
      else warn(o, `iothread=${p.get('iothread')} not kept: kvmctl gives I/O threads to virtio disks only`);
    }
    if (!addDisk(s, o, disk)) { mapped(o, dr); return true; }
  }
  fileNote(dr, dp.get('file') ?? '');
  r.notes.forEach((n) => note(dr, n));
  if (drv === 'nvme' && p.has('serial')) note(o, `nvme serial=${p.get('serial')} dropped (kvmctl uses the disk id)`);
  if (DEVICE_TRANSLATED[drv]) note(o, `${drv} → ${DEVICE_TRANSLATED[drv]}`);
  if (dropped.length) warn(o, `device properties ${p.describe(dropped)} not kept: the definition has no field for them (the disk is imported without them)`);
  dropPlacement();
  mapped(o, dr);
  return true;
}

/** `-device virtio-9p-pci,fsdev=X,mount_tag=T` with its -fsdev; false when drv is not one. */
export function mapShareDevice(s: ImportState, o: Opt, p: QemuOpts, drv: string, dropPlacement: () => void): boolean {
  if (drv !== 'virtio-9p-pci' && drv !== 'virtio-9p-device') return false;
  const { P, extra, mapped } = s;
  const fs = s.fsdevs.get(p.get('fsdev') ?? '');
  const rest = p.unknown(['driver', 'fsdev', 'mount_tag', ...DEVICE_PLACEMENT]);
  if (!fs || fs.status || rest.length || !p.has('mount_tag')) {
    extra(o, rest.length ? `device properties ${p.describe(rest)} have no field in the definition` : 'it has no -fsdev kvmctl imports, or no mount_tag');
    return true;
  }
  const r = mapShare(P(fs, 'driver'), p.get('mount_tag')!);
  if ('reason' in r) { extra(o, r.reason); extra(fs, r.reason); return true; }
  s.shares.push(r.share);
  dropPlacement();
  mapped(o, fs);
  return true;
}

/** Add a disk unless an earlier one has the same image (the libvirt importer keeps the first too); false when left out. */
function addDisk(s: ImportState, o: Opt, disk: Disk): boolean {
  if (s.disks.some((d) => d.file === disk.file)) {
    s.warn(o, `${disk.file} is already an earlier disk: imported once (QEMU would refuse to open one image twice)`);
    o.status = 'dropped';
    return false;
  }
  s.disks.push(disk);
  return true;
}

/** SCSI controllers used by imported scsi disks. */
export function mapScsiControllers(s: ImportState): void {
  const { P, extra, mapped } = s;
  for (const o of s.opts.filter((x) => x.name === 'device' && !x.status && P(x, 'driver').get('driver') === 'virtio-scsi-pci')) {
    const p = P(o, 'driver');
    if (s.disks.some((d) => d.interface === 'scsi') && !p.unknown(['driver', ...DEVICE_PLACEMENT]).length) mapped(o);
    else extra(o, 'a SCSI controller with no disks kvmctl imports');
  }
}

/** A -drive (its options) → a disk or a CD-ROM. */
function mapDrive(p: QemuOpts, iface: string, cd = false): { disk?: Disk; cdrom?: Record<string, unknown>; notes: string[] } | { reason: string } {
  const notes: string[] = [];
  const rest = p.unknown(['file', 'format', 'driver', 'if', 'index', 'bus', 'unit', 'media', 'cache', 'aio', 'discard', 'readonly', 'id']);
  if (rest.length) return { reason: `drive properties ${p.describe(rest)} have no field in the definition` };
  const file = p.get('file');
  if (!file) return { reason: 'a drive without a file (an empty drive) has no field in the definition' };
  const id = p.get('id');
  const idPart = id && NAME_RE.test(id) ? { id } : {};
  if ((p.get('media') ?? (cd ? 'cdrom' : 'disk')) === 'cdrom' || cd) {
    if (iface !== 'ide') notes.push(`CD-ROM ${file}: kvmctl attaches CD-ROMs over IDE/AHCI (the script used ${iface})`);
    return { cdrom: { ...idPart, file }, notes };
  }
  if (p.get('media') !== undefined && p.get('media') !== 'disk') return { reason: `media=${p.get('media')} is not disk or cdrom` };
  const ifaces: Record<string, string> = { virtio: 'virtio', ide: 'ide', scsi: 'scsi', nvme: 'nvme', sata: 'sata' };
  const interf = ifaces[iface];
  if (!interf) return { reason: `if=${iface} has no field in the definition (kvmctl disks are virtio, scsi, ide, sata or nvme)` };
  if (iface === 'scsi' && p.get('if') === 'scsi') notes.push(`if=scsi: QEMU would use its default SCSI controller (lsi53c895a); kvmctl uses virtio-scsi`);
  const format = p.get('format') ?? p.get('driver');
  if (format !== undefined && !(DISK_FORMATS as readonly string[]).includes(format)) return { reason: `format ${format} is not one of ${DISK_FORMATS.join(', ')}` };
  const disk: Disk = { ...idPart, file, ...(format ? { format } : {}), interface: interf };
  let index = p.has('index') ? Number(p.get('index')) : undefined;
  if (index === undefined && (p.has('bus') || p.has('unit'))) {
    const per = iface === 'ide' ? 2 : 1;
    index = Number(p.get('bus') ?? 0) * per + Number(p.get('unit') ?? 0);
  }
  if (index !== undefined) {
    if (!Number.isInteger(index) || index < 0 || index > 63) return { reason: `index ${p.get('index')} is out of range` };
    disk.index = index;
  }
  const cache = p.get('cache');
  if (cache !== undefined) {
    if (!(CACHE_MODES as readonly string[]).includes(cache)) return { reason: `cache=${cache} is not one of ${CACHE_MODES.join(', ')}` };
    disk.cache = cache;
  }
  const aio = p.get('aio');
  if (aio !== undefined) {
    if (!['threads', 'native', 'io_uring'].includes(aio)) return { reason: `aio=${aio} is not threads, native or io_uring` };
    disk.aio = aio;
  }
  const discard = p.get('discard');
  if (discard !== undefined) {
    const d = ({ ignore: 'ignore', off: 'ignore', unmap: 'unmap', on: 'unmap' } as Record<string, string>)[discard];
    if (!d) return { reason: `discard=${discard} is not ignore or unmap` };
    disk.discard = d;
  }
  const ro = parseBool(p.get('readonly'));
  if (ro) disk.readOnly = true;
  return { disk, notes };
}

/** -fsdev local,… (or -virtfs) → a 9p share. */
function mapShare(p: QemuOpts, tag: string, virtfs = false): { share: Record<string, unknown> } | { reason: string } {
  const known = ['driver', 'id', 'path', 'security_model', 'readonly', ...(virtfs ? ['mount_tag'] : [])];
  const rest = p.unknown(known);
  if (rest.length) return { reason: `fsdev properties ${p.describe(rest)} have no field in the definition` };
  if (p.get('driver') !== 'local') return { reason: `fsdev driver ${p.get('driver')} has no field in the definition (kvmctl shares are local)` };
  const sm = p.get('security_model') ?? 'mapped-xattr';
  if (!(SECURITY_MODELS as readonly string[]).includes(sm)) return { reason: `security_model=${sm} is not one of ${SECURITY_MODELS.join(', ')}` };
  if (!p.get('path') || !/^[A-Za-z0-9_.-]{1,31}$/.test(tag)) return { reason: 'a share needs path= and a mount_tag of 1–31 letters, digits, "_", "." or "-"' };
  const id = p.get('id');
  return {
    share: { ...(id && NAME_RE.test(id) ? { id } : {}), path: p.get('path'), tag, securityModel: sm, ...(parseBool(p.get('readonly')) ? { readOnly: true } : {}) },
  };
}
