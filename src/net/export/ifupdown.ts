/**
 * Debian ifupdown (`/etc/network/interfaces`) stanzas for bridge and host-only networks, using
 * bridge-utils' bridge_* options (timers in seconds there) and `ip tuntap` for static taps.
 */
import { type NetworkSpec } from '../../definition/network.js';
import { bridgeIfname, uplinksOf } from '../../definition/network-views.js';

export function exportIfupdown(nets: NetworkSpec[]): string {
  const out: string[] = ['# /etc/network/interfaces stanzas, written by kvmctl net export --format ifupdown', '# (needs bridge-utils for the bridge_* options)'];
  for (const n of nets) {
    const br = bridgeIfname(n);
    if (!br || (n.type !== 'bridge' && n.type !== 'host-only')) continue;
    out.push('', `# network ${n.name} (${n.type})`);
    for (const u of uplinksOf(n)) out.push(`auto ${u}`, `iface ${u} inet manual`, '');
    for (const t of n.taps) out.push(`auto ${t}`, `iface ${t} inet manual`, `    pre-up ip tuntap add dev ${t} mode tap`, `    post-down ip link del dev ${t}`, '');
    const v4 = n.addresses.filter((a) => !a.includes(':'));
    const v6 = n.addresses.filter((a) => a.includes(':'));
    out.push(`auto ${br}`, v4.length ? `iface ${br} inet static` : `iface ${br} inet manual`);
    if (v4[0]) out.push(`    address ${v4[0]}`);
    const ports = [...uplinksOf(n), ...n.taps];
    out.push(`    bridge_ports ${ports.length ? ports.join(' ') : 'none'}`);
    out.push(`    bridge_stp ${n.stp ? 'on' : 'off'}`);
    out.push(`    bridge_fd ${n.forwardDelay}`);
    if (n.helloTime !== undefined) out.push(`    bridge_hello ${n.helloTime}`);
    if (n.mtu) out.push(`    mtu ${n.mtu}`);
    for (const a of v4.slice(1)) out.push(`    up ip addr add ${a} dev ${br}`);
    for (const [i, a] of v6.entries()) {
      if (i === 0) out.push('', `iface ${br} inet6 static`, `    address ${a}`);
      else out.push(`    up ip -6 addr add ${a} dev ${br}`);
    }
  }
  return `${out.join('\n')}\n`;
}

export type IfupdownStanza = { iface: string; family: string; method: string; options: [string, string][] };

/** Parse `iface` stanzas (and `auto` lines) back, for tests. */
export function parseIfupdown(text: string): { auto: string[]; stanzas: IfupdownStanza[] } {
  const auto: string[] = [];
  const stanzas: IfupdownStanza[] = [];
  let cur: IfupdownStanza | undefined;
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*$/, '').trim();
    if (!l) continue;
    const w = l.split(/\s+/);
    if (w[0] === 'auto') { auto.push(...w.slice(1)); cur = undefined; continue; }
    if (w[0] === 'iface') {
      cur = { iface: w[1]!, family: w[2]!, method: w[3]!, options: [] };
      stanzas.push(cur);
      continue;
    }
    if (!cur) throw new Error(`option outside a stanza: ${l}`);
    cur.options.push([w[0]!, w.slice(1).join(' ')]);
  }
  return { auto, stanzas };
}
