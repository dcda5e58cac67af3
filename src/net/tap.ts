/**
 * Tap interfaces: a VM's own (named after the VM and NIC index) and a bridge's static ones (the
 * seed's tap0). Created persistent with `ip tuntap`, owned by the user QEMU runs as, marked with a
 * kvmctl alias so that gc and teardown never touch an interface kvmctl did not make.
 */
import { createHash } from 'node:crypto';
import { deleteLink, ip, ownerAlias, type IpOpts, type Owner } from './ip.js';

/**
 * Deterministic interface name for NIC `index` of a VM: `kv` + 8 hex of sha256(vm name) + `n`
 * (tap) or `m` (macvtap) + index, e.g. kv1a2b3c4dn0: at most 14 characters for index < 100.
 */
export function vmLinkName(vmName: string, index: number, kind: 'tap' | 'macvtap'): string {
  const h = createHash('sha256').update(vmName).digest('hex').slice(0, 8);
  return `kv${h}${kind === 'tap' ? 'n' : 'm'}${index}`;
}

export type TapOptions = {
  owner: Owner;
  /** The user and group QEMU runs as (so it may open the persistent tap). */
  user?: { uid: number; gid: number };
  master?: string;
  mtu?: number;
  /** More than 1: a multiqueue tap (IFF_MULTI_QUEUE) for virtio-net with `queues` (nics[].queues). */
  queues?: number;
};

/** Create a persistent tap, mark it, enslave it, bring it up. Half-done work is undone on failure. */
export async function createTap(name: string, o: TapOptions, opts: IpOpts = {}): Promise<void> {
  const add = ['tuntap', 'add', 'dev', name, 'mode', 'tap'];
  if (o.user) add.push('user', String(o.user.uid), 'group', String(o.user.gid));
  if ((o.queues ?? 1) > 1) add.push('multi_queue');
  await ip(add, opts);
  try {
    await ip(['link', 'set', 'dev', name, 'alias', ownerAlias(o.owner)], opts);
    const set = ['link', 'set', 'dev', name];
    if (o.mtu) set.push('mtu', String(o.mtu));
    if (o.master) set.push('master', o.master);
    await ip([...set, 'up'], opts);
  } catch (e) {
    await deleteLink(name, opts).catch(() => undefined);
    throw e;
  }
}
