/**
 * Bridge and host-only networks: create the bridge (marked `kvmctl:net=NAME`), its static taps,
 * enslave the uplinks, add the host addresses, and undo exactly that on `down`.
 *
 * Safety: an interface kvmctl did not create is touched only when the definition names it (an
 * uplink or a static tap). Refused: the uplink that carries the host's default route (unless
 * forceUplink), an uplink already in another bridge, an address that overlaps one the host
 * already has on another interface, a bridge name taken by a non-bridge or by another network.
 * A bridge of the right name that kvmctl did not create (e.g. made by the host's boot config from
 * an exported netifrc file) is used as it is and never changed or deleted.
 */
import { KvmError } from '../errors.js';
import { recordedNetns } from '../host/netns-target.js';
import type { Paths } from '../host/paths.js';
import type { BridgeLikeSpec } from '../definition/network.js';
import { bridgeIfname, uplinksOf } from '../definition/network-views.js';
import { parsePrefix, overlaps } from './cidr.js';
import { defaultRouteDevs, deleteLink, ip, listAddrs, listLinks, ownerAlias, parseOwner, type IpOpts, type Link } from './ip.js';
import { readNetState, removeNetState, writeNetState, type NetState } from './state.js';
import { createTap } from './tap.js';

export type NetCtx = IpOpts & { paths: Paths; warn?: (msg: string) => void };

export type UpResult = { network: string; bridge: string; action: 'created' | 'already-up' | 'foreign'; steps: string[] };

/** `ip link add` arguments for the bridge: timers in centiseconds (seconds × 100). */
export function bridgeAddArgs(net: BridgeLikeSpec): string[] {
  const br = bridgeIfname(net)!;
  const a = ['link', 'add', 'name', br, 'type', 'bridge', 'stp_state', net.stp ? '1' : '0', 'forward_delay', String(Math.round(net.forwardDelay * 100))];
  if (net.helloTime !== undefined) a.push('hello_time', String(Math.round(net.helloTime * 100)));
  if (net.igmpSnooping !== undefined) a.push('mcast_snooping', net.igmpSnooping ? '1' : '0');
  if (net.vlanFiltering !== undefined) a.push('vlan_filtering', net.vlanFiltering ? '1' : '0');
  return a;
}

function checkUplinks(net: BridgeLikeSpec, br: string, links: Map<string, Link>, defRoutes: Set<string>, addrs: Map<string, { local: string; prefixlen: number }[]>, warn: (m: string) => void): void {
  for (const u of uplinksOf(net)) {
    const l = links.get(u);
    if (!l) throw new KvmError('UPLINK_NOT_FOUND', `network "${net.name}": uplink "${u}" does not exist`, { hint: 'check the interface name (ip link) or remove it from uplinks', exit: 2 });
    const owner = parseOwner(l.ifalias);
    if (owner?.kind === 'vm') throw new KvmError('UPLINK_IS_VM_LINK', `network "${net.name}": uplink "${u}" is VM "${owner.vm}"'s ${owner.nic}, not a host NIC`, { exit: 2 });
    if (defRoutes.has(u) && !(net.type === 'bridge' && net.forceUplink)) {
      throw new KvmError('UPLINK_DEFAULT_ROUTE', `network "${net.name}": uplink "${u}" carries the host's default route; enslaving it to ${br} cuts the host off the network`, {
        hint: 'use a second NIC for guests (the seed uses eth1), or set forceUplink: true and move the host address to the bridge yourself',
        exit: 2,
      });
    }
    if (l.master && l.master !== br) {
      throw new KvmError('UPLINK_IN_BRIDGE', `network "${net.name}": uplink "${u}" is already a port of ${l.master}`, { hint: `release it first (ip link set dev ${u} nomaster) or pick another uplink`, exit: 2 });
    }
    const a = addrs.get(u)?.filter((x) => !x.local.startsWith('fe80:')) ?? [];
    if (a.length) warn(`uplink ${u} has addresses (${a.map((x) => `${x.local}/${x.prefixlen}`).join(', ')}); they stop working once it is a bridge port`);
  }
}

function checkAddresses(net: BridgeLikeSpec, br: string, addrs: Map<string, { local: string; prefixlen: number }[]>): void {
  for (const want of net.addresses) {
    const p = parsePrefix(want);
    if (!p) continue;
    for (const [ifn, list] of addrs) {
      if (ifn === br) continue;
      for (const a of list) {
        const q = parsePrefix(`${a.local}/${a.prefixlen}`);
        if (q && overlaps(p, q)) {
          throw new KvmError('ADDRESS_OVERLAP', `network "${net.name}": ${want} overlaps ${a.local}/${a.prefixlen} on ${ifn}`, { hint: 'pick a subnet the host does not use yet', exit: 2 });
        }
      }
    }
  }
}

/** Bring a bridge or host-only network up. Idempotent; undoes its own half-done work on failure. */
export async function bridgeUp(net: BridgeLikeSpec, ctx: NetCtx): Promise<UpResult> {
  const br = bridgeIfname(net)!;
  const opts: IpOpts = { netns: ctx.netns };
  const warn = ctx.warn ?? (() => undefined);
  const [linkList, addrs, defRoutes] = await Promise.all([listLinks(opts), listAddrs(opts), defaultRouteDevs(opts)]);
  const links = new Map(linkList.map((l) => [l.ifname, l]));
  const existing = links.get(br);
  const steps: string[] = [];
  if (existing) {
    if (existing.linkinfo?.info_kind !== 'bridge') {
      throw new KvmError('IFACE_CONFLICT', `network "${net.name}": interface "${br}" exists and is a ${existing.linkinfo?.info_kind ?? 'plain'} interface, not a bridge`, { hint: 'give the network another interface: name', exit: 2 });
    }
    const owner = parseOwner(existing.ifalias);
    if (!owner) {
      warn(`bridge ${br} exists and was not made by kvmctl (boot config?): using it as it is`);
      return { network: net.name, bridge: br, action: 'foreign', steps };
    }
    if (owner.kind !== 'net' || owner.net !== net.name) {
      throw new KvmError('IFACE_CONFLICT', `network "${net.name}": bridge "${br}" belongs to ${owner.kind === 'vm' ? `VM "${owner.vm}"` : `network "${owner.net}"`}`, { exit: 2 });
    }
  }
  checkUplinks(net, br, links, defRoutes, addrs, warn);
  checkAddresses(net, br, addrs);
  for (const t of net.taps) {
    const l = links.get(t);
    if (l && l.master && l.master !== br) throw new KvmError('TAP_IN_BRIDGE', `network "${net.name}": static tap "${t}" is already a port of ${l.master}`, { exit: 2 });
    if (l && l.linkinfo?.info_kind !== 'tun') throw new KvmError('IFACE_CONFLICT', `network "${net.name}": "${t}" exists and is not a tap`, { exit: 2 });
  }

  const prev = readNetState(ctx.paths, net.name);
  // Up in another namespace (which still exists): bringing it up here too would leave that one
  // without its record (as nat networks do, src/net/nat/nat.ts).
  if (prev && (recordedNetns(prev, ctx.netns) ?? '') !== (ctx.netns ?? '')) {
    throw new KvmError('NETWORK_ELSEWHERE', `network "${net.name}" is up in ${prev.netns ? `namespace ${prev.netns}` : 'the host namespace'}`, {
      hint: `kvmctl net down ${net.name}${prev.netns ? ` --netns ${prev.netns}` : ''} first, or work in that namespace (--netns / KVMCTL_NETNS)`,
    });
  }
  const st: NetState = existing && prev ? prev : { netns: ctx.netns, createdBridge: false, uplinksBroughtUp: [], createdTaps: [] };
  const undo: (() => Promise<unknown>)[] = [];
  try {
    if (!existing) {
      await ip(bridgeAddArgs(net), opts);
      st.createdBridge = true;
      undo.push(() => deleteLink(br, opts));
      await ip(['link', 'set', 'dev', br, 'alias', ownerAlias({ kind: 'net', net: net.name })], opts);
      steps.push(`created bridge ${br}`);
    }
    if (net.mtu) await ip(['link', 'set', 'dev', br, 'mtu', String(net.mtu)], opts);
    for (const t of net.taps) {
      const l = links.get(t);
      if (!l) {
        await createTap(t, { owner: { kind: 'net-tap', net: net.name }, master: br, mtu: net.mtu }, opts);
        st.createdTaps.push(t);
        undo.push(() => deleteLink(t, opts));
        steps.push(`created static tap ${t}`);
      } else if (l.master !== br) {
        await ip(['link', 'set', 'dev', t, 'master', br, 'up'], opts);
        undo.push(() => ip(['link', 'set', 'dev', t, 'nomaster'], opts));
        steps.push(`enslaved existing tap ${t}`);
      }
    }
    for (const u of uplinksOf(net)) {
      const l = links.get(u)!;
      if (l.master !== br) {
        await ip(['link', 'set', 'dev', u, 'master', br], opts);
        undo.push(() => ip(['link', 'set', 'dev', u, 'nomaster'], opts));
        steps.push(`enslaved uplink ${u}`);
      }
      if (!l.flags.includes('UP')) {
        await ip(['link', 'set', 'dev', u, 'up'], opts);
        if (!st.uplinksBroughtUp.includes(u)) st.uplinksBroughtUp.push(u);
        undo.push(() => ip(['link', 'set', 'dev', u, 'down'], opts));
      }
    }
    const have = new Set((addrs.get(br) ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const a of net.addresses) {
      if (!have.has(a)) {
        await ip(['addr', 'replace', a, 'dev', br], opts);
        steps.push(`address ${a} on ${br}`);
      }
    }
    await ip(['link', 'set', 'dev', br, 'up'], opts);
    writeNetState(ctx.paths, net.name, st);
  } catch (e) {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw e;
  }
  return { network: net.name, bridge: br, action: existing ? 'already-up' : 'created', steps };
}

export type DownResult = { network: string; bridge: string; action: 'removed' | 'absent' | 'foreign'; steps: string[] };

/**
 * Take a bridge network down: release the uplinks (down again if kvmctl brought them up), remove
 * the static taps and the bridge kvmctl made. `busy(vm)` says whether a VM still uses it.
 */
export async function bridgeDown(net: BridgeLikeSpec, ctx: NetCtx & { force?: boolean; isRunning?: (vm: string) => boolean }): Promise<DownResult> {
  const br = bridgeIfname(net)!;
  // Down where it was brought up (its record says), whatever namespace the caller is in.
  const opts: IpOpts = { netns: recordedNetns(readNetState(ctx.paths, net.name), ctx.netns) };
  const links = await listLinks(opts);
  const l = links.find((x) => x.ifname === br);
  const steps: string[] = [];
  if (!l) {
    removeNetState(ctx.paths, net.name);
    return { network: net.name, bridge: br, action: 'absent', steps };
  }
  const owner = parseOwner(l.ifalias);
  if (!owner) return { network: net.name, bridge: br, action: 'foreign', steps };
  if (owner.kind !== 'net' || owner.net !== net.name) throw new KvmError('IFACE_CONFLICT', `bridge "${br}" does not belong to network "${net.name}"`, { exit: 2 });
  const ports = links.filter((x) => x.master === br);
  const users = ports.map((p) => parseOwner(p.ifalias)).filter((o): o is { kind: 'vm'; vm: string; nic: string } => o?.kind === 'vm');
  const running = [...new Set(users.map((u) => u.vm))].filter((vm) => ctx.isRunning?.(vm) ?? true);
  if (running.length && !ctx.force) {
    throw new KvmError('NETWORK_BUSY', `network "${net.name}" is used by running VM${running.length > 1 ? 's' : ''} ${running.map((v) => `"${v}"`).join(', ')}`, {
      hint: `stop ${running.length > 1 ? 'them' : 'it'} first (kvmctl stop ${running[0]}), or pass --force to cut ${running.length > 1 ? 'their' : 'its'} network`,
    });
  }
  const st = readNetState(ctx.paths, net.name);
  for (const p of ports) {
    const o = parseOwner(p.ifalias);
    if (o?.kind === 'net-tap' && o.net === net.name) {
      await deleteLink(p.ifname, opts);
      steps.push(`removed static tap ${p.ifname}`);
    } else if (!o) {
      await ip(['link', 'set', 'dev', p.ifname, 'nomaster'], opts);
      if (st?.uplinksBroughtUp.includes(p.ifname)) await ip(['link', 'set', 'dev', p.ifname, 'down'], opts);
      steps.push(`released ${p.ifname}`);
    }
  }
  await deleteLink(br, opts);
  steps.push(`removed bridge ${br}`);
  removeNetState(ctx.paths, net.name);
  return { network: net.name, bridge: br, action: 'removed', steps };
}

export type NetStatus = { network: string; type: string; state: 'up' | 'down' | 'absent' | 'foreign' | 'n/a' | 'degraded'; interface?: string; ports: string[]; addresses: string[]; users: string[] };

export async function bridgeStatus(net: BridgeLikeSpec, opts: IpOpts): Promise<NetStatus> {
  const br = bridgeIfname(net)!;
  const [links, addrs] = await Promise.all([listLinks(opts), listAddrs(opts)]);
  const l = links.find((x) => x.ifname === br);
  const ports = links.filter((x) => x.master === br);
  const users = [...new Set(ports.map((p) => parseOwner(p.ifalias)).flatMap((o) => (o?.kind === 'vm' ? [o.vm] : [])))];
  return {
    network: net.name,
    type: net.type,
    state: !l ? 'absent' : !parseOwner(l.ifalias) ? 'foreign' : l.flags.includes('UP') ? 'up' : 'down',
    interface: br,
    ports: ports.map((p) => p.ifname),
    addresses: (addrs.get(br) ?? []).filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`),
    users,
  };
}
