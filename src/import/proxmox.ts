/**
 * `kvmctl import proxmox VMID.conf`: a Proxmox VE guest config (`/etc/pve/qemu-server/VMID.conf`,
 * the format of qm.conf(5)) → a kvmctl VM definition. Volume ids (`local-lvm:vm-100-disk-0`,
 * `local:100/vm-100-disk-0.qcow2`, `local:iso/x.iso`) are resolved through the cluster's
 * `storage.cfg` (--storage-cfg; Proxmox's default `local` and `local-lvm` otherwise). Snapshot
 * and [PENDING] sections are noted, not applied. `args:` goes through the command-line importer.
 */
import { importCommandLine } from '../qemu/import.js';
import { baseMachine, finish, importError, Notes, safeName, sizeText, type Imported } from './model.js';

type X = Record<string, unknown>;
type Storage = { type: string; path?: string; vgname?: string; pool?: string };

/** storage.cfg: `TYPE: ID` lines, then indented `key value` lines. */
export function parseStorageCfg(text: string): Record<string, Storage> {
  const out: Record<string, Storage> = {};
  let cur: Storage | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '');
    const head = /^(\w+):\s*(\S+)\s*$/.exec(line);
    if (head) {
      cur = { type: head[1]! };
      out[head[2]!] = cur;
    } else if (cur && /^\s+\S/.test(line)) {
      const [k, ...v] = line.trim().split(/\s+/);
      if (k === 'path' || k === 'vgname' || k === 'pool') cur[k] = v.join(' ');
    }
  }
  return out;
}

/** Proxmox's defaults when no storage.cfg is given. */
const DEFAULT_STORAGE: Record<string, Storage> = { local: { type: 'dir', path: '/var/lib/vz' }, 'local-lvm': { type: 'lvmthin', vgname: 'pve' } };
const DIRLIKE = new Set(['dir', 'nfs', 'cifs', 'glusterfs', 'cephfs', 'btrfs']);
const NIC_MODELS = ['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3'];
/** Proxmox's own x86-64-vN models (its CPU model list) → the QEMU named model of that class. */
const PVE_CPU: Record<string, string> = { 'x86-64-v2': 'Nehalem', 'x86-64-v2-AES': 'Westmere', 'x86-64-v3': 'Haswell-noTSX', 'x86-64-v4': 'Skylake-Server-noTSX-IBRS' };

/** A Proxmox property string: `virtio=BC:..,bridge=vmbr0` or `local-lvm:vm-1-disk-0,size=4G` (first item without key). */
function props(v: string, firstKey: string): Record<string, string> {
  const out: Record<string, string> = {};
  v.split(',').forEach((part, i) => {
    const eq = part.indexOf('=');
    if (eq < 0 && i === 0) out[firstKey] = part;
    else if (eq >= 0) out[part.slice(0, eq)] = part.slice(eq + 1);
    else out[part] = '1';
  });
  return out;
}

export type ProxmoxOptions = { name?: string; source?: string; vmid?: string; storage?: Record<string, Storage> };

export function importProxmox(text: string, opts: ProxmoxOptions = {}): Imported {
  const source = opts.source ?? 'vm.conf';
  const n = new Notes();
  const conf: Record<string, string> = {};
  const desc: string[] = [];
  const sections: string[] = [];
  let section: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      sections.push(section!);
      continue;
    }
    if (section) continue; // snapshots and [PENDING]: noted below
    if (line.startsWith('#')) {
      desc.push(decodeURIComponent(line.slice(1)));
      continue;
    }
    const m = /^([a-z][a-z0-9_-]*):\s*(.*)$/.exec(line);
    if (m) conf[m[1]!] = m[2]!;
    else if (line.trim()) throw importError('IMPORT_BAD_CONF', `${source}: "${line.slice(0, 60)}" is not a "key: value" line`, 'give /etc/pve/qemu-server/VMID.conf');
  }
  if (!Object.keys(conf).length) throw importError('IMPORT_BAD_CONF', `${source}: no settings`, 'give /etc/pve/qemu-server/VMID.conf');
  const vmid = opts.vmid ?? /(\d+)\.conf$/.exec(source)?.[1];
  const storage = opts.storage ?? DEFAULT_STORAGE;
  if (!opts.storage) n.note("no --storage-cfg: volumes resolved with Proxmox's defaults (local = /var/lib/vz, local-lvm = LVM-thin on VG pve)");

  /** A volume id → a path, or why not. */
  const volume = (vol: string): { file: string; format?: string } | { reason: string } => {
    if (vol.startsWith('/')) return { file: vol, format: /\.(qcow2|vmdk|raw)$/.exec(vol)?.[1] };
    const m = /^([^:]+):(.+)$/.exec(vol);
    if (!m) return { reason: `"${vol}" is not a volume id` };
    const st = storage[m[1]!];
    if (!st) return { reason: `storage "${m[1]}" is not in storage.cfg` };
    const name = m[2]!;
    if (DIRLIKE.has(st.type)) {
      const base = st.path ?? `/mnt/pve/${m[1]}`;
      if (name.startsWith('iso/')) return { file: `${base}/template/iso/${name.slice(4)}` };
      return { file: `${base}/images/${name}`, format: /\.(qcow2|vmdk|raw)$/.exec(name)?.[1] };
    }
    if (st.type === 'lvm' || st.type === 'lvmthin') return st.vgname ? { file: `/dev/${st.vgname}/${name}`, format: 'raw' } : { reason: `storage "${m[1]}" has no vgname` };
    if (st.type === 'zfspool') return st.pool ? { file: `/dev/zvol/${st.pool}/${name}`, format: 'raw' } : { reason: `storage "${m[1]}" has no pool` };
    return { reason: `storage "${m[1]}" is ${st.type} (network storage): no local path` };
  };

  const vm: X = { kind: 'vm' };
  const networks: X[] = [];
  const name = opts.name ?? safeName(conf.name ?? (vmid ? `vm${vmid}` : undefined), vmid ? `vm${vmid}` : 'imported', n);
  vm.name = name;
  if (desc.length) vm.description = desc.join('\n').trim();

  const mach = baseMachine(conf.machine?.split(',')[0] || 'pc');
  vm.machine = { type: mach.type, accel: conf.kvm === '0' ? ['tcg'] : ['kvm', 'tcg'] };
  if (mach.versioned) n.translated(`machine ${conf.machine}`, `${mach.type} (the host QEMU's current ${mach.type})`);
  else n.kept('machine');
  if (!conf.machine) n.note("no machine: Proxmox's default is pc (i440fx); imported as machine type pc");

  const memStr = conf.memory?.includes('=') ? props(conf.memory, 'current').current : conf.memory;
  vm.memory = sizeText(Number(memStr ?? 512) * 1024 ** 2);
  n.kept('memory');
  if (conf.balloon && conf.balloon !== '0') n.lost('balloon', `ballooning down to ${conf.balloon} MiB is not kept`);

  const sockets = Number(conf.sockets ?? 1);
  const cores = Number(conf.cores ?? 1);
  const cpu: X = { count: (Number(conf.vcpus) || sockets * cores) };
  if (!conf.vcpus || Number(conf.vcpus) === sockets * cores) Object.assign(cpu, { sockets, cores, threads: 1 });
  const cp = props(conf.cpu ?? 'kvm64', 'cputype');
  const model = cp.cputype!;
  if (PVE_CPU[model]) {
    cpu.model = PVE_CPU[model];
    n.translated(`cpu ${model}`, `${PVE_CPU[model]} (QEMU's named model of that class; ${model} is Proxmox's own)`);
  } else cpu.model = model;
  if (cp.flags) n.lost('cpu flags', `${cp.flags} not kept`);
  vm.cpu = cpu;
  n.kept('vcpus');
  if (conf.numa === '1') n.lost('numa', 'not kept (issue #20)');
  if (conf.hugepages) n.lost('hugepages', 'not kept (issue #20)');
  if (conf.affinity) n.lost('affinity', 'CPU pinning not kept (issue #20)');

  // firmware
  if (conf.bios === 'ovmf') {
    const ef = conf.efidisk0 ? props(conf.efidisk0, 'volume') : undefined;
    const secure = ef?.['pre-enrolled-keys'] === '1';
    const fw: X = { type: secure && mach.type === 'q35' ? 'uefi-secure' : 'uefi' };
    if (ef) {
      const v = volume(ef.volume!);
      if ('file' in v) {
        fw.vars = v.file;
        if (v.file.startsWith('/dev/'))
          n.translated('efidisk0', `firmware.vars is the volume ${v.file}; a block volume is larger than OVMF's vars file, which kvmctl refuses at start: copy its first 540672 bytes (4m efitype) into a file in a storage root and point firmware.vars at it`);
        else n.kept('efidisk0 (the VM\'s UEFI vars)');
      } else n.lost('efidisk0', `${v.reason}: the VM gets fresh UEFI vars (boot entries and enrolled keys are lost)`);
    }
    if (secure && mach.type !== 'q35') n.lost('secure boot', 'pre-enrolled keys need q35: imported as plain uefi');
    vm.firmware = fw;
    n.kept(`firmware ${fw.type}`);
  }
  if (conf.tpmstate0) {
    const t = props(conf.tpmstate0, 'volume');
    const version = t.version === 'v1.2' ? '1.2' : '2.0';
    const v = volume(t.volume!);
    // Proxmox runs swtpm with its file backend on this volume: kvmctl does the same (tpm.state), so the state comes along as it is.
    if ('file' in v) {
      vm.tpm = { version, state: v.file };
      n.kept(`tpmstate0 (TPM ${version}: its state volume ${v.file} is used as it is, through swtpm's file backend)`);
    } else {
      vm.tpm = { version };
      n.lost('tpmstate0 state', `${v.reason}: the VM gets a fresh TPM ${version} (sealed keys such as BitLocker's need their recovery keys)`);
    }
  }
  if (conf.agent && props(conf.agent, 'enabled').enabled === '1') {
    vm.agent = true;
    n.kept('agent');
  }

  // disks and CD-ROMs, in Proxmox's bus order
  const disks: X[] = [];
  const cdroms: X[] = [];
  const bus: Record<string, string> = { scsi: 'scsi', virtio: 'virtio', sata: 'sata', ide: 'ide' };
  const keys = Object.keys(conf).filter((k) => /^(scsi|virtio|sata|ide)\d+$/.test(k)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  for (const k of keys) {
    const p = props(conf[k]!, 'volume');
    if (p.media === 'cdrom') {
      if (p.volume === 'none') { n.lost(k, 'an empty CD-ROM drive is not kept'); continue; }
      if (/cloudinit/.test(p.volume!)) { n.translated(k, 'the Proxmox cloud-init drive: kvmctl builds its own seed from cloudInit:'); continue; }
      const v = volume(p.volume!);
      if ('reason' in v) { n.lost(k, v.reason); continue; }
      cdroms.push({ file: v.file });
      n.kept(k);
      continue;
    }
    const v = volume(p.volume!);
    if ('reason' in v) { n.lost(k, `${v.reason}: not imported`); continue; }
    const disk: X = { id: k, file: v.file, interface: bus[k.replace(/\d+$/, '')]! };
    if (v.format) disk.format = v.format;
    else if (p.format) disk.format = p.format;
    if (p.cache && p.cache !== 'default') disk.cache = p.cache;
    if (p.discard === 'on') disk.discard = 'unmap';
    if (p.aio) disk.aio = p.aio;
    if (p.ro === '1') disk.readOnly = true;
    if (p.iothread === '1') n.lost(`${k} iothread`, 'not kept (issue #20)');
    if (p.backup === '0') n.note(`${k}: excluded from Proxmox backups (backup=0)`);
    if (k.startsWith('scsi') && conf.scsihw && !/^virtio-scsi/.test(conf.scsihw)) n.translated(`${k} controller ${conf.scsihw}`, 'virtio-scsi');
    disks.push(disk);
    n.kept(k);
  }
  if (disks.length) vm.disks = disks;
  if (cdroms.length) vm.cdroms = cdroms;
  const order = conf.boot && /order=/.test(conf.boot) ? props(conf.boot, 'legacy').order?.split(';') ?? [] : [];
  const bootOrder = [...new Set(order.map((d) => (/^net/.test(d) ? 'network' : cdroms.length && /^ide\d/.test(d) && !disks.some((x) => x.id === d) ? 'cdrom' : disks.some((x) => x.id === d) ? 'disk' : undefined)).filter((x) => x !== undefined))] as string[];
  if (bootOrder.length && !(bootOrder.length === 1 && bootOrder[0] === 'disk')) vm.boot = { order: bootOrder };

  // NICs
  const nics: X[] = [];
  for (const k of Object.keys(conf).filter((x) => /^net\d+$/.test(x)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) {
    const p = props(conf[k]!, 'model');
    const modelKey = NIC_MODELS.find((m) => m in p) ?? (p.model?.split('=')[0] ?? 'virtio');
    const mac = p[modelKey];
    const nic: X = { model: NIC_MODELS.includes(modelKey) ? modelKey : 'virtio' };
    if (!NIC_MODELS.includes(modelKey)) n.translated(`${k} model ${modelKey}`, 'virtio');
    if (p.bridge) {
      nic.network = p.bridge;
      if (!networks.some((x) => x.name === p.bridge)) networks.push({ kind: 'network', name: p.bridge, type: 'bridge' });
    } else {
      nic.user = true;
      n.translated(`${k} without bridge`, 'user-mode networking (Proxmox\'s NAT without a bridge)');
    }
    if (mac && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) nic.mac = mac.toLowerCase();
    if (p.tag) n.lost(`${k} tag=${p.tag}`, 'VLAN tags are not kept');
    if (p.firewall === '1') n.lost(`${k} firewall`, "Proxmox's firewall rules are not imported");
    if (p.rate) n.lost(`${k} rate`, 'bandwidth limits are not kept');
    if (p.link_down === '1') n.lost(`${k} link_down`, 'not kept: the link is up');
    nics.push(nic);
    n.kept(k);
  }
  vm.nics = nics;

  // start at boot
  if (conf.onboot === '1') {
    const st = conf.startup ? props(conf.startup, 'order') : {};
    vm.autostart = { enabled: true, ...(st.order ? { order: Number(st.order) } : {}), ...(st.up ? { delay: Number(st.up) } : {}) };
    n.kept('onboot/startup');
  }
  if (conf.vga && !/^(std|none)/.test(conf.vga)) n.translated(`vga ${conf.vga}`, 'the standard VGA on VNC');
  if (conf.vga !== 'none') vm.display = { type: 'vnc' };

  // cloud-init keys
  if (conf.ciuser || conf.sshkeys || conf.ipconfig0) {
    const keys = conf.sshkeys ? decodeURIComponent(conf.sshkeys).split('\n').map((k) => k.trim()).filter(Boolean) : [];
    const user = conf.ciuser;
    vm.cloudInit = { userData: { ...(user ? { users: [{ name: user, sshAuthorizedKeys: keys, sudo: true }] } : { sshAuthorizedKeys: keys }), hostname: name.toLowerCase().replace(/[^a-z0-9-]/g, '-') } };
    n.translated('cloud-init (ciuser, sshkeys)', 'cloudInit: userData (kvmctl builds the seed)');
    if (conf.cipassword) n.lost('cipassword', 'a password is never imported: use SSH keys');
    if (conf.ipconfig0 && !/ip=dhcp/.test(conf.ipconfig0)) n.lost('ipconfig0', `${conf.ipconfig0}: static addressing is not kept (write networkConfig)`);
  }
  for (const k of ['hostpci0', 'usb0', 'serial0', 'audio0', 'watchdog', 'rng0']) if (conf[k]) n.lost(k, 'not kept (issue #20 for passthrough)');

  if (conf.args) {
    const r = importCommandLine(conf.args, { name, source: `${source} args` });
    vm.extraArgs = r.spec.extraArgs;
    if (r.spec.disks.length) vm.disks = [...disks, ...r.spec.disks.map((d) => ({ file: d.file, interface: d.interface, ...(d.format ? { format: d.format } : {}) }))];
    n.translated('args', `through the command-line importer: ${r.spec.extraArgs.length} word(s) in extraArgs${r.spec.disks.length ? `, ${r.spec.disks.length} disk(s)` : ''}`);
    for (const x of r.notes.filter((y) => y.level === 'warning')) n.note(`args: ${x.message}`);
  }
  const snaps = sections.filter((s) => s !== 'PENDING' && s !== 'special:cloudinit');
  if (snaps.length) n.note(`${snaps.length} snapshot section(s) (${snaps.join(', ')}) not imported: qcow2 disks keep their internal snapshots (kvmctl snapshot NAME --list); LVM/ZFS snapshots stay in the storage`);
  if (sections.includes('PENDING')) n.lost('[PENDING]', 'pending changes were never applied by Proxmox and are not imported');
  if (conf.lock) n.note(`the VM was locked (${conf.lock}) in Proxmox when this config was read`);
  return finish('proxmox', name, vm, networks, n, source);
}
