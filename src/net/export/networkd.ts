/**
 * systemd-networkd files for bridge and host-only networks: BR.netdev (Kind=bridge, timers in
 * seconds), BR.network (host addresses, none for a plain bridge), one .network per uplink and
 * static tap (Bridge=BR, no addresses), and a .netdev per static tap (Kind=tap).
 */
import { type NetworkSpec } from '../../definition/network.js';
import { bridgeIfname, uplinksOf } from '../../definition/network-views.js';

export type ExportFile = { path: string; content: string };

const ini = (sections: [string, [string, string | number | undefined][]][]) =>
  `${sections
    .map(([name, kv]) => [`[${name}]`, ...kv.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`)].join('\n'))
    .join('\n\n')}\n`;
const yesno = (b: boolean | undefined) => (b === undefined ? undefined : b ? 'yes' : 'no');

export function exportNetworkd(nets: NetworkSpec[]): ExportFile[] {
  const files: ExportFile[] = [];
  for (const n of nets) {
    const br = bridgeIfname(n);
    if (!br || (n.type !== 'bridge' && n.type !== 'host-only')) continue;
    const head = `# kvmctl network ${n.name} (${n.type})\n`;
    files.push({
      path: `25-kvmctl-${br}.netdev`,
      content: head + ini([
        ['NetDev', [['Name', br], ['Kind', 'bridge'], ['MTUBytes', n.mtu]]],
        ['Bridge', [['STP', yesno(n.stp)], ['ForwardDelaySec', n.forwardDelay], ['HelloTimeSec', n.helloTime], ['MulticastSnooping', yesno(n.igmpSnooping)], ['VLANFiltering', yesno(n.vlanFiltering)]]],
      ]),
    });
    files.push({
      path: `25-kvmctl-${br}.network`,
      content: head + ini([
        ['Match', [['Name', br]]],
        ['Network', [...n.addresses.map((a): [string, string] => ['Address', a]), ['ConfigureWithoutCarrier', 'yes'], ['LinkLocalAddressing', n.addresses.length ? undefined : 'no']]],
      ]),
    });
    for (const t of n.taps) {
      files.push({ path: `25-kvmctl-${t}.netdev`, content: head + ini([['NetDev', [['Name', t], ['Kind', 'tap'], ['MTUBytes', n.mtu]]]]) });
    }
    for (const p of [...uplinksOf(n), ...n.taps]) {
      files.push({ path: `25-kvmctl-${p}.network`, content: head + ini([['Match', [['Name', p]]], ['Network', [['Bridge', br], ['LinkLocalAddressing', 'no'], ['ConfigureWithoutCarrier', 'yes']]]]) });
    }
  }
  return files;
}

/** Parse a networkd-style INI file (for tests and `net show`): section → key → values. */
export function parseIni(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) {
      cur = out.get(s[1]!) ?? new Map();
      out.set(s[1]!, cur);
      continue;
    }
    const kv = /^([^=]+)=(.*)$/.exec(l);
    if (!kv || !cur) throw new Error(`not an INI line: ${l}`);
    const k = kv[1]!.trim();
    cur.set(k, [...(cur.get(k) ?? []), kv[2]!.trim()]);
  }
  return out;
}
