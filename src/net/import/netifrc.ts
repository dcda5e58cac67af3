/**
 * Read an OpenRC netifrc file (/etc/conf.d/net) back into kvmctl network definitions: each
 * bridge_BR becomes a `bridge` network (ports with tuntap_X="tap" become its static `taps`, the
 * others its `uplinks`), or `host-only` when it has an address and no uplink. Timers are
 * centiseconds there, seconds here. Everything that cannot be mapped is reported as a warning
 * (host interface addresses and routes, dhcp, unknown variables), never silently dropped.
 */
import { stringify } from 'yaml';
import type { NetworkInput } from '../../definition/network.js';
import { IFNAME_RE, NAME_RE } from '../../definition/names.js';
import { bridgePortIssues, isCidr, mtuIssue, settleSysfsTimers } from '../../definition/network-rules.js';

export type NetifrcVars = { vars: Map<string, string>; functions: Map<string, string[]>; order: string[]; /** 1-based line of each variable's (last) assignment */ lines: Map<string, number> };

/** Parse shell-style assignments (single/double quotes, multi-line values) and depend_X() functions. */
export function parseNetifrc(text: string): NetifrcVars {
  const vars = new Map<string, string>();
  const functions = new Map<string, string[]>();
  const order: string[] = [];
  const lines = new Map<string, number>();
  let i = 0;
  const n = text.length;
  let lineNo = 1;
  let counted = 0;
  const lineAt = (at: number) => {
    for (; counted < at; counted++) if (text[counted] === '\n') lineNo++;
    return lineNo;
  };
  const skipLine = () => {
    while (i < n && text[i] !== '\n') i++;
    i++;
  };
  while (i < n) {
    while (i < n && /[ \t\r\n;]/.test(text[i]!)) i++;
    if (i >= n) break;
    if (text[i] === '#') {
      skipLine();
      continue;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(=|\s*\(\)\s*\{)/.exec(text.slice(i));
    if (!m) {
      skipLine();
      continue;
    }
    const name = m[1]!;
    const at = lineAt(i);
    i += m[0].length;
    if (m[2] !== '=') {
      const end = text.indexOf('}', i);
      const body = text.slice(i, end < 0 ? n : end);
      i = end < 0 ? n : end + 1;
      functions.set(name, body.split(/[;\n]/).map((s) => s.replace(/#.*$/, '').trim()).filter(Boolean));
      order.push(`${name}()`);
      continue;
    }
    let value = '';
    while (i < n && !/[ \t\r\n;]/.test(text[i]!)) {
      const c = text[i]!;
      if (c === '"' || c === "'") {
        const end = text.indexOf(c, i + 1);
        value += text.slice(i + 1, end < 0 ? n : end);
        i = end < 0 ? n : end + 1;
      } else {
        value += c;
        i++;
      }
    }
    vars.set(name, value);
    lines.set(name, at);
    order.push(name);
  }
  return { vars, functions, order, lines };
}

function netmaskToPrefix(mask: string): number | undefined {
  const o = mask.split('.').map(Number);
  if (o.length !== 4 || o.some((x) => !(x >= 0 && x <= 255))) return undefined;
  const bits = o.map((x) => x.toString(2).padStart(8, '0')).join('');
  return /^1*0*$/.test(bits) ? bits.indexOf('0') === -1 ? 32 : bits.indexOf('0') : undefined;
}

/** `192.168.1.1/24`, `192.168.1.1 netmask 255.255.255.0` → CIDR, else undefined. */
function toCidr(entry: string): string | undefined {
  const e = entry.trim();
  if (/^[0-9a-fA-F.:]+\/\d+$/.test(e)) return e;
  const m = /^(\d+\.\d+\.\d+\.\d+)\s+netmask\s+(\S+)/.exec(e);
  if (m) {
    const p = netmaskToPrefix(m[2]!);
    return p === undefined ? undefined : `${m[1]}/${p}`;
  }
  return undefined;
}

export type NetifrcImport = { networks: NetworkInput[]; warnings: string[]; notes: string[] };

export function importNetifrc(text: string): NetifrcImport {
  const { vars, functions, lines } = parseNetifrc(text);
  /** `line N: ` of a variable's assignment, for warnings (the file's own line numbers). */
  const at = (k: string) => (lines.has(k) ? `line ${lines.get(k)}: ` : '');
  const used = new Set<string>();
  const warnings: string[] = [];
  const notes: string[] = [];
  const networks: NetworkInput[] = [];
  const get = (k: string) => {
    if (vars.has(k)) used.add(k);
    return vars.get(k);
  };
  const bridges = [...vars.keys()].filter((k) => /^bridge_/.test(k) && !/^bridge_(forward_delay|hello_time|stp_state|multicast_snooping|vlan_filtering|max_age|ageing_time|priority|add)_/.test(k));
  const inBridge = new Set<string>();
  for (const key of bridges) {
    const br = key.slice('bridge_'.length);
    used.add(key);
    if (!NAME_RE.test(br) || !IFNAME_RE.test(br)) {
      warnings.push(`${at(key)}${key}: "${br}" cannot be a kvmctl network name and bridge interface (1–15 letters, digits, "_", "." or "-", starting with a letter or digit); not imported`);
      continue;
    }
    const ports = (vars.get(key) ?? '').split(/\s+/).filter(Boolean).filter((p) => {
      if (IFNAME_RE.test(p)) return true;
      warnings.push(`${at(key)}${key}: port "${p}" is not an interface name; left out`);
      return false;
    });
    const taps: string[] = [];
    const uplinks: string[] = [];
    for (const p of ports) {
      inBridge.add(p);
      const tt = get(`tuntap_${p}`);
      if (tt === 'tap') taps.push(p);
      else {
        if (tt !== undefined) warnings.push(`tuntap_${p}="${tt}": only "tap" maps to a static tap; ${p} taken as an uplink`);
        uplinks.push(p);
      }
      const cfg = get(`config_${p}`);
      if (cfg !== undefined && cfg !== 'null') warnings.push(`config_${p}="${cfg}": a bridge port should have no address; ignored`);
    }
    const addresses: string[] = [];
    const cfg = get(`config_${br}`);
    for (const entry of (cfg ?? 'null').split('\n').map((s) => s.trim()).filter(Boolean)) {
      if (entry === 'null' || entry === 'noop') continue;
      const c = toCidr(entry);
      if (c && isCidr(c)) addresses.push(c);
      else warnings.push(`config_${br}: "${entry}" cannot be mapped (kvmctl sets static host addresses only; dhcp is for the host's own config)`);
    }
    // The kernel's rules (src/definition/network-rules.ts, shared with the validator): a port that is the
    // bridge itself or comes twice is enslaved once (or never), so it is left out here too.
    for (const i of bridgePortIssues(br, [...uplinks], [...taps]).reverse()) {
      (i.path === 'uplinks' ? uplinks : taps).splice(i.index, 1);
      warnings.push(`${at(key)}${key}: ${i.message}; left out of ${i.path}`);
    }
    const net: Record<string, unknown> = { kind: 'network', name: br };
    net.type = addresses.length && uplinks.length === 0 ? 'host-only' : 'bridge';
    if (net.type === 'bridge') net.uplinks = uplinks;
    if (taps.length) net.taps = taps;
    if (addresses.length) net.addresses = addresses;
    const num = (k: string) => {
      const v = get(k);
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v)) {
        warnings.push(`${k}="${v}" is not a number; ignored`);
        return undefined;
      }
      return Number(v);
    };
    const fdKey = `bridge_forward_delay_${br}`;
    const htKey = `bridge_hello_time_${br}`;
    const stpKey = `bridge_stp_state_${br}`;
    const fd = num(fdKey);
    const ht = num(htKey);
    const stp = num(stpKey);
    // netifrc writes these to sysfs in the files' order (forward_delay, hello_time, stp_state): import what the bridge ends up with.
    const t = settleSysfsTimers({ stp: stp === undefined ? undefined : stp !== 0, forwardDelay: fd === undefined ? undefined : fd / 100, helloTime: ht === undefined ? undefined : ht / 100 });
    for (const w of t.notes) {
      const k = w.field === 'helloTime' ? htKey : fdKey;
      warnings.push(`${at(k)}${k}="${vars.get(k)}"${w.field === 'forwardDelay' && t.stp ? ` with ${stpKey}="${vars.get(stpKey)}" (${at(stpKey).slice(0, -2)})` : ''}: ${w.message}`);
    }
    if (t.forwardDelay !== undefined) net.forwardDelay = t.forwardDelay;
    if (t.helloTime !== undefined) net.helloTime = t.helloTime;
    if (t.stp !== undefined) net.stp = t.stp;
    const snoop = num(`bridge_multicast_snooping_${br}`);
    if (snoop !== undefined) net.igmpSnooping = snoop !== 0;
    const vf = num(`bridge_vlan_filtering_${br}`);
    if (vf !== undefined) net.vlanFiltering = vf !== 0;
    const mtu = num(`mtu_${br}`);
    const mtuBad = mtu === undefined ? undefined : mtuIssue(mtu);
    if (mtuBad) warnings.push(`${at(`mtu_${br}`)}mtu_${br}="${mtu}": ${mtuBad}; not imported`);
    else if (mtu !== undefined) net.mtu = mtu;
    const dep = functions.get(`depend_${br}`);
    if (dep) {
      functions.delete(`depend_${br}`);
      for (const d of dep) {
        const m = /^need\s+(.+)$/.exec(d);
        const missing = m ? m[1]!.split(/\s+/).filter((s) => !ports.includes(s.replace(/^net\./, ''))) : [d];
        if (missing.length) warnings.push(`depend_${br}(): "${d}" is not one of the bridge's ports; kvmctl orders bridge start by itself`);
      }
    }
    for (const t of taps) notes.push(`static tap ${t} is made by network ${br}: attach a VM with  nics: [{ tap: ${t} }]  (or use network: ${br} and let kvmctl make a tap per VM)`);
    networks.push(net as NetworkInput);
  }
  for (const [k, v] of vars) {
    if (used.has(k)) continue;
    const t = /^tuntap_(.+)$/.exec(k);
    if (t && !inBridge.has(t[1]!)) {
      warnings.push(`${k}="${v}": tap ${t[1]} is in no bridge; kvmctl keeps static taps with their bridge (attach VMs with tap: ${t[1]} if the host makes it)`);
      continue;
    }
    warnings.push(`${k}="${v.replace(/\n/g, ' ')}": not a bridge setting; left to the host's own network config`);
  }
  for (const f of functions.keys()) warnings.push(`${f}(): not mapped`);
  return { networks, warnings, notes };
}

/** The imported networks as one multi-document YAML text (notes and warnings as comments). */
export function importToYaml(r: NetifrcImport, source: string): string {
  const head = [`# Imported by kvmctl net import netifrc ${source}`, ...r.notes.map((n) => `# note: ${n}`), ...r.warnings.map((w) => `# not mapped: ${w}`)];
  return `${head.join('\n')}\n${r.networks.map((n) => stringify(n)).join('---\n')}`;
}
