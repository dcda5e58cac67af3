/**
 * OpenRC netifrc (`/etc/conf.d/net`) for bridge and host-only networks, in the seed's layout:
 *   config_UPLINK="null", tuntap_TAP="tap", config_TAP="null", bridge_BR="ports…",
 *   config_BR="null"|"ADDR", bridge_forward_delay_BR, bridge_hello_time_BR, depend_BR() { need … }
 * Bridge timers are centiseconds here (netifrc writes them to /sys/class/net/BR/bridge/*):
 * helloTime 10 s → bridge_hello_time_BR=1000. netifrc cannot make macvtaps (kvmctl makes one per
 * VM at start), so those and user networks appear as comments only. The `net.*` init-script
 * symlinks and `rc-update` commands to run are listed at the end, as comments.
 */
import { type NetworkSpec } from '../../definition/network.js';
import { bridgeIfname, uplinksOf } from '../../definition/network-views.js';

/** netifrc's shell_var(): the variable suffix for an interface name. */
export function shellVar(ifname: string): string {
  return ifname.replace(/[^A-Za-z0-9_]/g, '_');
}

const cs = (seconds: number) => String(Math.round(seconds * 100));

/** The conf.d/net lines of one bridge or host-only network (no comments). */
export function netifrcBlock(net: NetworkSpec): string[] {
  const br = bridgeIfname(net);
  if (!br || (net.type !== 'bridge' && net.type !== 'host-only')) return [];
  const v = shellVar(br);
  const out: string[] = [];
  const uplinks = uplinksOf(net);
  for (const u of uplinks) out.push(`config_${shellVar(u)}="null"`);
  for (const t of net.taps) out.push(`tuntap_${shellVar(t)}="tap"`, `config_${shellVar(t)}="null"`);
  out.push(`bridge_${v}="${[...uplinks, ...net.taps].join(' ')}"`);
  out.push(`config_${v}="${net.addresses.length ? net.addresses.join('\n') : 'null'}"`);
  if (net.mtu) out.push(`mtu_${v}="${net.mtu}"`);
  if (net.stp) out.push(`bridge_stp_state_${v}=1`);
  out.push(`bridge_forward_delay_${v}=${cs(net.forwardDelay)}`);
  if (net.helloTime !== undefined) out.push(`bridge_hello_time_${v}=${cs(net.helloTime)}`);
  if (net.igmpSnooping !== undefined) out.push(`bridge_multicast_snooping_${v}=${net.igmpSnooping ? 1 : 0}`);
  if (net.vlanFiltering !== undefined) out.push(`bridge_vlan_filtering_${v}=${net.vlanFiltering ? 1 : 0}`);
  const deps = [...uplinks, ...net.taps];
  if (deps.length) out.push(`depend_${v}() { ${deps.map((d) => `need net.${d};`).join(' ')} }`);
  return out;
}

/** Interfaces that need an /etc/init.d/net.IF symlink, in start order. */
export function netifrcServices(nets: NetworkSpec[]): string[] {
  const out: string[] = [];
  for (const n of nets) {
    const br = bridgeIfname(n);
    if (!br) continue;
    out.push(...uplinksOf(n), ...(n.type === 'bridge' || n.type === 'host-only' ? n.taps : []), br);
  }
  return [...new Set(out)];
}

export function exportNetifrc(nets: NetworkSpec[]): string {
  const lines: string[] = ['# /etc/conf.d/net (OpenRC netifrc), written by kvmctl net export --format netifrc', '# Bridge timers are in centiseconds: bridge_hello_time_X=1000 is 10 s.'];
  for (const n of nets) {
    lines.push('');
    if (n.type === 'bridge' || n.type === 'host-only') {
      lines.push(`# network ${n.name} (${n.type})${n.description ? `: ${n.description}` : ''}`, ...netifrcBlock(n));
    } else if (n.type === 'macvtap') {
      lines.push(`# network ${n.name} (macvtap on ${n.parent}, mode ${n.mode}): netifrc cannot make macvtaps;`, `# kvmctl makes one per VM NIC at start (kvmctl net export --format script shows the commands).`);
    } else {
      lines.push(`# network ${n.name} (user): QEMU user-mode networking, nothing to configure on the host.`);
    }
  }
  const svc = netifrcServices(nets);
  if (svc.length) {
    lines.push('', '# Boot services, to run once as root:', `#   cd /etc/init.d && ${svc.map((s) => `ln -s net.lo net.${s}`).join(' && ')}`);
    for (const s of svc) lines.push(`#   rc-update add net.${s} default`);
  }
  return `${lines.join('\n')}\n`;
}
