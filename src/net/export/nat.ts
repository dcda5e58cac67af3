/**
 * Boot-time files for nat networks, next to the bridge part (which the netifrc / networkd /
 * ifupdown / script exporters write as for a host-only network): the nftables table
 * (`/etc/nftables.d/kvmctl-NAME.nft`, load with `nft -f`), dnsmasq's config
 * (`/etc/dnsmasq.d/kvmctl-NAME.conf`, for a dnsmasq started with `--conf-file=` that file) and
 * the sysctl for forwarding. Static leases come from the VM definitions. Docker's DOCKER-USER
 * rules and firewalld zones depend on what runs at boot, so they are listed as comments only.
 */
import { type NatSpec } from '../../definition/network.js';
import { bridgeIfname } from '../../definition/network-views.js';
import type { VmSpec } from '../../definition/vm.js';
import { dnsmasqConfig, staticLeases } from '../nat/dnsmasq.js';
import { resolveForwards } from '../nat/nat.js';
import { natTable, ruleTag } from '../nat/nft.js';
import type { ExportFile } from './networkd.js';

export function exportNatFiles(net: NatSpec, vms: VmSpec[]): ExportFile[] {
  const br = bridgeIfname(net)!;
  const nft = [
    `#!/usr/sbin/nft -f`,
    `# kvmctl nat network ${net.name}: load at boot after the bridge exists (nft -f this file).`,
    `# With Docker (iptables FORWARD policy drop), also allow the bridge in DOCKER-USER:`,
    `#   nft insert rule ip filter DOCKER-USER iifname "${br}" accept comment "${ruleTag(net.name)}"`,
    `#   nft insert rule ip filter DOCKER-USER oifname "${br}" accept comment "${ruleTag(net.name)}"`,
    `# With firewalld: firewall-cmd --permanent --zone=trusted --add-interface=${br}`,
    `table inet kvmctl-${net.name}`,
    `delete table inet kvmctl-${net.name}`,
    natTable({ name: net.name, bridge: br, address: net.address, uplink: net.egress, forwards: resolveForwards(net, vms) }),
    '',
  ].join('\n');
  const dns = dnsmasqConfig(net, br, staticLeases(net, vms), { pidFile: `/run/dnsmasq-kvmctl-${net.name}.pid`, leaseFile: `/var/lib/misc/dnsmasq-kvmctl-${net.name}.leases` });
  return [
    { path: `kvmctl-${net.name}.nft`, content: nft },
    { path: `dnsmasq-kvmctl-${net.name}.conf`, content: `# run: dnsmasq --conf-file=/etc/dnsmasq.d/dnsmasq-kvmctl-${net.name}.conf (not the system instance's conf-dir)\n${dns}` },
    { path: `99-kvmctl-${net.name}.conf`, content: `# /etc/sysctl.d: NAT network ${net.name} needs forwarding\nnet.ipv4.ip_forward = 1\n` },
  ];
}
