/**
 * Hotplug of disks and NICs into a running VM, over QMP (the service layer under the API's device
 * routes and `kvmctl attach-disk|detach-disk|attach-nic|detach-nic`; src/vm/devices.ts decides
 * when, this module does it).
 *
 *   disk in:  blockdev-add (format node named by the disk id, over a file node; an RBD volume: the
 *             storage's secret object-add from a 0600 key file, then the rbd node and a raw node
 *             over it, as at start) → device_add
 *             virtio-blk-pci on a free spare root port (q35: `kvhpN`, machine.hotplugSlots; pc:
 *             its own PCI bus) or scsi-hd on the VM's virtio-scsi controller. A failed device_add
 *             deletes the node again.
 *   disk out: device_del → DEVICE_DELETED (the guest lets go: ACPI / PCIe hotplug) → blockdev-del
 *             of a node kvmctl added (a disk of the command line goes with its device).
 *   NIC in:   a tap in the VM's network namespace (src/net/attach.ts prepareHotNic) → netdev_add →
 *             device_add; a failure removes the netdev and the tap.
 *   NIC out:  device_del → DEVICE_DELETED → netdev_del → the tap removed.
 *
 * Why a device cannot be hotplugged (microvm, no free port, a device on q35's root bus, a
 * macvtap, an IDE/SATA disk) is a `HotplugImpossible`: devices.ts then changes only the definition when the caller
 * allowed that. The caller holds the VM's lock.
 */
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { HostFacts } from '../host/facts.js';
import type { Paths } from '../host/paths.js';
import type { DiskSpec, VmSpec } from '../definition/vm.js';
import { diskFormat, nicId } from '../qemu/argv.js';
import type { NicAttachment } from '../qemu/attachments.js';
import { HOTPLUG_PORT_PREFIX } from '../qemu/platform.js';
import { rbdBlockdevArgs, secretId, type RbdVolumeArg } from '../qemu/argv-rbd.js';
import { QmpClient } from '../qmp/client.js';

/** How long a guest gets to release a device it was asked to give up (TCG guests on a loaded host are slow). */
export const UNPLUG_TIMEOUT_MS = 60_000;

/** Not an error of the request: this device cannot be (un)plugged in this VM while it runs. */
export class HotplugImpossible extends KvmError {
  constructor(why: string, hint?: string) {
    super('HOTPLUG_IMPOSSIBLE', why, { exit: 2, hint: hint ?? 'the definition can still be changed: the device is then there (or gone) from the next start' });
  }
}

const NIC_DRIVER: Record<string, string> = { virtio: 'virtio-net-pci', e1000: 'e1000', e1000e: 'e1000e', rtl8139: 'rtl8139', vmxnet3: 'vmxnet3' };
/** The qdev id kvmctl gives a hotplugged disk's device (NICs: `ID-dev`, as on the command line). */
export const hotDiskDevice = (id: string) => `${id}-blk`;

type PciDev = { qdev_id?: string; pci_bridge?: { devices?: PciDev[] } };

export async function withQmp<T>(socket: string, fn: (q: QmpClient) => Promise<T>): Promise<T> {
  const q = await QmpClient.connect(socket, { timeoutMs: 5000 });
  try {
    return await fn(q);
  } finally {
    await q.close().catch(() => undefined);
  }
}

/** Where a new PCI device goes: a free spare root port (q35), the PCI bus itself (pc), or nowhere. */
export async function pickPciBus(q: QmpClient, vmName: string): Promise<string | undefined> {
  const type = String(await q.execute('qom-get', { path: '/machine', property: 'type' }));
  if (/microvm/.test(type)) throw new HotplugImpossible(`VM "${vmName}" runs on machine microvm, which has no PCI bus to hotplug into`, 'use machine q35 (without profile: fast) for hotplug');
  if (!/q35/.test(type)) return undefined; // pc (i440fx): its PCI bus takes hotplug itself
  const buses = (await q.execute('query-pci')) as { devices: PciDev[] }[];
  const ports = buses.flatMap((b) => b.devices).filter((d) => d.qdev_id?.startsWith(HOTPLUG_PORT_PREFIX));
  const free = ports.find((d) => (d.pci_bridge?.devices ?? []).length === 0);
  if (!free) {
    throw new HotplugImpossible(
      ports.length === 0
        ? `VM "${vmName}" was started without spare PCIe root ports (q35's root bus takes no hotplug)`
        : `VM "${vmName}" has no free hotplug slot (all ${ports.length} spare root ports are in use)`,
      'raise machine.hotplugSlots (q35; the default is 4) and restart the VM; the definition can be changed now for the next start',
    );
  }
  return free.qdev_id!;
}

const isQmpError = (e: unknown): e is KvmError => e instanceof KvmError && e.code === 'QMP_ERROR';

/** device_add, with QEMU's "cannot" answers turned into HotplugImpossible. */
async function deviceAdd(q: QmpClient, args: Record<string, unknown>): Promise<void> {
  try {
    await q.execute('device_add', args, { timeoutMs: 30_000 });
  } catch (e) {
    if (isQmpError(e) && /does not support hotplugging|not hotpluggable|no 'bus'|Bus .* not found/i.test(e.message)) throw new HotplugImpossible(`QEMU cannot hotplug ${String(args.driver)} here: ${e.message}`);
    throw e;
  }
}

/** device_del and wait until the guest has released it (DEVICE_DELETED for that device). */
async function deviceDel(q: QmpClient, idOrPath: string, what: string, timeoutMs: number): Promise<void> {
  const gone = q.waitForEvent('DEVICE_DELETED', { timeoutMs, predicate: (ev) => ev.data.device === idOrPath || ev.data.path === idOrPath || ev.data.path === `/machine/peripheral/${idOrPath}` });
  gone.catch(() => undefined);
  try {
    await q.execute('device_del', { id: idOrPath }, { timeoutMs: 30_000 });
  } catch (e) {
    if (isQmpError(e) && /does not support hotplugging|not hotpluggable|hot.?unplug/i.test(e.message)) {
      throw new HotplugImpossible(`${what} cannot be unplugged while the VM runs: ${e.message.replace(/^device_del: \w+: /, '')}`, 'devices of the command line sit on q35\'s root bus, which takes no hotplug; the definition can be changed now and the device is gone from the next start');
    }
    throw e;
  }
  try {
    await gone;
  } catch (e) {
    if (e instanceof KvmError && e.code === 'QMP_TIMEOUT') {
      throw new KvmError('UNPLUG_TIMEOUT', `the guest did not release ${what} within ${Math.round(timeoutMs / 1000)} s`, {
        hint: 'a guest without ACPI/PCIe hotplug support (or still booting) ignores the request; the definition was not changed — try again, or change it for the next start',
      });
    }
    throw e;
  }
}

/** blockdev-add options of a file disk: the format node (named by the disk id) over a file node. */
export function blockdevOptions(d: DiskSpec, id: string, file: string, format: string): Record<string, unknown> {
  const cache = d.cache ?? 'writeback';
  const direct = cache === 'none' || cache === 'directsync';
  const cacheOpt = { direct, 'no-flush': cache === 'unsafe' };
  return {
    driver: format,
    'node-name': id,
    'read-only': d.readOnly,
    cache: cacheOpt,
    ...(d.discard ? { discard: d.discard } : {}),
    ...(d.detectZeroes ? { 'detect-zeroes': d.detectZeroes } : {}),
    file: { driver: 'file', filename: file, 'read-only': d.readOnly, cache: cacheOpt, ...(d.aio ? { aio: d.aio } : {}) },
  };
}

/**
 * The storage's secret object (once per storage: a VM started with a volume of it has it already)
 * and the rbd protocol node: the same JSON as the start path's -object/-blockdev (argv-rbd.ts).
 */
async function addRbdNodes(q: QmpClient, id: string, v: RbdVolumeArg, d: DiskSpec): Promise<'on' | 'off'> {
  const objects = (await q.execute('qom-list', { path: '/objects' })) as { name: string }[];
  if (!objects.some((o) => o.name === secretId(v.storage))) await q.execute('object-add', { 'qom-type': 'secret', id: secretId(v.storage), file: v.keyFile, format: 'base64' });
  const { args, writeCache } = rbdBlockdevArgs(id, v, d);
  const [proto, fmt] = [JSON.parse(args[1]!) as Record<string, unknown>, JSON.parse(args[3]!) as Record<string, unknown>];
  await q.execute('blockdev-add', proto, { timeoutMs: 60_000 }); // librbd connects to the monitors here
  try {
    await q.execute('blockdev-add', fmt, { timeoutMs: 30_000 });
  } catch (e) {
    await q.execute('blockdev-del', { 'node-name': `${id}-rbd` }).catch(() => undefined);
    throw e;
  }
  return writeCache;
}

const IF_NO_HOTPLUG = (id: string, iface: string) =>
  new HotplugImpossible(`disk ${id} uses interface ${iface}, which QEMU cannot hotplug (IDE and SATA controllers take no hotplug; nvme is not offered here)`, 'use interface virtio or scsi for a disk added while the VM runs, or add it to the definition: it is there from the next start');

/** Plug disk `i` of `vm` (already in the spec) into the running QEMU; a volume disk needs `volume` (src/storage/attach.ts resolveVolumes, its key file written). */
export async function plugDisk(q: QmpClient, vm: VmSpec, i: number, imagesDir: string, volume?: RbdVolumeArg): Promise<{ device: string; bus?: string }> {
  const d = vm.disks[i]!;
  const id = d.id ?? `disk${i}`;
  if (d.file === undefined && !volume) throw new HotplugImpossible(`disk ${id} is a volume (${d.storage}/${d.volume}) whose storage was not resolved`);
  if (d.interface !== 'virtio' && d.interface !== 'scsi') throw IF_NO_HOTPLUG(id, d.interface);
  const bus = d.interface === 'virtio' ? await pickPciBus(q, vm.name) : 'scsi0.0';
  const device = hotDiskDevice(id);
  let rbdWriteCache: 'on' | 'off' | undefined;
  if (d.file !== undefined) {
    const file = path.isAbsolute(d.file) ? d.file : path.join(imagesDir, d.file);
    await q.execute('blockdev-add', blockdevOptions(d, id, file, diskFormat(d)), { timeoutMs: 30_000 });
  } else rbdWriteCache = await addRbdNodes(q, id, volume!, d);
  try {
    const writeCache = rbdWriteCache === 'off' ? 'off' : rbdWriteCache === undefined && (d.cache === 'writethrough' || d.cache === 'directsync') ? 'off' : undefined;
    const props = { drive: id, id: device, ...(d.serial ? { serial: d.serial } : {}), ...(writeCache ? { 'write-cache': writeCache } : {}) };
    if (d.interface === 'virtio') await deviceAdd(q, { driver: 'virtio-blk-pci', ...props, ...(bus ? { bus } : {}) });
    else {
      try {
        await deviceAdd(q, { driver: 'scsi-hd', ...props, bus });
      } catch (e) {
        if (e instanceof KvmError && /Bus 'scsi0.0' not found/.test(e.message)) throw new HotplugImpossible(`VM "${vm.name}" has no SCSI controller (it had no scsi disk at start)`, 'use interface: virtio, or restart it');
        throw e;
      }
    }
  } catch (e) {
    await q.execute('blockdev-del', { 'node-name': id }).catch(() => undefined); // undone
    if (d.file === undefined) await q.execute('blockdev-del', { 'node-name': `${id}-rbd` }).catch(() => undefined);
    throw e;
  }
  return { device, ...(bus ? { bus } : {}) };
}

type BlockInfo = { device: string; qdev?: string; inserted?: { 'node-name'?: string } };

/** Unplug disk `id` from the running QEMU: its device, then the node kvmctl added for it. */
export async function unplugDisk(q: QmpClient, id: string, timeoutMs = UNPLUG_TIMEOUT_MS): Promise<{ device: string }> {
  const blocks = (await q.execute('query-block')) as BlockInfo[];
  const hot = hotDiskDevice(id);
  const b = blocks.find((x) => x.device === id) ?? blocks.find((x) => x.inserted?.['node-name'] === id || x.qdev === hot || x.qdev === `/machine/peripheral/${hot}/virtio-backend`);
  if (!b?.qdev) throw new HotplugImpossible(`the running VM has no device for disk ${id} (it was added to the definition after the VM started?)`);
  // virtio-blk reports its backend child; the PCI device is its parent.
  const dev = b.qdev.replace(/\/virtio-backend$/, '');
  await deviceDel(q, dev, `disk ${id}`, timeoutMs);
  // A disk of the command line (-drive, named) is deleted with its device; a node kvmctl added is not.
  if (!b.device && b.inserted?.['node-name']) {
    const node = b.inserted['node-name'];
    await q.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    // A volume's rbd protocol node under it (argv-rbd.ts: ID-rbd) goes too: QEMU then closes the image (its watcher and lock).
    await q.execute('blockdev-del', { 'node-name': `${node}-rbd` }).catch(() => undefined);
  }
  return { device: dev };
}

export type HotNicPlan = { attachment: NicAttachment; mac: string };

/** Plug NIC `i` of `vm` (already in the spec, its tap made) into the running QEMU. */
export async function plugNic(q: QmpClient, vm: VmSpec, i: number, plan: HotNicPlan, facts: Pick<HostFacts, 'vhostNet'>): Promise<{ device: string; bus?: string }> {
  const nic = vm.nics[i]!;
  const id = nicId(nic, i);
  if ((nic.queues ?? 1) > 1) throw new HotplugImpossible(`NIC ${id} asks for ${nic.queues} queues: kvmctl hotplugs single-queue NICs`);
  const bus = await pickPciBus(q, vm.name);
  const at = plan.attachment;
  if (at.kind === 'fd') throw new HotplugImpossible(`NIC ${id} is a macvtap (an fd QEMU would need over QMP): kvmctl does not hotplug it`);
  const netdev =
    at.kind === 'user'
      ? { type: 'user', id, ...(at.forwards.length ? { hostfwd: at.forwards.map((f) => ({ str: `${f.proto}:${f.hostAddr ?? ''}:${f.hostPort}-:${f.guestPort}` })) } : {}) }
      : { type: 'tap', id, ifname: at.ifname, script: 'no', downscript: 'no', vhost: at.vhost && facts.vhostNet && nic.vhost !== 'off' };
  await q.execute('netdev_add', netdev, { timeoutMs: 30_000 });
  const device = `${id}-dev`;
  try {
    await deviceAdd(q, { driver: NIC_DRIVER[nic.model] ?? 'virtio-net-pci', netdev: id, mac: plan.mac, id: device, ...(bus ? { bus } : {}) });
  } catch (e) {
    await q.execute('netdev_del', { id }).catch(() => undefined); // undone (the caller removes the tap)
    throw e;
  }
  return { device, ...(bus ? { bus } : {}) };
}

/** Unplug NIC `id`: its device (the guest lets go), then its netdev. */
export async function unplugNic(q: QmpClient, id: string, timeoutMs = UNPLUG_TIMEOUT_MS): Promise<{ device: string }> {
  const device = `${id}-dev`;
  await deviceDel(q, device, `NIC ${id}`, timeoutMs);
  await q.execute('netdev_del', { id }).catch(() => undefined);
  return { device };
}
