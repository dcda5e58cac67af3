/**
 * Network definitions: one YAML file per network (`kind: network`). The interface name defaults
 * to the network's name and must fit Linux's 15-character limit (checked below: a network name
 * may be longer, then `interface:` must be given).
 *
 * Bridge timers are in SECONDS here. Linux keeps them in centiseconds (USER_HZ = 100): the sysfs
 * files /sys/class/net/BR/bridge/{forward_delay,hello_time}, `ip link … type bridge forward_delay
 * N hello_time N` and netifrc's bridge_forward_delay_BR / bridge_hello_time_BR (which netifrc writes
 * to those sysfs files) all take centiseconds: the seed's `bridge_hello_time_br0=1000` is 10 s.
 * Exports multiply by 100, import divides (src/net/export/netifrc.ts, src/net/import/netifrc.ts).
 */
import { z } from 'zod';
import { IFNAME_RE, IFNAME_RULE } from './names.js';
import { name, portForwardSchema } from './vm.js';
import { IPV4_RE, defaultRange, inSubnet, subnetOf, v4ToInt } from '../net/nat/ipv4.js';
import { BRIDGE_RULES, bridgeCrossIssues, bridgePortIssues, isCidr } from './network-rules.js';

// The pure helpers over validated networks live in network-views.ts (no zod: the CLI's hot paths use them).

const ifname = z.string().regex(IFNAME_RE, { error: IFNAME_RULE });
export const cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$|^[0-9a-fA-F:]+\/\d{1,3}$/, { error: 'must be an address with prefix length, such as 192.168.1.1/24' })
  .refine(isCidr, { error: 'has an octet over 255 or a prefix over 32 (128 for IPv6)' });

const bridgeFields = {
  kind: z.literal('network'),
  name,
  description: z.string().optional(),
  /** Bridge interface name (default: the network's name). */
  interface: ifname.optional(),
  addresses: z.array(cidr).default([]),
  stp: z.boolean().default(false),
  /** Seconds (Linux and netifrc: centiseconds, ×100). With STP on the kernel wants 2–30. */
  forwardDelay: z.number().min(BRIDGE_RULES.forwardDelay.min).max(BRIDGE_RULES.forwardDelay.max).default(0),
  /** Seconds between hello packets, 1–10 (netifrc's bridge_hello_time is centiseconds: 10 s = 1000). */
  helloTime: z.number().min(BRIDGE_RULES.helloTime.min).max(BRIDGE_RULES.helloTime.max).optional(),
  igmpSnooping: z.boolean().optional(),
  mtu: z.number().int().min(BRIDGE_RULES.mtu.min).max(BRIDGE_RULES.mtu.max).optional(),
  vlanFiltering: z.boolean().optional(),
  /**
   * Static (persistent) taps that belong to this bridge, like the seed's tap0 / tap_local0: made by
   * `net up` (and by the exported boot config), enslaved, and used by VMs with `tap: NAME`.
   */
  taps: z.array(ifname).default([]),
};

export const bridgeNetSchema = z.strictObject({
  ...bridgeFields,
  type: z.literal('bridge'),
  /** Physical NICs enslaved to the bridge, with no address of their own. */
  uplinks: z.array(ifname).default([]),
  /** Allow enslaving the interface that carries the host's default route (cuts the host off). */
  forceUplink: z.boolean().default(false),
});

export const hostOnlyNetSchema = z.strictObject({
  ...bridgeFields,
  type: z.literal('host-only'),
  addresses: z.array(cidr).min(1, { error: 'a host-only network needs the host address, e.g. 192.168.1.1/24' }),
});

export const macvtapNetSchema = z.strictObject({
  kind: z.literal('network'),
  name,
  description: z.string().optional(),
  type: z.literal('macvtap'),
  parent: ifname,
  mode: z.enum(['bridge', 'vepa', 'private', 'passthru']).default('bridge'),
});

export const userNetSchema = z.strictObject({
  kind: z.literal('network'),
  name,
  description: z.string().optional(),
  type: z.literal('user'),
  forwards: z.array(portForwardSchema).default([]),
});

const ipv4 = z.string().regex(IPV4_RE, { error: 'must be an IPv4 address such as 192.168.100.10' });
const port = z.number().int().min(1).max(65535);
/** DNS names dnsmasq serves (labels of letters, digits and "-", dot-separated). */
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const hostname = z.string().regex(HOSTNAME_RE, { error: 'must be a DNS name such as web or db.lab.example' });

export const natForwardSchema = z.strictObject({
  proto: z.enum(['tcp', 'udp']).default('tcp'),
  /** Only connections to this host address (default: any local address of the host). */
  hostAddr: ipv4.optional(),
  hostPort: port,
  /** A VM name (its NIC on this network needs a fixed ip:) or an IPv4 address in the subnet. */
  guest: z.string().min(1),
  /** Default: hostPort. */
  guestPort: port.optional(),
});

/**
 * NAT network (libvirt's "default" network): a bridge with the host's address, DHCP and DNS from
 * a dnsmasq that kvmctl runs for this network, masquerading out through the host's route (or
 * `egress`), optional port forwards. See docs/networking.md.
 */
export const natNetSchema = z.strictObject({
  kind: z.literal('network'),
  name,
  description: z.string().optional(),
  type: z.literal('nat'),
  /** Bridge interface name (default: the network's name). */
  interface: ifname.optional(),
  /** The host's address on the bridge, with the subnet's prefix length: 192.168.100.1/24. */
  address: z.string().regex(/^[\d.]+\/\d{1,2}$/, { error: 'must be an IPv4 address with prefix length, such as 192.168.100.1/24' }),
  mtu: z.number().int().min(68).max(65535).optional(),
  /** Masquerade only out of this interface, the "uplink" (default: whichever interface the route picks, any but the bridge). */
  egress: ifname.optional(),
  /** DHCP range (default: the upper half of the subnet) and lease time in seconds; false = no DHCP. */
  dhcp: z
    .union([z.literal(false), z.strictObject({ start: ipv4.optional(), end: ipv4.optional(), leaseTime: z.number().int().min(120).default(3600) })])
    .default({ leaseTime: 3600 }),
  dns: z
    .strictObject({
      /** Domain of the guests' names (default: none; VM names resolve as plain names). */
      domain: hostname.optional(),
      /** Upstream servers for other names. Absent: the host's /etc/resolv.conf; [] = serve local names only. */
      upstream: z.array(ipv4).optional(),
      /** Extra names dnsmasq answers: name → IPv4 address. */
      hosts: z.record(hostname, ipv4).default({}),
    })
    .prefault({}),
  forwards: z.array(natForwardSchema).default([]),
});

export const networkSchema = z
  .discriminatedUnion('type', [bridgeNetSchema, hostOnlyNetSchema, macvtapNetSchema, userNetSchema, natNetSchema], {
    error: 'type must be one of bridge, host-only, macvtap, user, nat',
  })
  .superRefine((n, ctx) => {
    if (n.type === 'nat') return natChecks(n, ctx);
    if (n.type !== 'bridge' && n.type !== 'host-only') return;
    const br = n.interface ?? n.name;
    if (!IFNAME_RE.test(br)) {
      ctx.addIssue({
        code: 'custom',
        path: ['interface'],
        message: `the bridge interface would be "${br}" (the network's name), which is not a valid interface name (at most 15 characters); give interface: with a shorter name`,
      });
    }
    const uplinks = n.type === 'bridge' ? n.uplinks : [];
    for (const i of bridgePortIssues(br, uplinks, n.taps)) ctx.addIssue({ code: 'custom', path: [i.path], message: i.message });
    for (const i of bridgeCrossIssues(n)) ctx.addIssue({ code: 'custom', path: [i.path], message: i.message });
  });

function natChecks(n: z.output<typeof natNetSchema>, ctx: z.RefinementCtx): void {
  const br = n.interface ?? n.name;
  if (!IFNAME_RE.test(br)) {
    ctx.addIssue({ code: 'custom', path: ['interface'], message: `the bridge interface would be "${br}" (the network's name), which is not a valid interface name (at most 15 characters); give interface: with a shorter name` });
  }
  const [a, l] = n.address.split('/');
  if (!IPV4_RE.test(a!) || Number(l) < 8 || Number(l) > 30) {
    ctx.addIssue({ code: 'custom', path: ['address'], message: `"${n.address}" must be an IPv4 address with a prefix length of 8–30, such as 192.168.100.1/24` });
    return;
  }
  const s = subnetOf(n.address);
  if (!inSubnet(s.host, s)) ctx.addIssue({ code: 'custom', path: ['address'], message: `${s.host} is the ${s.host === s.network ? 'network' : 'broadcast'} address of ${s.cidr}; the host needs an address inside it` });
  if (n.dhcp) {
    for (const k of ['start', 'end'] as const) {
      const v = n.dhcp[k];
      if (v && !inSubnet(v, s)) ctx.addIssue({ code: 'custom', path: ['dhcp', k], message: `${v} is not inside ${s.cidr}` });
    }
    if (n.dhcp.start && n.dhcp.end && v4ToInt(n.dhcp.start) > v4ToInt(n.dhcp.end)) ctx.addIssue({ code: 'custom', path: ['dhcp', 'end'], message: `${n.dhcp.end} comes before start ${n.dhcp.start}` });
    const d = defaultRange(s);
    const r = { start: n.dhcp.start ?? d.start, end: n.dhcp.end ?? d.end }; // as natDhcpRange (network-views.ts) computes it
    if (r && v4ToInt(s.host) >= v4ToInt(r.start) && v4ToInt(s.host) <= v4ToInt(r.end)) ctx.addIssue({ code: 'custom', path: ['dhcp'], message: `the range ${r.start}–${r.end} contains the host's own address ${s.host}` });
  }
  const seen = new Map<string, number>();
  n.forwards.forEach((f, i) => {
    const k = `${f.proto}/${f.hostAddr ?? '*'}:${f.hostPort}`;
    if (seen.has(k)) ctx.addIssue({ code: 'custom', path: ['forwards', i, 'hostPort'], message: `${f.proto} port ${f.hostPort} is already forwarded (forwards[${seen.get(k)}])` });
    seen.set(k, i);
    if (IPV4_RE.test(f.guest) && !inSubnet(f.guest, s)) ctx.addIssue({ code: 'custom', path: ['forwards', i, 'guest'], message: `${f.guest} is not inside ${s.cidr}` });
    else if (!IPV4_RE.test(f.guest) && !NAME_OK.test(f.guest)) ctx.addIssue({ code: 'custom', path: ['forwards', i, 'guest'], message: `"${f.guest}" is neither an IPv4 address nor a VM name` });
  });
}
const NAME_OK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type NatSpec = z.output<typeof natNetSchema>;

export type NetworkInput = z.input<typeof networkSchema>;
export type NetworkSpec = z.output<typeof networkSchema>;
export type NetworkType = NetworkSpec['type'];
export type BridgeLikeSpec = Extract<NetworkSpec, { type: 'bridge' | 'host-only' }>;
