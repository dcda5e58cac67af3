/**
 * Command-line import, the network family: -nic, -netdev with its -device NIC, legacy -net hub
 * pairs, user/tap/bridge backends, macvtaps passed by fd (`fd=N` with `N<>/dev/tapN`, which
 * emit a macvtap network), MAC addresses, and QEMU's default NIC where kvmctl's differs.
 */
import { IFNAME_RE, MAC_RE, NAME_RE } from '../definition/names.js';
import { DEVICE_PLACEMENT, deviceExtras, type ImportState, type Nic, type Opt } from './import-state.js';
import { parseBool, type QemuOpts } from './parse-opts.js';
import { expandKnown } from './shell-words.js';

const NIC_MODELS: Record<string, 'virtio' | 'e1000' | 'e1000e' | 'rtl8139' | 'vmxnet3'> = {
  virtio: 'virtio', 'virtio-net': 'virtio', 'virtio-net-pci': 'virtio', 'virtio-net-pci-non-transitional': 'virtio',
  'virtio-net-pci-transitional': 'virtio', 'virtio-net-device': 'virtio', e1000: 'e1000', e1000e: 'e1000e', rtl8139: 'rtl8139', vmxnet3: 'vmxnet3',
};

/** Map one option of this family; false when the option is not one of its. */
export function mapNetOption(s: ImportState, o: Opt): boolean {
  const { P, extra, mapped } = s;
  switch (o.name) {
    case 'netdev':
      break; // with its -device: mapNicDevice
    case 'nic': {
      const p = P(o, 'type');
      if (p.get('type') === 'none') { s.netNone = true; mapped(o); break; }
      const r = mapNetBackend(s, p, o, ['model', 'mac']);
      if ('reason' in r) { extra(o, r.reason); break; }
      const model = nicModel(p.get('model'));
      if (model === undefined) { extra(o, `NIC model ${p.get('model')} is not one kvmctl knows (virtio, e1000, e1000e, rtl8139, vmxnet3)`); break; }
      const mac = macOf(s, o, p.get('mac'));
      s.nics.push({ ...r.nic, model: model!, ...(mac ? { mac } : {}) });
      mapped(o);
      break;
    }
    case 'net':
      break; // legacy hub pairs: mapLegacyNet
    default:
      return false;
  }
  return true;
}

/** `-device virtio-net-pci,netdev=X` (or another NIC model) with its -netdev; false when it is not one. */
export function mapNicDevice(s: ImportState, o: Opt, p: QemuOpts, drv: string, dropPlacement: () => void): boolean {
  if (!NIC_MODELS[drv] || !p.has('netdev')) return false;
  const { P, extra, mapped } = s;
  const nd = s.netdevs.get(p.get('netdev')!);
  const { dropped, unknown } = deviceExtras(p, ['driver', 'netdev', 'mac', ...DEVICE_PLACEMENT]);
  if (!nd || nd.status) { extra(o, `its netdev ${p.get('netdev')} is not a -netdev kvmctl imports`); return true; }
  if (unknown.length) { extra(o, `device properties ${p.describe(unknown)} have no field in the definition`); return true; }
  const np = P(nd, 'type');
  const r = mapNetBackend(s, np, nd, []);
  if ('reason' in r) { extra(o, r.reason); extra(nd, r.reason); return true; }
  const mac = r.macvtap ? literalMac(s, o, p.get('mac'), true) : macOf(s, o, p.get('mac'));
  const id = np.get('id');
  s.nics.push({ ...(id && NAME_RE.test(id) ? { id } : {}), ...r.nic, model: NIC_MODELS[drv]!, ...(mac ? { mac } : {}) });
  if (dropped.length) s.warn(o, `device properties ${p.describe(dropped)} not kept: the definition has no field for them (the NIC is imported without them)`);
  dropPlacement();
  mapped(o, nd);
  return true;
}

/** `-net nic … -net user …`: every -net on one hub (vlan=N in old QEMUs) forms one NIC. */
export function mapLegacyNet(s: ImportState): void {
  const { P, extra, mapped } = s;
  const list = s.opts.filter((o) => o.name === 'net' && !o.status);
  const hubs = new Map<string, { nic: Opt[]; back: Opt[] }>();
  for (const o of list) {
    const p = P(o, 'type');
    if (p.get('type') === 'none') { s.netNone = true; mapped(o); continue; }
    const hub = p.get('vlan') ?? '0';
    if (!hubs.has(hub)) hubs.set(hub, { nic: [], back: [] });
    hubs.get(hub)![p.get('type') === 'nic' ? 'nic' : 'back'].push(o);
  }
  for (const { nic, back } of hubs.values()) {
    if (nic.length !== 1 || back.length !== 1) {
      for (const o of [...nic, ...back]) extra(o, '-net hubs other than one nic with one backend have no field in the definition');
      continue;
    }
    const np = P(nic[0]!, 'type');
    const rest = np.unknown(['type', 'model', 'macaddr', 'vlan', 'name', 'id']);
    const model = nicModel(np.get('model'));
    const r = mapNetBackend(s, P(back[0]!, 'type').omit(['vlan', 'name']), back[0]!, []);
    if (rest.length || model === undefined || 'reason' in r) {
      const why = rest.length ? `-net nic ${np.describe(rest)} has no field in the definition` : model === undefined ? `NIC model ${np.get('model')} is not one kvmctl knows` : (r as { reason: string }).reason;
      extra(nic[0]!, why);
      extra(back[0]!, why);
      continue;
    }
    const mac = macOf(s, nic[0]!, np.get('macaddr'));
    s.nics.push({ ...r.nic, model: model!, ...(mac ? { mac } : {}) });
    mapped(nic[0], back[0]);
  }
}

/** NICs without a model get QEMU's default for the machine; no network options at all mean QEMU's one user-mode NIC. */
export function netDefaults(s: ImportState, type: string): void {
  const defaultModel = type.startsWith('pc-q35') || type === 'q35' ? 'e1000e' : 'e1000';
  for (const n of s.nics) if (n.model === '') n.model = defaultModel;
  const anyNet = s.opts.some((o) => ['netdev', 'nic', 'net'].includes(o.name));
  if (!anyNet && !s.nodefaults && !s.netNone) {
    s.nics.push({ user: true, model: defaultModel });
    s.note(undefined, `no network options: QEMU's default is one user-mode NIC (${defaultModel}); imported as such (remove nics for none)`);
  }
}

function nicModel(m: string | undefined): string | undefined {
  if (m === undefined) return '';
  return NIC_MODELS[m];
}
function nicModelDefault(m: string | undefined): string {
  return (m !== undefined && NIC_MODELS[m]) || '';
}

function macOf(s: ImportState, o: Opt, mac: string | undefined): string | undefined {
  if (mac === undefined) return undefined;
  if (s.unresolved(o, mac)) {
    s.warn(o, `mac=${mac} is not literal: left out (kvmctl generates a stable MAC)`);
    return undefined;
  }
  if (!MAC_RE.test(mac)) {
    s.warn(o, `mac=${mac} is not a MAC address: left out`);
    return undefined;
  }
  if (s.nics.some((n) => n.mac === mac.toLowerCase())) {
    s.warn(o, `mac=${mac} is the MAC of an earlier NIC: left out, kvmctl derives one from the VM name (two NICs with one MAC break the guest's network)`);
    return undefined;
  }
  return mac.toLowerCase();
}

function literalMac(s: ImportState, o: Opt, mac: string | undefined, macvtap: boolean): string | undefined {
  if (mac !== undefined && s.unresolved(o, mac) && macvtap) {
    s.note(o, `mac=${mac}: kvmctl gives a macvtap NIC the macvtap interface's own MAC, as the script does`);
    return undefined;
  }
  return macOf(s, o, mac);
}

/** A -netdev / -nic / -net backend → the attachment part of a NIC. */
function mapNetBackend(s: ImportState, p: QemuOpts, o: Opt, also: string[]): { nic: Nic; macvtap?: boolean } | { reason: string } {
  const { warn } = s;
  const type = p.get('type');
  const base: Nic = { model: nicModelDefault(p.get('model')) };
  if (o.word?.unresolved.length) {
    const bad = p.pairs.filter(([k, val]) => k !== 'fd' && !also.includes(k) && o.word!.unresolved.some((u) => val.includes(u.text)));
    if (bad.length) return { reason: `${p.describe(bad.map(([k]) => k))} contains a substitution kvmctl does not run` };
  }
  if (type === 'user') {
    const rest = p.unknown(['type', 'id', 'hostfwd', ...also]);
    if (rest.length) return { reason: `user networking ${p.describe(rest)} has no field in the definition` };
    const forwards = [];
    for (const f of p.all('hostfwd')) {
      const m = /^(tcp|udp)?:([^:]*):(\d+)-:(\d+)$/.exec(f);
      if (!m) return { reason: `hostfwd=${f} is not PROTO:[HOSTADDR]:PORT-:PORT (a guest address has no field in the definition)` };
      forwards.push({ proto: m[1] ?? 'tcp', ...(m[2] ? { hostAddr: m[2] } : {}), hostPort: Number(m[3]), guestPort: Number(m[4]) });
    }
    return { nic: { ...base, user: forwards.length ? { forwards } : true } };
  }
  if (type === 'tap') {
    const rest = p.unknown(['type', 'id', 'ifname', 'vhost', 'script', 'downscript', 'fd', ...also]);
    if (rest.length) return { reason: `tap ${p.describe(rest)} has no field in the definition` };
    for (const k of ['script', 'downscript']) {
      const sc = p.get(k);
      if (sc !== undefined && sc !== 'no' && sc !== '') return { reason: `${k}=${sc}: kvmctl never runs tap scripts (attach the NIC to a kvmctl network instead)` };
    }
    const vhost = p.has('vhost') ? (parseBool(p.get('vhost')) ? 'on' : 'off') : 'off';
    if (p.has('fd')) {
      const mv = macvtapOf(s, p.get('fd')!, o);
      if ('reason' in mv) return mv;
      return { nic: { ...base, network: mv.network, vhost }, macvtap: true };
    }
    const ifname = p.get('ifname');
    if (!ifname) return { reason: 'a tap without ifname= (QEMU picks a name and runs /etc/qemu-ifup): attach the NIC to a kvmctl network instead' };
    if (!IFNAME_RE.test(ifname)) return { reason: `ifname=${ifname} is not an interface name` };
    return { nic: { ...base, tap: ifname, vhost } };
  }
  if (type === 'bridge') {
    const rest = p.unknown(['type', 'id', 'br', ...also]);
    const br = p.get('br') ?? 'br0';
    if (rest.length || !NAME_RE.test(br)) return { reason: `bridge ${p.describe(rest)} has no field in the definition` };
    warn(o, `-netdev bridge,br=${br}: imported as network "${br}" — define a kvmctl network of that name (kind: network, type: bridge) so kvmctl makes the tap`);
    return { nic: { ...base, network: br } };
  }
  return { reason: `${type ?? 'this'} networking has no field in the definition` };
}

/** `fd=N` with `N<>/dev/tap…`: a macvtap passed by fd → a macvtap network. */
function macvtapOf(s: ImportState, fd: string, o: Opt): { network: string } | { reason: string } {
  const { warn, ctx } = s;
  const rd = s.redirects.find((r) => r.fd === Number(fd) && (r.op === '<>' || r.op === '<'));
  if (!rd) return { reason: `fd=${fd} is opened by whatever starts QEMU, not by this script: kvmctl cannot pass it (use a macvtap network)` };
  if (!/^\/dev\/tap/.test(rd.target.text)) return { reason: `fd=${fd} is ${rd.target.text}, not a /dev/tapN macvtap device` };
  // Which macvtap? The sysfs path in the substitution, else the one the script creates.
  let name: string | undefined;
  for (const u of rd.target.unresolved) {
    const m = /\/sys\/class\/net\/([^/\s)]+)\/ifindex/.exec(expandKnown(u.text, ctx.vars));
    if (m && !m[1]!.includes('$')) name = m[1];
  }
  if (!name && ctx.macvtaps.length === 1) {
    name = ctx.macvtaps[0]!.name;
    warn(o, `fd=${fd} ${fd}<>${rd.target.text}: took this to be ${name}, the only macvtap the script creates (line ${ctx.macvtaps[0]!.line})`);
  }
  if (!name) {
    name = 'macvtap0';
    warn(o, `fd=${fd} ${fd}<>${rd.target.text}: cannot tell which macvtap this is; assumed a network named "${name}" — check nics[].network`);
  }
  const netName = NAME_RE.test(name) ? name : 'macvtap0';
  const mk = ctx.macvtaps.find((m) => m.name === name);
  warn(o, `-netdev tap,fd=${fd} with ${fd}<>${rd.target.text} is a macvtap passed by fd: imported as network "${netName}" (type macvtap); kvmctl opens /dev/tapN and passes the fd itself`);
  if (mk && !s.emittedNetworks.some((n) => n.name === netName)) {
    s.emittedNetworks.push({ kind: 'network', name: netName, type: 'macvtap', parent: mk.parent, mode: mk.mode });
  } else if (!mk) {
    warn(o, `define network "${netName}" yourself (kind: network, type: macvtap, parent: YOUR_NIC): the script does not show how it is made`);
  }
  return { network: netName };
}
