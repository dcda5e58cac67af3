/**
 * A thin wrapper over iproute2's `ip -json`: every call goes through src/host/exec.ts (argv, no
 * shell), errors keep the command and its stderr. `netns` runs the command inside a network
 * namespace (`ip -n NS …`), which the demo and the tests use.
 */
import fs from 'node:fs';
import { run } from '../host/exec.js';

export type IpOpts = { netns?: string };

export type Link = {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  /** Parent of a macvtap/vlan ("link" in ip's JSON). */
  link?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string };
};

export type AddrInfo = { family: 'inet' | 'inet6'; local: string; prefixlen: number; scope?: string };

function base(opts: IpOpts): string[] {
  return opts.netns ? ['ip', '-n', opts.netns] : ['ip'];
}

/** Run `ip ARGS…` and return stdout. */
export async function ip(args: string[], opts: IpOpts = {}): Promise<string> {
  return (await run([...base(opts), ...args], { timeoutMs: 15_000, errorCode: 'IP_FAILED' })).stdout;
}

/** Run `ip -json ARGS…` and parse the answer. */
export async function ipJson<T>(args: string[], opts: IpOpts = {}): Promise<T> {
  const out = (await run([...base(opts), '-json', ...args], { timeoutMs: 15_000, errorCode: 'IP_FAILED' })).stdout.trim();
  return (out ? JSON.parse(out) : []) as T;
}

/** Every link, with details (kind, alias, master). */
export async function listLinks(opts: IpOpts = {}): Promise<Link[]> {
  return ipJson<Link[]>(['-details', 'link', 'show'], opts);
}

export async function getLink(name: string, opts: IpOpts = {}): Promise<Link | undefined> {
  const r = await run([...base(opts), '-json', '-details', 'link', 'show', 'dev', name], { allowFailure: true, timeoutMs: 15_000 });
  if (r.exitCode !== 0) {
    if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
    // Re-run the strict way for the standard error text.
    await ip(['link', 'show', 'dev', name], opts);
    return undefined;
  }
  return (JSON.parse(r.stdout) as Link[])[0];
}

export function linkKind(l: Link): string | undefined {
  return l.linkinfo?.info_kind;
}

/** Addresses of every interface: ifname → addresses. */
export async function listAddrs(opts: IpOpts = {}): Promise<Map<string, AddrInfo[]>> {
  const r = await ipJson<{ ifname: string; addr_info?: AddrInfo[] }[]>(['addr', 'show'], opts);
  return new Map(r.map((x) => [x.ifname, (x.addr_info ?? []).filter((a) => a.family === 'inet' || a.family === 'inet6')]));
}

/** Interfaces that carry a default route (IPv4 or IPv6). */
export async function defaultRouteDevs(opts: IpOpts = {}): Promise<Set<string>> {
  const out = new Set<string>();
  for (const fam of ['-4', '-6']) {
    const r = await ipJson<{ dev?: string; nexthops?: { dev?: string }[] }[]>([fam, 'route', 'show', 'default'], opts).catch(() => []);
    for (const x of r) {
      if (x.dev) out.add(x.dev);
      for (const h of x.nexthops ?? []) if (h.dev) out.add(h.dev);
    }
  }
  return out;
}

/** Read a sysfs/procfs file as seen from inside the namespace (`ip netns exec NS cat FILE`). */
export async function readNsFile(file: string, opts: IpOpts = {}): Promise<string> {
  if (!opts.netns) return fs.readFileSync(file, 'utf8').trim();
  return (await run(['ip', 'netns', 'exec', opts.netns, 'cat', file], { timeoutMs: 15_000, errorCode: 'IP_FAILED' })).stdout.trim();
}

/** Delete a link; a link that is already gone is fine (teardown is idempotent). */
export async function deleteLink(name: string, opts: IpOpts = {}): Promise<boolean> {
  const r = await run([...base(opts), 'link', 'del', 'dev', name], { allowFailure: true, timeoutMs: 15_000 });
  if (r.exitCode === 0) return true;
  if (/does not exist|Cannot find device/i.test(r.stderr)) return false;
  await ip(['link', 'del', 'dev', name], opts); // throws with the real message
  return false;
}

/* ---- ownership marks: kvmctl writes its claim into the interface alias (ifalias) ---- */

export type Owner =
  | { kind: 'net'; net: string }
  | { kind: 'net-tap'; net: string }
  | { kind: 'vm'; vm: string; nic: string };

export function ownerAlias(o: Owner): string {
  return o.kind === 'vm' ? `kvmctl:vm=${o.vm},nic=${o.nic}` : o.kind === 'net' ? `kvmctl:net=${o.net}` : `kvmctl:net=${o.net},tap`;
}

export function parseOwner(alias: string | undefined): Owner | undefined {
  if (!alias) return undefined;
  let m = /^kvmctl:vm=([^,]+),nic=(.+)$/.exec(alias);
  if (m) return { kind: 'vm', vm: m[1]!, nic: m[2]! };
  m = /^kvmctl:net=([^,]+)(,tap)?$/.exec(alias);
  if (m) return m[2] ? { kind: 'net-tap', net: m[1]! } : { kind: 'net', net: m[1]! };
  return undefined;
}
