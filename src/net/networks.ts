/**
 * The network service: up / down / status for any network type, used by `kvmctl net` and by
 * the VM lifecycle (through attach.ts). Definitions are read with src/definition/store.ts.
 */
import { KvmError } from '../errors.js';
import { recordedNetns } from '../host/netns-target.js';
import type { Paths } from '../host/paths.js';
import type { NetworkSpec } from '../definition/network.js';
import { natBridgeView } from '../definition/network-views.js';
import { bridgeDown, bridgeStatus, bridgeUp, type DownResult, type NetCtx, type NetStatus, type UpResult } from './bridge.js';
import { vmIsRunning } from './gc.js';
import { getLink, ip, listLinks, parseOwner, type IpOpts } from './ip.js';
import { withNetLock } from './net-lock.js';
import { readNetState } from './state.js';

export type { NetCtx, NetStatus, UpResult, DownResult };

export async function netUp(net: NetworkSpec, ctx: NetCtx): Promise<UpResult> {
  if (net.type === 'nat') return (await import('./nat/nat.js')).natUp(net, ctx);
  if (net.type === 'bridge' || net.type === 'host-only') return withNetLock(ctx.paths, net.name, () => bridgeUp(net, ctx));
  if (net.type === 'macvtap') {
    // Per-VM macvtaps are made at start; here only the parent is checked (and brought up: the
    // definition names it).
    const p = await getLink(net.parent, ctx);
    if (!p) throw new KvmError('PARENT_NOT_FOUND', `network "${net.name}": parent "${net.parent}" does not exist`, { hint: 'check the interface name (ip link)', exit: 2 });
    const steps: string[] = [];
    if (!p.flags.includes('UP')) {
      await ip(['link', 'set', 'dev', net.parent, 'up'], ctx);
      steps.push(`brought parent ${net.parent} up`);
    }
    return { network: net.name, bridge: net.parent, action: steps.length ? 'created' : 'already-up', steps };
  }
  return { network: net.name, bridge: '', action: 'already-up', steps: [] };
}

export async function netDown(net: NetworkSpec, ctx: NetCtx & { force?: boolean; isRunning?: (vm: string) => boolean }): Promise<DownResult> {
  const isRunning = ctx.isRunning ?? ((vm: string) => vmIsRunning(ctx.paths, vm));
  if (net.type === 'bridge' || net.type === 'host-only') return withNetLock(ctx.paths, net.name, () => bridgeDown(net, { ...ctx, isRunning }));
  if (net.type === 'nat') return (await import('./nat/nat.js')).natDown(net, { ...ctx, isRunning });
  if (net.type === 'macvtap') {
    const users = (await listLinks(ctx)).filter((l) => l.link === net.parent && l.linkinfo?.info_kind === 'macvtap').map((l) => parseOwner(l.ifalias)).flatMap((o) => (o?.kind === 'vm' ? [o.vm] : []));
    const running = users.filter(isRunning);
    if (running.length && !ctx.force) throw new KvmError('NETWORK_BUSY', `network "${net.name}" is used by running VM "${running[0]}"`, { hint: `stop it first (kvmctl stop ${running[0]})` });
    return { network: net.name, bridge: net.parent, action: 'absent', steps: [] };
  }
  return { network: net.name, bridge: '', action: 'absent', steps: [] };
}

export async function netStatus(net: NetworkSpec, opts: IpOpts & { paths?: Paths }): Promise<NetStatus> {
  if (net.type === 'nat' && opts.paths) return (await import('./nat/nat.js')).natStatus(net, { paths: opts.paths, netns: opts.netns });
  if (net.type === 'nat') return bridgeStatus(natBridgeView(net), opts);
  // Where it was brought up (its record), like nat networks: `net list` without --netns still sees it.
  if (net.type === 'bridge' || net.type === 'host-only') return bridgeStatus(net, { netns: opts.paths ? recordedNetns(readNetState(opts.paths, net.name), opts.netns) : opts.netns });
  if (net.type === 'macvtap') {
    const links = await listLinks(opts);
    const parent = links.find((l) => l.ifname === net.parent);
    const mine = links.filter((l) => l.link === net.parent && l.linkinfo?.info_kind === 'macvtap');
    return {
      network: net.name,
      type: net.type,
      state: !parent ? 'absent' : parent.flags.includes('UP') ? 'up' : 'down',
      interface: net.parent,
      ports: mine.map((l) => l.ifname),
      addresses: [],
      users: [...new Set(mine.map((l) => parseOwner(l.ifalias)).flatMap((o) => (o?.kind === 'vm' ? [o.vm] : [])))],
    };
  }
  return { network: net.name, type: net.type, state: 'n/a', ports: [], addresses: [], users: [] };
}
