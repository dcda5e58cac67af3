/**
 * A libvirt network (`virsh net-dumpxml NAME`) → a kvmctl network of the same kind: forward
 * nat (libvirt's `default`) → nat (bridge, host address, DHCP range, DNS domain); forward bridge
 * → bridge; no forward → host-only; forward route/open → host-only with a warning (no routing is
 * set up); macvtap/passthrough/private/vepa → macvtap on the first forward interface.
 * The format: https://libvirt.org/formatnetwork.html
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { validateNetwork } from '../definition/load.js';
import type { NetworkSpec } from '../definition/network.js';
import { importError, Notes, safeName, type Fidelity } from './model.js';

type X = Record<string, unknown>;
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, parseAttributeValue: false });
const arr = (v: unknown): X[] => (v === undefined || v === '' ? [] : (Array.isArray(v) ? v : [v]).map((x) => (typeof x === 'object' && x ? (x as X) : {})));
const one = (v: unknown) => arr(v)[0];
const at = (n: X | undefined, a: string) => n?.[`@${a}`] as string | undefined;
const text = (v: unknown) => (typeof v === 'string' ? v : (v as X | undefined)?.['#text'] as string | undefined);

const prefixOf = (netmask?: string, prefix?: string): number | undefined => {
  if (prefix) return Number(prefix);
  if (!netmask) return undefined;
  return netmask.split('.').reduce((a, o) => a + (Number(o) >>> 0).toString(2).split('').filter((b) => b === '1').length, 0);
};

export type ImportedNetwork = { name: string; network: X; spec: NetworkSpec; notes: Notes['notes']; fidelity: Fidelity };

/** True when the XML's root element is <network>. */
export const isNetworkXml = (xml: string) => /^\s*(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<network[\s>]/.test(xml);

export function importLibvirtNetwork(xml: string, opts: { source?: string } = {}): ImportedNetwork {
  const source = opts.source ?? 'network.xml';
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw importError('IMPORT_BAD_XML', `${source}:${valid.err.line}: not well-formed XML (${valid.err.msg})`, 'give the output of virsh net-dumpxml NAME');
  const net = one((parser.parse(xml) as X).network);
  if (!net) throw importError('IMPORT_NOT_NETWORK', `${source}: no <network> element`, 'give the output of virsh net-dumpxml NAME');
  const n = new Notes();
  const name = safeName(text(net.name), 'imported-net', n);
  const fwd = one(net.forward);
  const mode = fwd ? (at(fwd, 'mode') ?? 'nat') : undefined;
  const bridge = at(one(net.bridge), 'name');
  const ips = arr(net.ip).filter((i) => (at(i, 'family') ?? 'ipv4') === 'ipv4');
  const ip = ips[0];
  const addr = ip && at(ip, 'address') ? `${at(ip, 'address')}/${prefixOf(at(ip, 'netmask'), at(ip, 'prefix')) ?? 24}` : undefined;
  if (arr(net.ip).some((i) => at(i, 'family') === 'ipv6')) n.lost('ipv6', 'IPv6 addresses and DHCPv6 are not kept');
  const out: X = { kind: 'network', name };
  if (mode === 'nat') {
    if (!addr) throw importError('IMPORT_UNSUPPORTED', `${source}: a NAT network without an IPv4 address`, 'give it <ip address=… netmask=…>');
    Object.assign(out, { type: 'nat', address: addr, ...(bridge ? { interface: bridge } : {}) });
    const dhcp = one(ip?.dhcp);
    const range = one(dhcp?.range);
    if (range) out.dhcp = { start: at(range, 'start'), end: at(range, 'end') };
    else out.dhcp = false;
    if (arr(dhcp?.host).length) n.lost('dhcp host', `${arr(dhcp?.host).length} static lease(s) not kept (give those VMs nics[].ip)`);
    const domain = at(one(net.domain), 'name');
    if (domain) out.dns = { domain };
    const dev = at(fwd, 'dev');
    if (dev) out.egress = dev;
    n.kept(`nat network ${name}`);
  } else if (mode === 'bridge' && !bridge && at(one(fwd?.interface), 'dev')) {
    // forward mode bridge over host interfaces (no <bridge>): libvirt's macvtap pool in bridge mode
    const dev = at(one(fwd?.interface), 'dev')!;
    Object.assign(out, { type: 'macvtap', parent: dev, mode: 'bridge' });
    if (arr(fwd?.interface).length > 1) n.lost('forward interfaces', `only the first (${dev}) is kept`);
    n.translated(`network ${name}`, `macvtap on ${dev} (mode bridge), as libvirt's direct pool`);
  } else if (mode === 'bridge') {
    if (!bridge) throw importError('IMPORT_UNSUPPORTED', `${source}: a bridge network without <bridge name=…>`);
    Object.assign(out, { type: 'bridge', ...(bridge !== name ? { interface: bridge } : {}) });
    n.translated(`bridge network ${name}`, `the host's bridge ${bridge}: kvmctl net up manages it (add its uplinks)`);
  } else if (mode && ['macvtap', 'passthrough', 'private', 'vepa'].includes(mode)) {
    const dev = at(one(fwd?.interface), 'dev') ?? at(fwd, 'dev');
    if (!dev) throw importError('IMPORT_UNSUPPORTED', `${source}: a ${mode} network without a forward interface`);
    Object.assign(out, { type: 'macvtap', parent: dev, mode: mode === 'macvtap' ? 'bridge' : mode === 'passthrough' ? 'passthru' : mode });
    if (arr(fwd?.interface).length > 1) n.lost('forward interfaces', `only the first (${dev}) is kept`);
    n.kept(`macvtap network ${name}`);
  } else {
    if (!addr) throw importError('IMPORT_UNSUPPORTED', `${source}: an isolated network without an address has nothing kvmctl can make`);
    Object.assign(out, { type: 'host-only', addresses: [addr], ...(bridge && bridge !== name ? { interface: bridge } : {}) });
    if (mode === 'route' || mode === 'open') n.lost(`forward ${mode}`, 'imported as host-only: kvmctl sets up no routing for it');
    else n.kept(`isolated network ${name}`);
    if (one(ip?.dhcp)) n.lost('dhcp', 'a host-only network has no DHCP in kvmctl (use type nat, or static addresses)');
  }
  const spec = validateNetwork(out, source);
  return { name, network: out, spec, notes: n.notes, fidelity: n.fidelity };
}
