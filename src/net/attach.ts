/**
 * A VM's NICs at start and stop: create and attach what each NIC needs, hand the argv builder a
 * NicAttachment per NIC, and remove it all again.
 *
 *   network bridge/host-only/nat → the network is brought up if needed (nat: always re-checked), the VM gets its own tap
 *                              (kv<hash>n<i>, alias kvmctl:vm=NAME,nic=ID, owned by runAs),
 *                              enslaved and up → {kind:'tap', ifname}
 *   network macvtap          → kv<hash>m<i> on the parent with the NIC's MAC (deterministic when
 *                              the definition has none); /dev/tapN resolved by major:minor,
 *                              chowned, opened → {kind:'fd', fd: 3+k, mac}
 *   tap: NAME                → must exist (QEMU would silently make a throw-away tap otherwise);
 *                              a macvtap given by name is opened and passed as an fd, and its MAC
 *                              must agree with the definition's (MAC_MISMATCH otherwise)
 *   user / network type user → {kind:'user', forwards}
 *
 * What was created is recorded in `<run>/vms/NAME/nics.json` (and marked in each interface's
 * alias), so releaseNics() and `net gc` can undo it after a crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import type { HostFacts } from '../host/facts.js';
import { vmRunDir, type Paths } from '../host/paths.js';
import type { NicAttachment } from '../qemu/attachments.js';
import type { NetworkSpec } from '../definition/network.js';
import { bridgeIfname } from '../definition/network-views.js';
import { readAllNetworks } from '../definition/store.js';
import type { NicSpec, VmSpec } from '../definition/vm.js';
import { bridgeUp } from './bridge.js';
import { withNetLock } from './net-lock.js';
import { deleteLink, getLink, listLinks, parseOwner, type IpOpts } from './ip.js';
import { createMacvtap, openMacvtap } from './macvtap.js';
import { createTap, vmLinkName } from './tap.js';
import { deriveMac } from './mac.js';

export { deriveMac };

export type PreparedNics = {
  attachments: NicAttachment[];
  /** fds to put at stdio[3], [4], ... in order; attachment fd numbers match */
  fds: number[];
  macs: string[];
  /** Things the user should know (vhost off, foreign bridge used as is). */
  warnings: string[];
  /** Close this process's copies of `fds` (call right after QEMU was spawned; idempotent). */
  closeFds(): void;
  /** undo everything done (idempotent) */
  release(): Promise<void>;
};


function nicIdOf(nic: NicSpec, i: number): string {
  return nic.id ?? `net${i}`;
}

function vhostFor(nic: NicSpec, facts: HostFacts): boolean {
  return facts.vhostNet && nic.vhost !== 'off';
}

function networkOf(vm: VmSpec, nic: NicSpec, i: number, nets: Map<string, NetworkSpec>): NetworkSpec {
  const net = nets.get(nic.network!);
  if (!net) {
    throw badInput('NETWORK_NOT_FOUND', `VM "${vm.name}" nics[${i}]: no network named "${nic.network}"`, `define it (kvmctl net create -f FILE) or check the name (kvmctl net list)`);
  }
  return net;
}

/** The attachments `start` will use, without touching the host (for `kvmctl cmdline`). */
export function plannedAttachments(vm: VmSpec, nets: Map<string, NetworkSpec>, facts: HostFacts): NicAttachment[] {
  let nextFd = 3;
  return vm.nics.map((nic, i): NicAttachment => {
    const vhost = vhostFor(nic, facts);
    if (nic.user !== undefined && nic.user !== false) return { kind: 'user', forwards: typeof nic.user === 'object' ? nic.user.forwards : [] };
    if (nic.tap !== undefined) return { kind: 'tap', ifname: nic.tap, vhost };
    const net = networkOf(vm, nic, i, nets);
    if (net.type === 'user') return { kind: 'user', forwards: net.forwards };
    if (net.type === 'macvtap') return { kind: 'fd', fd: nextFd++, vhost, mac: (nic.mac ?? deriveMac(vm.name, nicIdOf(nic, i))).toLowerCase() };
    return { kind: 'tap', ifname: vmLinkName(vm.name, i, 'tap'), vhost };
  });
}

/** A bridge, host-only or nat network's bridge, brought up when missing (nat: always, which refreshes dnsmasq's static leases). */
async function ensureBridge(net: Exclude<NetworkSpec, { type: 'macvtap' | 'user' }>, paths: Paths, netns: string | undefined, warnings: string[]): Promise<string> {
  const br = bridgeIfname(net)!;
  if (net.type === 'nat') {
    const { natUp } = await import('./nat/nat.js');
    const up = await natUp(net, { paths, netns, warn: (m) => warnings.push(m) });
    warnings.push(...up.steps.filter((s) => !s.startsWith('restarted dnsmasq')).map((s) => `network ${net.name}: ${s}`));
  } else if (!(await getLink(br, { netns }))) {
    // Under the network's lock, looked at again: another VM's start may be bringing it up now.
    await withNetLock(paths, net.name, async () => {
      if (await getLink(br, { netns })) return;
      const up = await bridgeUp(net, { paths, netns, warn: (m) => warnings.push(m) });
      warnings.push(...up.steps.map((s) => `network ${net.name}: ${s}`));
    });
  }
  return br;
}

type NicRecord = { netns?: string; links: { ifname: string; nic: string }[]; nodes: string[] };

function recordFile(paths: Paths, vmName: string): string {
  return path.join(vmRunDir(paths, vmName), 'nics.json');
}

function saveRecord(paths: Paths, vmName: string, rec: NicRecord): void {
  const f = recordFile(paths, vmName);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(rec, null, 2));
  fs.renameSync(`${f}.tmp`, f);
}

export async function prepareNics(
  vm: VmSpec,
  opts: { paths: Paths; facts: HostFacts; runAs?: { uid: number; gid: number }; netns?: string; nets?: Map<string, NetworkSpec> },
): Promise<PreparedNics> {
  const ipo: IpOpts = { netns: opts.netns };
  const nets = opts.nets ?? (vm.nics.some((n) => n.network !== undefined) ? readAllNetworks(opts.paths) : new Map<string, NetworkSpec>());
  const privateDir = path.join(vmRunDir(opts.paths, vm.name), 'dev');
  const rec: NicRecord = { netns: opts.netns, links: [], nodes: [] };
  const attachments: NicAttachment[] = [];
  const fds: number[] = [];
  const macs: string[] = [];
  const warnings: string[] = [];
  let fdsClosed = false;
  const closeFds = () => {
    if (fdsClosed) return;
    fdsClosed = true;
    for (const fd of fds) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  };
  let released = false;
  const release = async () => {
    closeFds();
    if (released) return;
    released = true;
    for (const l of [...rec.links].reverse()) await deleteLink(l.ifname, ipo).catch(() => undefined);
    for (const n of rec.nodes) fs.rmSync(n, { force: true });
    fs.rmSync(recordFile(opts.paths, vm.name), { force: true });
  };

  const openFd = async (ifname: string, want: string | undefined, i: number, vhost: boolean) => {
    const link = await getLink(ifname, ipo);
    const have = link?.address?.toLowerCase();
    if (want && have && want.toLowerCase() !== have) {
      throw new KvmError('MAC_MISMATCH', `VM "${vm.name}" nics[${i}]: the definition's MAC ${want.toLowerCase()} differs from macvtap ${ifname}'s ${have}; a macvtap passes only frames for its own MAC`, {
        hint: `remove mac: from the NIC (the macvtap's MAC is then used), or set ${ifname}'s address (ip link set dev ${ifname} address ${want.toLowerCase()})`,
        exit: 2,
      });
    }
    const o = await openMacvtap(ifname, { privateDir, user: opts.runAs }, ipo);
    if (o.private) {
      rec.nodes.push(o.path);
      saveRecord(opts.paths, vm.name, rec);
    }
    fds.push(o.fd);
    const mac = have ?? want!;
    attachments.push({ kind: 'fd', fd: 2 + fds.length, vhost, mac });
    macs.push(mac);
  };

  try {
    for (const [i, nic] of vm.nics.entries()) {
      const id = nicIdOf(nic, i);
      const mac = (nic.mac ?? deriveMac(vm.name, id)).toLowerCase();
      const vhost = vhostFor(nic, opts.facts);
      if (nic.vhost === 'on' && !opts.facts.vhostNet) warnings.push(`${id}: vhost: on was asked but /dev/vhost-net is missing; vhost is off (QEMU would abort)`);
      if (nic.user !== undefined && nic.user !== false) {
        attachments.push({ kind: 'user', forwards: typeof nic.user === 'object' ? nic.user.forwards : [] });
        macs.push(mac);
        continue;
      }
      if (nic.tap !== undefined) {
        const l = await getLink(nic.tap, ipo);
        if (!l) {
          throw new KvmError('TAP_NOT_FOUND', `VM "${vm.name}" nics[${i}]: tap "${nic.tap}" does not exist${opts.netns ? ` in namespace ${opts.netns}` : ''}`, {
            hint: `create it (kvmctl net up for a network with taps: [${nic.tap}], or the host's boot config), or attach the NIC to a network instead`,
            exit: 2,
          });
        }
        if (l.linkinfo?.info_kind === 'macvtap') await openFd(nic.tap, nic.mac, i, vhost);
        else {
          if (l.linkinfo?.info_kind !== 'tun') throw new KvmError('NOT_A_TAP', `VM "${vm.name}" nics[${i}]: "${nic.tap}" is a ${l.linkinfo?.info_kind ?? 'plain'} interface, not a tap`, { exit: 2 });
          attachments.push({ kind: 'tap', ifname: nic.tap, vhost });
          macs.push(mac);
        }
        continue;
      }
      const net = networkOf(vm, nic, i, nets);
      if (net.type === 'user') {
        attachments.push({ kind: 'user', forwards: net.forwards });
        macs.push(mac);
        continue;
      }
      const kind = net.type === 'macvtap' ? 'macvtap' : 'tap';
      const ifname = vmLinkName(vm.name, i, kind);
      const existing = await getLink(ifname, ipo);
      if (existing) {
        const o = parseOwner(existing.ifalias);
        if (o?.kind !== 'vm' || o.vm !== vm.name) {
          throw new KvmError('IFACE_CONFLICT', `VM "${vm.name}" nics[${i}]: interface ${ifname} exists and was not made by kvmctl for this VM`, { hint: 'rename the VM or remove that interface' });
        }
      }
      if (net.type === 'macvtap') {
        if (existing) {
          // A leftover of this VM: reuse it, but its MAC must agree with the definition's.
          rec.links.push({ ifname, nic: id });
          saveRecord(opts.paths, vm.name, rec);
          await openFd(ifname, nic.mac, i, vhost);
        } else {
          const parent = await getLink(net.parent, ipo);
          if (!parent) throw new KvmError('PARENT_NOT_FOUND', `network "${net.name}": parent "${net.parent}" does not exist`, { exit: 2 });
          // Recorded before it exists: a kvmctl killed right after creating it leaves a record to undo it by.
          rec.links.push({ ifname, nic: id });
          saveRecord(opts.paths, vm.name, rec);
          await createMacvtap(ifname, { parent: net.parent, mode: net.mode, mac, owner: { kind: 'vm', vm: vm.name, nic: id } }, ipo);
          await openFd(ifname, mac, i, vhost);
        }
        continue;
      }
      // bridge / host-only / nat
      const br = await ensureBridge(net, opts.paths, opts.netns, warnings);
      if (existing) await deleteLink(ifname, ipo); // leftover of a crash: start clean
      rec.links.push({ ifname, nic: id }); // recorded first, as above
      saveRecord(opts.paths, vm.name, rec);
      await createTap(ifname, { owner: { kind: 'vm', vm: vm.name, nic: id }, user: opts.runAs, master: br, mtu: net.mtu, queues: nic.queues }, ipo);
      attachments.push({ kind: 'tap', ifname, vhost });
      macs.push(mac);
    }
  } catch (e) {
    await release();
    throw e;
  }
  if (rec.links.length || rec.nodes.length) saveRecord(opts.paths, vm.name, rec);
  return { attachments, fds, macs, warnings, closeFds, release };
}

/** After stop or crash: remove what prepareNics made for this VM (by its record, then by alias). */
export async function releaseNics(vmName: string, paths: Paths, o: { netns?: string } = {}): Promise<void> {
  let rec: NicRecord | undefined;
  try {
    rec = JSON.parse(fs.readFileSync(recordFile(paths, vmName), 'utf8')) as NicRecord;
  } catch {
    rec = undefined;
  }
  const ipo: IpOpts = { netns: rec?.netns ?? o.netns };
  for (const l of await listLinks(ipo)) {
    const owner = parseOwner(l.ifalias);
    if (owner?.kind === 'vm' && owner.vm === vmName) await deleteLink(l.ifname, ipo);
  }
  // Links recorded but never marked (kvmctl killed between creating one and setting its alias).
  const left = new Set((await listLinks(ipo)).map((l) => l.ifname));
  for (const l of rec?.links ?? []) if (left.has(l.ifname)) await deleteLink(l.ifname, ipo).catch(() => undefined);
  for (const n of rec?.nodes ?? []) fs.rmSync(n, { force: true });
  fs.rmSync(recordFile(paths, vmName), { force: true });
}

function readRecord(paths: Paths, vmName: string): NicRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(paths, vmName), 'utf8')) as NicRecord;
  } catch {
    return undefined;
  }
}

export type HotNic = { attachment: NicAttachment; mac: string; warnings: string[]; /** Undo (idempotent): the tap made for it, and its record entry. */ release(): Promise<void> };

/**
 * One NIC of a running VM, for hotplug (src/vm/device-hotplug.ts): what prepareNics does for `vm.nics[i]`,
 * its tap recorded in the VM's nics.json beside the others (so stop, status and `net gc` release
 * it like the rest). `netns` must be where the VM's QEMU runs. Macvtaps are refused: QEMU would need
 * the /dev/tapN fd passed over QMP (getfd), which kvmctl's QMP client does not do.
 */
export async function prepareHotNic(vm: VmSpec, i: number, opts: { paths: Paths; facts: HostFacts; runAs?: { uid: number; gid: number }; netns?: string }): Promise<HotNic> {
  const nic = vm.nics[i]!;
  const id = nicIdOf(nic, i);
  const ipo: IpOpts = { netns: opts.netns };
  const mac = (nic.mac ?? deriveMac(vm.name, id)).toLowerCase();
  const vhost = vhostFor(nic, opts.facts);
  const warnings: string[] = [];
  const none = async () => undefined;
  if (nic.user !== undefined && nic.user !== false) return { attachment: { kind: 'user', forwards: typeof nic.user === 'object' ? nic.user.forwards : [] }, mac, warnings, release: none };
  if (nic.tap !== undefined) {
    const l = await getLink(nic.tap, ipo);
    if (!l) throw new KvmError('TAP_NOT_FOUND', `VM "${vm.name}" nics[${i}]: tap "${nic.tap}" does not exist${opts.netns ? ` in namespace ${opts.netns}` : ''}`, { hint: 'create it first, or attach the NIC to a network', exit: 2 });
    if (l.linkinfo?.info_kind !== 'tun') throw new KvmError('HOTPLUG_UNSUPPORTED', `VM "${vm.name}" nics[${i}]: "${nic.tap}" is a ${l.linkinfo?.info_kind ?? 'plain'} interface; only a tap can be hotplugged by name`, { exit: 2, hint: 'add it to the definition; it is opened at the next start' });
    return { attachment: { kind: 'tap', ifname: nic.tap, vhost }, mac, warnings, release: none };
  }
  const nets = readAllNetworks(opts.paths);
  const net = networkOf(vm, nic, i, nets);
  if (net.type === 'user') return { attachment: { kind: 'user', forwards: net.forwards }, mac, warnings, release: none };
  if (net.type === 'macvtap') {
    throw new KvmError('HOTPLUG_UNSUPPORTED', `VM "${vm.name}" nics[${i}]: a macvtap NIC cannot be hotplugged (QEMU would need its /dev/tapN passed over QMP)`, { exit: 2, hint: 'it is in the definition for the next start; or use a bridge network' });
  }
  // A name no link has: while the VM runs, its other NICs' taps keep the names of the indexes they
  // started with, which a NIC removed before them no longer matches.
  let k = i;
  while (await getLink(vmLinkName(vm.name, k, 'tap'), ipo)) k++;
  const ifname = vmLinkName(vm.name, k, 'tap');
  const br = await ensureBridge(net, opts.paths, opts.netns, warnings);
  const rec: NicRecord = readRecord(opts.paths, vm.name) ?? { netns: opts.netns, links: [], nodes: [] };
  rec.links = rec.links.filter((l) => l.ifname !== ifname);
  rec.links.push({ ifname, nic: id }); // recorded before it exists, as at start
  saveRecord(opts.paths, vm.name, rec);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await releaseHotNic(vm.name, ifname, opts.paths, { netns: opts.netns });
  };
  try {
    await createTap(ifname, { owner: { kind: 'vm', vm: vm.name, nic: id }, user: opts.runAs, master: br, mtu: net.mtu, queues: nic.queues }, ipo);
  } catch (e) {
    await release();
    throw e;
  }
  return { attachment: { kind: 'tap', ifname, vhost }, mac, warnings, release };
}

/** Remove one link kvmctl made for a VM's NIC (hot-unplugged, or a hotplug undone) and its record entry. */
export async function releaseHotNic(vmName: string, ifname: string, paths: Paths, o: { netns?: string } = {}): Promise<void> {
  const rec = readRecord(paths, vmName);
  const ipo: IpOpts = { netns: rec?.netns ?? o.netns };
  const l = await getLink(ifname, ipo);
  const owner = l ? parseOwner(l.ifalias) : undefined;
  // Only a link this VM's record or alias says kvmctl made for it.
  if (l && ((owner?.kind === 'vm' && owner.vm === vmName) || rec?.links.some((x) => x.ifname === ifname))) await deleteLink(ifname, ipo).catch(() => undefined);
  if (rec) {
    rec.links = rec.links.filter((x) => x.ifname !== ifname);
    if (rec.links.length || rec.nodes.length) saveRecord(paths, vmName, rec);
    else fs.rmSync(recordFile(paths, vmName), { force: true });
  }
}

/** The link kvmctl made for a VM's NIC id, from its record (undefined: the NIC has none of kvmctl's: user-mode, a static tap). */
export function recordedLink(paths: Paths, vmName: string, nicId: string): string | undefined {
  return readRecord(paths, vmName)?.links.find((l) => l.nic === nicId)?.ifname;
}
