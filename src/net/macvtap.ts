/**
 * macvtap: one interface per VM NIC on a parent NIC, handed to QEMU as an open /dev/tapN fd.
 * /dev/tapN is found by the character device's major:minor from sysfs, never by the name alone:
 * N is the ifindex inside the interface's namespace, so two namespaces can produce the same N and
 * /dev/tapN then opens the other one's interface (../shared/QEMU-FACTS.md). When the node is
 * missing or points elsewhere, a private node is made with mknod in the VM's runtime dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import { getLink, ip, ownerAlias, readNsFile, deleteLink, type IpOpts, type Owner } from './ip.js';

export type MacvtapMode = 'bridge' | 'vepa' | 'private' | 'passthru';

export async function createMacvtap(
  name: string,
  o: { parent: string; mode: MacvtapMode; mac?: string; owner: Owner },
  opts: IpOpts = {},
): Promise<void> {
  const add = ['link', 'add', 'link', o.parent, 'name', name];
  if (o.mac) add.push('address', o.mac);
  await ip([...add, 'type', 'macvtap', 'mode', o.mode], opts);
  try {
    await ip(['link', 'set', 'dev', name, 'alias', ownerAlias(o.owner)], opts);
    await ip(['link', 'set', 'dev', name, 'up'], opts);
  } catch (e) {
    await deleteLink(name, opts).catch(() => undefined);
    throw e;
  }
}

/** glibc's makedev(): the st_rdev value Node reports for a character device. */
export function makedev(major: number, minor: number): number {
  return Number(
    ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(major) & ~0xfffn) << 32n) | (BigInt(minor) & 0xffn) | ((BigInt(minor) & ~0xffn) << 12n),
  );
}

export type TapDev = { ifindex: number; major: number; minor: number; rdev: number; node: string };

/** The macvtap's character device, by major:minor from /sys/class/net/IF/macvtap/tapN/dev. */
export async function tapDevOf(ifname: string, opts: IpOpts = {}): Promise<TapDev> {
  const link = await getLink(ifname, opts);
  if (!link) throw new KvmError('MACVTAP_NOT_FOUND', `macvtap interface "${ifname}" does not exist${opts.netns ? ` in namespace ${opts.netns}` : ''}`);
  if (link.linkinfo?.info_kind !== 'macvtap') {
    throw new KvmError('NOT_MACVTAP', `"${ifname}" is a ${link.linkinfo?.info_kind ?? 'plain'} interface, not a macvtap`);
  }
  const devFile = `/sys/class/net/${ifname}/macvtap/tap${link.ifindex}/dev`;
  const txt = await readNsFile(devFile, opts);
  const m = /^(\d+):(\d+)$/.exec(txt);
  if (!m) throw new KvmError('MACVTAP_DEV_UNKNOWN', `${devFile}: expected MAJOR:MINOR, got "${txt}"`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return { ifindex: link.ifindex, major, minor, rdev: makedev(major, minor), node: `/dev/tap${link.ifindex}` };
}

/** kvm group id from /etc/group, if there is one. */
export function kvmGid(): number | undefined {
  try {
    const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('kvm:'));
    const gid = line?.split(':')[2];
    return gid ? Number(gid) : undefined;
  } catch {
    return undefined;
  }
}

export type OpenedTap = { fd: number; path: string; private: boolean; dev: TapDev };

/**
 * Resolve the macvtap's /dev node (the shared /dev/tapN when its rdev is right, else a private
 * node made under `privateDir`), set owner and mode (the runAs user, else root:kvm; 0660), open it
 * read-write and check the opened file is the expected device.
 */
export async function openMacvtap(
  ifname: string,
  o: { privateDir: string; user?: { uid: number; gid: number } },
  opts: IpOpts = {},
): Promise<OpenedTap> {
  const dev = await tapDevOf(ifname, opts);
  let node = dev.node;
  let priv = false;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(node);
  } catch {
    st = undefined;
  }
  if (!st || !st.isCharacterDevice() || st.rdev !== dev.rdev) {
    fs.mkdirSync(o.privateDir, { recursive: true });
    node = path.join(o.privateDir, `${ifname}.tap`);
    fs.rmSync(node, { force: true });
    await run(['mknod', '-m', '0600', node, 'c', String(dev.major), String(dev.minor)], { errorCode: 'MKNOD_FAILED' });
    priv = true;
  }
  const uid = o.user?.uid ?? 0;
  const gid = o.user?.gid ?? kvmGid() ?? 0;
  fs.chownSync(node, uid, gid);
  fs.chmodSync(node, 0o660);
  const fd = fs.openSync(node, 'r+');
  if (fs.fstatSync(fd).rdev !== dev.rdev) {
    fs.closeSync(fd);
    throw new KvmError('MACVTAP_DEV_MISMATCH', `${node} is not ${ifname}'s tap device (${dev.major}:${dev.minor})`, { hint: 'another macvtap took the node; retry' });
  }
  return { fd, path: node, private: priv, dev };
}
