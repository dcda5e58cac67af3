/**
 * Safety checks across network definitions (pure): duplicate names and interfaces, bridge
 * addresses that overlap another network's, one uplink or parent claimed twice. The host-side
 * checks (default route, uplink already in a bridge, foreign interfaces) are in bridge.ts.
 */
import type { ErrorIssue } from '../errors.js';
import { type NetworkSpec } from '../definition/network.js';
import { bridgeIfname, natBridgeView, uplinksOf } from '../definition/network-views.js';
import { cidrOverlap } from './cidr.js';

export function networkSetIssues(nets: NetworkSpec[]): ErrorIssue[] {
  const issues: ErrorIssue[] = [];
  const names = new Map<string, number>();
  nets.forEach((n, i) => {
    if (names.has(n.name)) issues.push({ path: `network/${n.name}`, message: `network "${n.name}" is defined twice` });
    names.set(n.name, i);
  });
  // Every interface a network claims: its bridge, its uplinks, its static taps.
  const claims = new Map<string, { net: string; role: string }>();
  const claim = (net: NetworkSpec, ifn: string, role: string) => {
    const other = claims.get(ifn);
    if (other && other.net !== net.name) {
      issues.push({ path: `network/${net.name}: ${role}`, message: `interface "${ifn}" is already the ${other.role} of network "${other.net}"` });
    } else claims.set(ifn, { net: net.name, role });
  };
  for (const n of nets) {
    const br = bridgeIfname(n);
    if (br) claim(n, br, 'bridge');
    for (const u of uplinksOf(n)) claim(n, u, 'uplink');
    if (n.type === 'bridge' || n.type === 'host-only') for (const t of n.taps) claim(n, t, 'static tap');
  }
  // A nat network's bridge and address take part in the checks below as a host-only one would.
  nets = nets.map((n) => (n.type === 'nat' ? natBridgeView(n) : n));
  // macvtap parents may be shared by several macvtap networks, but not be a bridge's uplink.
  for (const n of nets) {
    if (n.type !== 'macvtap') continue;
    const c = claims.get(n.parent);
    if (c) issues.push({ path: `network/${n.name}: parent`, message: `"${n.parent}" is the ${c.role} of network "${c.net}"; a bridge port cannot also be a macvtap parent` });
  }
  const withAddr = nets.filter((n) => n.type === 'bridge' || n.type === 'host-only');
  for (let i = 0; i < withAddr.length; i++) {
    for (let j = i + 1; j < withAddr.length; j++) {
      const a = withAddr[i]!;
      const b = withAddr[j]!;
      if (a.type !== 'bridge' && a.type !== 'host-only') continue;
      if (b.type !== 'bridge' && b.type !== 'host-only') continue;
      for (const x of a.addresses) {
        for (const y of b.addresses) {
          if (cidrOverlap(x, y)) issues.push({ path: `network/${b.name}: addresses`, message: `${y} overlaps ${x} of network "${a.name}"` });
        }
      }
    }
  }
  return issues;
}
