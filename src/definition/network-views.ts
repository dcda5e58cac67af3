/**
 * Pure helpers over validated network definitions. No zod here (types only): `cmdline` and
 * `start` use these without loading the schemas (src/definition/definition-cache.ts).
 */
import { defaultRange, inSubnet, subnetOf } from '../net/nat/ipv4.js';
import type { BridgeLikeSpec, NatSpec, NetworkSpec } from './network.js';
import type { VmSpec } from './vm.js';

/** The DHCP range a nat network hands out (undefined when DHCP is off). */
export function natDhcpRange(n: NatSpec): { start: string; end: string } | undefined {
  if (!n.dhcp) return undefined;
  const s = subnetOf(n.address);
  const d = defaultRange(s);
  return { start: n.dhcp.start ?? d.start, end: n.dhcp.end ?? d.end };
}

/** The bridge part of a nat network, as the host-only network bridge.ts and the exporters know. */
export function natBridgeView(n: NatSpec): BridgeLikeSpec {
  return { kind: 'network', name: n.name, description: n.description, type: 'host-only', interface: n.interface, addresses: [n.address], stp: false, forwardDelay: 0, taps: [], mtu: n.mtu };
}

/**
 * NIC `ip:` (a fixed address) is for NICs on nat networks only, inside the subnet, not the host's
 * own address, and used once per network. Pure; called by the cross-definition checks.
 */
export function natNicIssues(vms: VmSpec[], nets: NetworkSpec[]): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const byName = new Map(nets.map((n) => [n.name, n]));
  const taken = new Map<string, string>();
  for (const vm of vms) {
    vm.nics.forEach((nic, i) => {
      const ip = nic.ip;
      if (ip === undefined) return;
      const where = `vm/${vm.name}: nics[${i}].ip`;
      const net = nic.network !== undefined ? byName.get(nic.network) : undefined;
      if (!net || net.type !== 'nat') {
        if (nic.network === undefined || net) issues.push({ path: where, message: `a fixed ip: is only for NICs on a nat network${net ? ` ("${net.name}" is ${net.type})` : ''}` });
        return;
      }
      const s = subnetOf(net.address);
      if (!inSubnet(ip, s)) issues.push({ path: where, message: `${ip} is not inside network "${net.name}"'s ${s.cidr}` });
      else if (ip === s.host) issues.push({ path: where, message: `${ip} is the host's own address on network "${net.name}"` });
      const k = `${net.name}/${ip}`;
      const other = taken.get(k);
      if (other) issues.push({ path: where, message: `${ip} is already the fixed address of ${other} on network "${net.name}"` });
      else taken.set(k, `VM "${vm.name}" nics[${i}]`);
    });
  }
  return issues;
}

/** The Linux interface that a bridge-type network uses. */
export function bridgeIfname(net: NetworkSpec): string | undefined {
  return net.type === 'bridge' || net.type === 'host-only' || net.type === 'nat' ? (net.interface ?? net.name) : undefined;
}

/** The uplinks of a bridge-type network ([] for host-only and the others). */
export function uplinksOf(net: NetworkSpec): string[] {
  return net.type === 'bridge' ? net.uplinks : [];
}
