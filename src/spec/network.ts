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

const ifname = z.string().regex(IFNAME_RE, { error: IFNAME_RULE });
export const cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$|^[0-9a-fA-F:]+\/\d{1,3}$/, { error: 'must be an address with prefix length, such as 192.168.1.1/24' })
  .refine((s) => {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(s);
    return !m || (m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32);
  }, { error: 'has an octet over 255 or a prefix over 32' });

const bridgeFields = {
  kind: z.literal('network'),
  name,
  description: z.string().optional(),
  /** Bridge interface name (default: the network's name). */
  interface: ifname.optional(),
  addresses: z.array(cidr).default([]),
  stp: z.boolean().default(false),
  /** Seconds (Linux and netifrc: centiseconds, ×100). With STP on the kernel wants 2–30. */
  forwardDelay: z.number().min(0).max(30).default(0),
  /** Seconds between hello packets, 1–10 (netifrc's bridge_hello_time is centiseconds: 10 s = 1000). */
  helloTime: z.number().min(1).max(10).optional(),
  igmpSnooping: z.boolean().optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
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

export const networkSchema = z
  .discriminatedUnion('type', [bridgeNetSchema, hostOnlyNetSchema, macvtapNetSchema, userNetSchema], {
    error: 'type must be one of bridge, host-only, macvtap, user',
  })
  .superRefine((n, ctx) => {
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
    const seen = new Map<string, string>();
    const note = (v: string, where: string) => {
      if (v === br) ctx.addIssue({ code: 'custom', path: [where], message: `"${v}" is the bridge itself` });
      else if (seen.has(v)) ctx.addIssue({ code: 'custom', path: [where], message: `"${v}" is listed twice (also in ${seen.get(v)})` });
      seen.set(v, where);
    };
    uplinks.forEach((u) => note(u, 'uplinks'));
    n.taps.forEach((t) => note(t, 'taps'));
    if (n.stp && (n.forwardDelay < 2)) ctx.addIssue({ code: 'custom', path: ['forwardDelay'], message: `with stp: true the kernel needs a forwardDelay of 2–30 seconds, got ${n.forwardDelay}` });
  });

export type NetworkInput = z.input<typeof networkSchema>;
export type NetworkSpec = z.output<typeof networkSchema>;
export type NetworkType = NetworkSpec['type'];
export type BridgeLikeSpec = Extract<NetworkSpec, { type: 'bridge' | 'host-only' }>;

/** The Linux interface that a bridge-type network uses. */
export function bridgeIfname(net: NetworkSpec): string | undefined {
  return net.type === 'bridge' || net.type === 'host-only' ? (net.interface ?? net.name) : undefined;
}

/** The uplinks of a bridge-type network ([] for host-only and the others). */
export function uplinksOf(net: NetworkSpec): string[] {
  return net.type === 'bridge' ? net.uplinks : [];
}
