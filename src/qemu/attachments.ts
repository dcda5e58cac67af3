/**
 * How each NIC of a VM reaches the host, decided at start time by the network layer
 * (src/net/attach.ts) and passed to the pure argv builder as data.
 */
export type PortForward = { proto: 'tcp' | 'udp'; hostAddr?: string; hostPort: number; guestPort: number };

export type NicAttachment =
  /** A tap interface by name: a static one from the host's boot config, or one kvmctl made. */
  | { kind: 'tap'; ifname: string; vhost: boolean }
  /** An open tap character device handed to QEMU at spawn (macvtap's /dev/tapN) as fd N. */
  | { kind: 'fd'; fd: number; vhost: boolean; /** the MAC the guest must use (macvtap's) */ mac: string }
  /** QEMU user-mode networking. */
  | { kind: 'user'; forwards: PortForward[] };
