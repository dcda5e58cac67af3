/**
 * Network definitions: one YAML file per network (`kind: network`). The interface name defaults
 * to the network's name and must fit Linux's 15-character limit.
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
  /** Seconds (netifrc's bridge_forward_delay is in seconds too). */
  forwardDelay: z.number().min(0).max(30).default(0),
  /** Seconds between hello packets (netifrc's bridge_hello_time value / 100). */
  helloTime: z.number().min(1).max(10).optional(),
  igmpSnooping: z.boolean().optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  vlanFiltering: z.boolean().optional(),
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

export const networkSchema = z.discriminatedUnion('type', [bridgeNetSchema, hostOnlyNetSchema, macvtapNetSchema, userNetSchema], {
  error: 'type must be one of bridge, host-only, macvtap, user',
});

export type NetworkInput = z.input<typeof networkSchema>;
export type NetworkSpec = z.output<typeof networkSchema>;
export type NetworkType = NetworkSpec['type'];

/** The Linux interface that a bridge-type network uses. */
export function bridgeIfname(net: NetworkSpec): string | undefined {
  return net.type === 'bridge' || net.type === 'host-only' ? (net.interface ?? net.name) : undefined;
}
