/**
 * `kvmctl import libvirt FILE.xml`: a libvirt domain (`virsh dumpxml NAME`) → a kvmctl VM
 * definition, with the networks it implies (a `direct` interface becomes a macvtap network, a
 * `bridge` interface a bridge network of that name). Every element is either kept, translated
 * (with a note) or reported as not kept (a warning); nothing is dropped silently.
 * The format: https://libvirt.org/formatdomain.html
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { DISK_SERIAL_RE } from '../definition/vm.js';
import { importError, finish, Notes, safeName, sizeText, toBytes, baseMachine, type Imported } from './model.js';

type X = Record<string, unknown>;
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, parseAttributeValue: false, trimValues: true });

const arr = (v: unknown): X[] => (v === undefined || v === null || v === '' ? [] : (Array.isArray(v) ? v : [v]).map((x) => (typeof x === 'object' && x !== null ? (x as X) : { '#text': String(x) })));
const one = (v: unknown): X | undefined => arr(v)[0];
const at = (n: X | undefined, a: string): string | undefined => (n?.[`@${a}`] as string | undefined) ?? undefined;
const text = (n: unknown): string | undefined => (typeof n === 'string' ? n : typeof n === 'number' ? String(n) : n && typeof n === 'object' ? ((n as X)['#text'] as string | undefined) : undefined);

const DISK_BUS: Record<string, string> = { virtio: 'virtio', scsi: 'scsi', ide: 'ide', sata: 'sata', nvme: 'nvme' };
const NIC_MODEL = new Set(['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3']);
const FORMATS = new Set(['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'qed']);
const CACHE = new Set(['none', 'writeback', 'writethrough', 'directsync', 'unsafe']);
const ACCESS: Record<string, string> = { passthrough: 'passthrough', mapped: 'mapped-xattr', squash: 'none' };
/** Elements that only say what QEMU does anyway, or that kvmctl sets itself. */
const QUIET = new Set(['controller', 'memballoon', 'input', 'emulator', 'console', 'video', 'rng', 'watchdog', 'panic', 'sound', 'audio', 'redirdev', 'smartcard', 'hub', 'iommu', 'vsock', 'shmem', 'lease', 'hostdev', 'parallel', 'serial', 'channel', 'graphics', 'disk', 'interface', 'filesystem', 'tpm']);

export type LibvirtOptions = { name?: string; source?: string; pools?: Record<string, string> };

export function importLibvirt(xml: string, opts: LibvirtOptions = {}): Imported {
  const source = opts.source ?? 'domain.xml';
  let doc: X;
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw importError('IMPORT_BAD_XML', `${source}:${valid.err.line}: not well-formed XML (${valid.err.msg})`, 'give the output of virsh dumpxml NAME');
  try {
    doc = parser.parse(xml) as X;
  } catch (e) {
    throw importError('IMPORT_BAD_XML', `${source}: not XML (${(e as Error).message})`, 'give the output of virsh dumpxml NAME');
  }
  const d = one(doc.domain);
  if (!d) throw importError('IMPORT_NOT_DOMAIN', `${source}: no <domain> element`, 'give the output of virsh dumpxml NAME (a libvirt domain XML)');
  const n = new Notes();
  const vm: X = { kind: 'vm' };
  const networks: X[] = [];
  const name = opts.name ?? safeName(text(d.name), 'imported', n);
  vm.name = name;
  const desc = text(d.description) ?? text(d.title);
  if (desc) vm.description = desc;

  // --- machine, accel, arch
  const os = one(d.os) ?? {};
  const type = one(os.type);
  const arch = at(type, 'arch') ?? 'x86_64';
  if (!/^(x86_64|i686)$/.test(arch)) throw importError('IMPORT_UNSUPPORTED', `${source}: the guest is ${arch}; kvmctl runs x86_64 guests`);
  const m = baseMachine(at(type, 'machine'));
  vm.machine = { type: m.type, accel: at(d, 'type') === 'qemu' ? ['tcg'] : ['kvm', 'tcg'] };
  if (m.versioned) n.translated(`machine ${at(type, 'machine')}`, `${m.type} (the host QEMU's current ${m.type}; set machine.type to the versioned name to keep the old ABI)`);
  else n.kept('machine');

  // --- memory and CPUs
  const mem = one(d.memory) ?? one(d.currentMemory);
  const bytes = bootMemory(d, mem ? toBytes(text(mem) ?? '', at(mem, 'unit') ?? 'KiB') : undefined, n);
  if (bytes) {
    vm.memory = sizeText(bytes);
    n.kept('memory');
    const cur = one(d.currentMemory);
    const cb = cur ? toBytes(text(cur) ?? '', at(cur, 'unit') ?? 'KiB') : undefined;
    if (cb && cb !== bytes) n.lost('currentMemory', `ballooning to ${sizeText(cb)} at boot is not kept: the guest gets ${vm.memory}`);
  }
  const vcpu = one(d.vcpu);
  const count = Number(text(vcpu) ?? 1) || 1;
  const cpu: X = { count };
  const c = one(d.cpu);
  const mode = at(c, 'mode');
  if (mode === 'host-passthrough' || mode === 'maximum') cpu.model = mode === 'maximum' ? 'max' : 'host';
  else if (mode === 'host-model') {
    cpu.model = 'host';
    n.translated('cpu mode host-model', 'host (QEMU -cpu host; libvirt expands host-model to a named model with features)');
  } else {
    const model = text(one(c?.model));
    cpu.model = model && /^[A-Za-z0-9][A-Za-z0-9_.,=+-]*$/.test(model) ? model : 'qemu64';
    if (!model) n.translated('cpu model', 'qemu64 (QEMU\'s default when libvirt names none)');
  }
  const feats = arr(c?.feature).filter((f) => at(f, 'name'));
  if (feats.length) n.lost('cpu features', `${feats.map((f) => `${at(f, 'policy') === 'disable' ? '-' : '+'}${at(f, 'name')}`).join(',')} not kept (add them to extraArgs if the guest needs them)`);
  const topo = one(c?.topology);
  if (topo) {
    const [s, co, t] = ['sockets', 'cores', 'threads'].map((k) => Number(at(topo, k) ?? 1));
    const dies = Number(at(topo, 'dies') ?? 1);
    if (s! * co! * t! * dies === count && dies === 1) Object.assign(cpu, { sockets: s, cores: co, threads: t });
    else n.lost('cpu topology', `${at(topo, 'sockets')}×${at(topo, 'dies') ?? 1}×${at(topo, 'cores')}×${at(topo, 'threads')} does not multiply to ${count} vCPUs (or uses dies): not kept`);
  }
  if (at(vcpu, 'current') && Number(at(vcpu, 'current')) !== count) n.lost('vcpu current', `${at(vcpu, 'current')} of ${count} online at boot is not kept: all ${count} are`);
  vm.cpu = cpu;
  n.kept('vcpus');
  if (d.cputune) n.lost('cputune', 'CPU pinning and shares are not kept (issue #20)');
  if (d.numatune || one(c?.numa)) n.lost('numa', 'NUMA placement is not kept (issue #20)');
  if (d.memoryBacking) n.lost('memoryBacking', 'hugepages / memory backing are not kept (issue #20)');
  if (d.iothreads) n.lost('iothreads', 'not kept (issue #20)');

  // --- firmware and direct kernel boot
  const loader = one(os.loader);
  const efi = at(os, 'firmware') === 'efi' || at(loader, 'type') === 'pflash';
  if (efi) {
    const secure = at(loader, 'secure') === 'yes' || arr(one(os.firmware)?.feature).some((f) => at(f, 'name') === 'secure-boot' && at(f, 'enabled') === 'yes');
    const fw: X = { type: secure ? 'uefi-secure' : 'uefi' };
    const code = text(loader);
    if (code) fw.code = code;
    const nv = one(os.nvram);
    if (text(nv)) fw.vars = text(nv);
    else if (at(nv, 'template')) fw.varsTemplate = at(nv, 'template');
    vm.firmware = fw;
    n.kept(`firmware ${fw.type}${fw.vars ? ' with its NVRAM' : ''}`);
    if (secure && m.type !== 'q35') n.lost('secure boot', `needs q35; the machine is ${m.type}`);
  }
  if (text(os.kernel)) {
    const k: X = { path: text(os.kernel) };
    if (text(os.initrd)) k.initrd = text(os.initrd);
    if (text(os.cmdline)) k.append = text(os.cmdline);
    vm.kernel = k;
    n.kept('direct kernel boot');
  }
  const bootDev = arr(os.boot).map((b) => ({ hd: 'disk', cdrom: 'cdrom', network: 'network' })[at(b, 'dev') ?? ''] as string | undefined);
  const order = [...new Set(bootDev.filter((x): x is string => !!x))];
  const menu = at(one(os.bootmenu), 'enable') === 'yes';
  if (order.length && !(order.length === 1 && order[0] === 'disk')) vm.boot = { order, ...(menu ? { menu: true } : {}) };
  else if (menu) vm.boot = { order: ['disk'], menu: true };

  const devs = one(d.devices) ?? {};
  const disks: X[] = [];
  const cdroms: X[] = [];
  let perDeviceBoot = false;
  libvirtDiskOrder(arr(devs.disk)).forEach((dk, i) => {
    const device = at(dk, 'device') ?? 'disk';
    const kind = at(dk, 'type') ?? 'file';
    const src = one(dk.source);
    const target = one(dk.target);
    const what = `disk ${at(target, 'dev') ?? i}`;
    let file: string | undefined;
    if (kind === 'file') file = at(src, 'file');
    else if (kind === 'block') file = at(src, 'dev');
    else if (kind === 'volume') {
      const pool = at(src, 'pool');
      const dir = pool ? opts.pools?.[pool] : undefined;
      if (dir) file = `${dir.replace(/\/$/, '')}/${at(src, 'volume')}`;
      else return n.lost(what, `a volume in pool "${pool}": give the pool's directory (--pool ${pool}=DIR, from virsh pool-dumpxml ${pool})`);
    } else return n.lost(what, `a ${kind} disk (${at(src, 'protocol') ?? kind}${at(src, 'name') ? ` ${at(src, 'name')}` : ''}) has no kvmctl field: not imported`);
    if (one(dk.boot)) perDeviceBoot = true;
    if (device === 'cdrom') {
      if (!file) return n.lost(what, 'an empty CD-ROM drive is not kept (kvmctl cdrom NAME insert FILE adds media to a running VM)');
      cdroms.push({ file });
      return n.kept(`cdrom ${at(target, 'dev') ?? i}`);
    }
    if (device !== 'disk' && device !== 'lun') return n.lost(what, `a ${device} device has no kvmctl field`);
    if (!file) return n.lost(what, 'no source file');
    if (one(dk.encryption) ?? one(src?.encryption))
      return n.lost(what, `${file} is encrypted (libvirt opens it with a secret kvmctl does not hold): not imported, since the guest would read ciphertext`);
    if (disks.some((x) => x.file === file)) return n.lost(what, `${file} is already an earlier disk of this domain: imported once (QEMU would refuse the second open)`);
    const bus = at(target, 'bus') ?? 'virtio';
    const disk: X = { file };
    const drv = one(dk.driver);
    const fmt = at(drv, 'type');
    if (fmt && FORMATS.has(fmt)) disk.format = fmt;
    else if (fmt) n.lost(`${what} format`, `${fmt} is not a format kvmctl knows; QEMU probes it`);
    else disk.format = 'raw'; // libvirt never probes: no driver type means raw
    if (DISK_BUS[bus]) disk.interface = DISK_BUS[bus];
    else {
      disk.interface = 'virtio';
      n.translated(`${what} bus ${bus}`, 'virtio (kvmctl has no field for it)');
    }
    const cache = at(drv, 'cache');
    if (cache && CACHE.has(cache)) disk.cache = cache;
    const io = at(drv, 'io');
    if (io === 'native' || io === 'threads' || io === 'io_uring') disk.aio = io;
    const discard = at(drv, 'discard');
    if (discard === 'unmap' || discard === 'ignore') disk.discard = discard;
    if (dk.readonly !== undefined) disk.readOnly = true;
    const serial = text(one(dk.serial));
    if (serial !== undefined && DISK_SERIAL_RE.test(serial)) disk.serial = serial;
    else if (serial !== undefined) n.lost(`${what} serial`, `"${serial}" not kept: a definition's disk serial is 1–20 letters, digits, ".", "_", "+", ":" or "-"`);
    if (dk.shareable !== undefined) n.lost(`${what} shareable`, 'not kept: kvmctl takes the image lock');
    if (dk.iotune) n.lost(`${what} iotune`, 'I/O throttling is not kept');
    if (at(drv, 'iothread')) n.lost(`${what} iothread`, 'not kept (issue #20)');
    disks.push(disk);
    n.kept(what);
  });
  if (disks.length) vm.disks = disks;
  if (cdroms.length) vm.cdroms = cdroms;
  if (!disks.length && !cdroms.length && !vm.kernel && vm.boot) {
    delete vm.boot;
    n.note('the domain has no disk, CD-ROM or kernel to boot: no boot order imported (add a disk, or kvmctl install NAME --iso FILE)');
  }
  if (perDeviceBoot) n.translated('per-device boot order', 'kvmctl boots by boot.order (disk, cdrom, network) over the devices in definition order');

  // --- interfaces
  const nics: X[] = [];
  arr(devs.interface).forEach((ifc, i) => {
    const t = at(ifc, 'type') ?? 'network';
    const src = one(ifc.source);
    const what = `interface ${i}${at(one(ifc.mac), 'address') ? ` (${at(one(ifc.mac), 'address')})` : ''}`;
    const nic: X = {};
    if (t === 'bridge' && at(src, 'bridge')) {
      const br = at(src, 'bridge')!;
      nic.network = br;
      if (!networks.some((x) => x.name === br)) networks.push({ kind: 'network', name: br, type: 'bridge' });
      n.translated(what, `on bridge ${br}: network "${br}" (type bridge) is imported with it; add its uplinks before kvmctl net up`);
    } else if (t === 'network' && at(src, 'network')) {
      nic.network = safeName(at(src, 'network'), 'default', n);
      n.translated(what, `on libvirt network "${at(src, 'network')}": define a kvmctl network of that name (nat for libvirt's default)`);
    } else if (t === 'direct' && at(src, 'dev')) {
      const dev = at(src, 'dev')!;
      const modeV = at(src, 'mode') ?? 'vepa';
      const netName = safeName(`macvtap-${dev}`, 'macvtap', n);
      nic.network = netName;
      if (!networks.some((x) => x.name === netName)) networks.push({ kind: 'network', name: netName, type: 'macvtap', parent: dev, mode: ['bridge', 'vepa', 'private', 'passthru'].includes(modeV) ? modeV : 'vepa' });
      n.translated(what, `macvtap on ${dev} (mode ${modeV}): network "${netName}" is imported with it`);
    } else if (t === 'user') {
      nic.user = true;
      n.kept(what);
    } else if (t === 'ethernet' && at(one(ifc.target), 'dev')) {
      nic.tap = at(one(ifc.target), 'dev');
      n.kept(what);
    } else return n.lost(what, `a ${t} interface has no kvmctl field: not imported`);
    const model = at(one(ifc.model), 'type') ?? 'rtl8139';
    if (NIC_MODEL.has(model)) nic.model = model;
    else {
      nic.model = 'virtio';
      n.translated(`${what} model ${model}`, 'virtio');
    }
    const mac = at(one(ifc.mac), 'address');
    if (mac && nics.some((x) => x.mac === mac.toLowerCase())) n.lost(`${what} mac`, 'the same MAC as an earlier interface: left out, kvmctl derives one from the VM name');
    else if (mac) nic.mac = mac.toLowerCase();
    const drv = at(one(ifc.driver), 'name');
    if (drv === 'vhost') nic.vhost = 'on';
    else if (drv === 'qemu') nic.vhost = 'off';
    if (ifc.vlan) n.lost(`${what} vlan`, 'VLAN tags are not kept');
    if (ifc.bandwidth) n.lost(`${what} bandwidth`, 'not kept');
    if (ifc.filterref) n.lost(`${what} filterref`, 'nwfilter rules are not kept');
    nics.push(nic);
  });
  vm.nics = nics;

  // --- display, serial, TPM, agent, shares
  const gr = arr(devs.graphics);
  if (gr.some((g) => at(g, 'type') === 'vnc')) {
    vm.display = { type: 'vnc' };
    n.translated('graphics vnc', "VNC on the VM's unix socket (kvmctl console --vnc, the web console); the TCP port is not kept");
  } else if (gr.length) {
    vm.display = { type: 'vnc' };
    n.translated(`graphics ${at(gr[0], 'type')}`, 'VNC on a unix socket (kvmctl has no SPICE/SDL)');
  }
  if (arr(devs.serial).length || arr(devs.console).length) n.translated('serial/console', "the VM's serial socket (kvmctl console NAME)");
  const tpm = one(devs.tpm);
  if (tpm) {
    const be = one(tpm.backend);
    if (at(be, 'type') === 'emulator') {
      vm.tpm = { version: at(be, 'version') === '1.2' ? '1.2' : '2.0' };
      n.translated('tpm', `TPM ${(vm.tpm as X).version} from swtpm, managed by kvmctl; libvirt's state in /var/lib/libvirt/swtpm is not copied (copy it into ${'<data>'}/vms/${name}/tpm to keep sealed keys)`);
    } else n.lost('tpm', `backend ${at(be, 'type')} (host TPM passthrough) is not kept`);
  }
  if (arr(devs.channel).some((ch) => at(one(ch.target), 'name') === 'org.qemu.guest_agent.0')) {
    vm.agent = true;
    n.kept('guest agent channel');
  }
  const shares: X[] = [];
  for (const fsx of arr(devs.filesystem)) {
    const dir = at(one(fsx.source), 'dir');
    const tag = at(one(fsx.target), 'dir');
    if ((at(fsx, 'type') ?? 'mount') !== 'mount' || !dir || !tag) {
      n.lost(`filesystem ${tag ?? ''}`.trim(), 'only directory shares (type mount) are kept');
      continue;
    }
    const virtiofs = at(one(fsx.driver), 'type') === 'virtiofs';
    let mtag = tag;
    if (!/^[A-Za-z0-9_.-]{1,31}$/.test(tag)) {
      mtag = tag.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+/, '').slice(0, 31) || 'share';
      n.translated(`filesystem ${tag} mount tag`, `"${mtag}" (mount with that tag in the guest)`);
    }
    const sh: X = { path: dir, tag: mtag };
    if (virtiofs) sh.driver = 'virtiofs';
    else sh.securityModel = ACCESS[at(fsx, 'accessmode') ?? 'passthrough'] ?? 'passthrough';
    if (fsx.readonly !== undefined) sh.readOnly = true;
    shares.push(sh);
    n.kept(`filesystem ${tag}`);
  }
  if (shares.length) vm.shares = shares;
  if (arr(devs.hostdev).length) n.lost('hostdev', `${arr(devs.hostdev).length} passed-through host device(s) not kept (issue #20)`);

  // --- the rest: say what is not kept
  const feat = one(d.features) ?? {};
  if (feat.hyperv) n.lost('features hyperv', 'Hyper-V enlightenments are not kept (add -cpu flags in extraArgs)');
  const clock = one(d.clock);
  if (at(clock, 'offset') === 'localtime') n.lost('clock offset localtime', 'kvmctl keeps the guest RTC in UTC (Windows guests: set RealTimeIsUniversal)');
  for (const k of ['on_poweroff', 'on_reboot', 'on_crash'] as const) {
    const v = text(d[k]);
    if (v && !(k === 'on_poweroff' && v === 'destroy') && !(k === 'on_reboot' && v === 'restart') && !(k === 'on_crash' && v === 'destroy')) n.lost(`${k} ${v}`, 'not kept (restart: in the definition sets what happens after a crash)');
  }
  const unknown = Object.keys(devs).filter((k) => !k.startsWith('@') && !QUIET.has(k));
  if (unknown.length) n.lost(`devices ${unknown.join(', ')}`, 'no kvmctl field');
  if (d.seclabel) n.note('seclabel: kvmctl runs QEMU under its own seccomp sandbox (runAs for a user)');
  return finish('libvirt', name, vm, networks, n, source);
}

/** libvirt's index of a disk target name: hda → 0, vdb → 1, sdaa → 26 (virDiskNameToIndex). */
function diskNameIndex(dev: string | undefined): number {
  const m = /^(?:fd|hd|vd|sd|xvd|ubd)([a-z]+)$/.exec(dev ?? '');
  if (!m) return -1;
  let idx = 0;
  for (const ch of m[1]!) idx = idx * 26 + (ch.charCodeAt(0) - 96);
  return idx - 1;
}

/**
 * Disks in the order libvirt keeps them once it has read a domain (virDomainDiskInsert): grouped
 * by bus in order of first appearance, and by target name within a bus. The QEMU line libvirt
 * generates, and `virsh dumpxml`, list them in this order; kvmctl adds devices in definition order.
 */
function libvirtDiskOrder<T extends Record<string, unknown>>(disks: T[]): T[] {
  const BUS_OF_PREFIX: Record<string, string> = { hd: 'ide', sd: 'scsi', vd: 'virtio', fd: 'fdc', xvd: 'xen', ubd: 'uml' };
  const info = (dk: T) => {
    const dev = at(one(dk.target as X), 'dev');
    const bus = at(one(dk.target as X), 'bus') ?? BUS_OF_PREFIX[/^(xvd|ubd|[a-z]d)/.exec(dev ?? '')?.[1] ?? ''] ?? '';
    return { bus, index: diskNameIndex(dev) };
  };
  const out: T[] = [];
  for (const dk of disks) {
    const me = info(dk);
    let insertAt = -1;
    for (let i = out.length - 1; i >= 0; i--) {
      const o = info(out[i]!);
      if (o.bus === me.bus && o.index > me.index) insertAt = i;
      else if (o.bus === me.bus && insertAt === -1) insertAt = i + 1;
    }
    if (insertAt === -1) out.push(dk);
    else out.splice(insertAt, 0, dk);
  }
  return out;
}

const MiB = 1024 ** 2;
/**
 * The RAM a libvirt domain boots with, as libvirt computes it: <memory> is the total including
 * memory devices; with NUMA cells the initial memory is their sum, each cell rounded up to a MiB
 * as libvirt aligns it. DIMMs are added to it (kvmctl has no memory slots); nvdimm, virtio-pmem,
 * virtio-mem and SGX EPC devices are not RAM at boot and are not kept.
 */
function bootMemory(d: X, total: number | undefined, n: Notes): number | undefined {
  if (!total) return total;
  const devices = arr(one(d.devices)?.memory).map((m) => {
    const size = one(one(m.target)?.size);
    return { model: at(m, 'model') ?? 'dimm', bytes: size ? (toBytes(text(size) ?? '', at(size, 'unit') ?? 'KiB') ?? 0) : 0 };
  });
  const cells = arr(one(one(d.cpu)?.numa)?.cell);
  const initial = cells.length
    ? cells.reduce((a, c) => a + Math.ceil((toBytes(at(c, 'memory') ?? '0', at(c, 'unit') ?? 'KiB') ?? 0) / MiB) * MiB, 0)
    : Math.ceil((total - devices.reduce((a, x) => a + x.bytes, 0)) / MiB) * MiB;
  if (initial <= 0) return total;
  let boot = initial;
  for (const x of devices) {
    if (x.model === 'dimm' && x.bytes > 0) {
      boot += x.bytes;
      n.translated(`memory device dimm (${sizeText(x.bytes)})`, 'added to the boot memory (kvmctl has no memory slots)');
    } else n.lost(`memory device ${x.model}`, 'not kept: kvmctl has no field for it (it is not RAM at boot)');
  }
  return boot;
}
