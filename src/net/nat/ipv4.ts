/** IPv4 arithmetic for NAT networks (pure): subnets, default DHCP ranges, membership. */
export const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function v4ToInt(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
}

export function intToV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export type Subnet = { host: string; prefix: number; network: string; broadcast: string; netmask: string; cidr: string; first: number; last: number };

/** "192.168.100.1/24" → the host address, the subnet and its usable range. */
export function subnetOf(hostCidr: string): Subnet {
  const [a, l] = hostCidr.split('/');
  const prefix = Number(l);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (v4ToInt(a!) & mask) >>> 0;
  const bc = (net | (~mask >>> 0)) >>> 0;
  return { host: a!, prefix, network: intToV4(net), broadcast: intToV4(bc), netmask: intToV4(mask), cidr: `${intToV4(net)}/${prefix}`, first: net + 1, last: bc - 1 };
}

export function inSubnet(ip: string, s: Subnet): boolean {
  const n = v4ToInt(ip);
  return n >= s.first && n <= s.last;
}

/** Default DHCP range: the upper half of the subnet (the lower half is left for fixed addresses). */
export function defaultRange(s: Subnet): { start: string; end: string } {
  const size = s.last - s.first + 1;
  const start = s.first + Math.floor(size / 2);
  return { start: intToV4(start), end: intToV4(s.last) };
}
