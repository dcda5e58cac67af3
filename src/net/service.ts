/**
 * `kvmctl net …` as service functions (the CLI and the API stay thin): create from YAML with the
 * cross-network safety checks, list/show with live state, up/down/rm by name, gc, export, import.
 */
import fs from 'node:fs';
import { stringify } from 'yaml';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { loadFiles, specError, type Definition } from '../definition/load.js';
import { type NetworkSpec } from '../definition/network.js';
import { natBridgeView } from '../definition/network-views.js';
import { exists, listNames, readAllNetworks, readNetwork, readVm, removeDef, writeDef } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { exportIfupdown } from './export/ifupdown.js';
import { exportNatFiles } from './export/nat.js';
import { exportNetifrc } from './export/netifrc.js';
import { exportNetworkd } from './export/networkd.js';
import { exportScript } from './export/script.js';
import { gcLinks, type GcResult } from './gc.js';
import { importNetifrc, importToYaml } from './import/netifrc.js';
import { netDown, netStatus, netUp, type DownResult, type NetStatus, type UpResult } from './networks.js';
import { networkSetIssues } from './validate.js';

export type NetOpts = { paths: Paths; netns?: string; warn?: (m: string) => void };

export function createNetworks(o: NetOpts, files: string[], replace = false): { name: string; action: 'created' | 'replaced'; file: string }[] {
  return createNetworksFrom(o, loadFiles(files), files.join(', '), replace);
}

/** `createNetworks` on definitions already parsed (the API's request bodies); `label` names their source. */
export function createNetworksFrom(o: NetOpts, defs: Definition[], label: string, replace = false): { name: string; action: 'created' | 'replaced'; file: string }[] {
  const files = [label];
  const vmDefs = defs.filter((d) => d.kind === 'vm');
  if (vmDefs.length) throw badInput('NOT_A_NETWORK', `${files.join(', ')}: holds VM definitions (${vmDefs.map((d) => d.spec.name).join(', ')})`, 'use kvmctl apply -f for files with VMs, or add kind: network');
  if (!defs.length) throw badInput('NOTHING_TO_APPLY', `${files.join(', ')}: no network definitions found`, 'a network definition has kind: network, name: and type:');
  const stored = readAllNetworks(o.paths);
  const issues = [];
  for (const d of defs) {
    if (stored.has(d.spec.name) && !replace) issues.push({ path: `network/${d.spec.name}`, message: `already exists (kvmctl net show ${d.spec.name}); pass --replace to overwrite` });
    stored.set(d.spec.name, d.spec as NetworkSpec);
  }
  const names = new Set(defs.map((d) => d.spec.name));
  issues.push(...networkSetIssues([...stored.values()]).filter((i) => names.has(i.path.split(/[:/]/)[1]!)));
  if (issues.length) throw specError(files.join(', '), issues);
  return defs.map((d) => {
    const had = exists(o.paths, 'network', d.spec.name);
    const text = d.text && defs.length === 1 ? d.text : stringify(d.spec);
    const file = writeDef(o.paths, 'network', d.spec.name, text);
    return { name: d.spec.name, action: had ? 'replaced' : 'created', file };
  });
}

export async function listNetworks(o: NetOpts): Promise<(NetStatus & { description?: string })[]> {
  const nets = readAllNetworks(o.paths);
  return Promise.all([...nets.values()].map(async (n) => ({ ...(await netStatus(n, { netns: o.netns, paths: o.paths })), description: n.description })));
}

export async function showNetwork(o: NetOpts, name: string): Promise<{ spec: NetworkSpec; status: NetStatus }> {
  const spec = readNetwork(o.paths, name);
  return { spec, status: await netStatus(spec, { netns: o.netns, paths: o.paths }) };
}

export async function upNetwork(o: NetOpts, name: string): Promise<UpResult> {
  const all = readAllNetworks(o.paths);
  const net = readNetwork(o.paths, name);
  const issues = networkSetIssues([...all.values()]).filter((i) => i.path.split(/[:/]/)[1] === name);
  if (issues.length) throw specError(`network/${name}`, issues);
  return netUp(net, { paths: o.paths, netns: o.netns, warn: o.warn });
}

export async function downNetwork(o: NetOpts, name: string, force = false): Promise<DownResult> {
  return netDown(readNetwork(o.paths, name), { paths: o.paths, netns: o.netns, force });
}

/** VMs whose NICs name this network. */
export function usersOf(paths: Paths, name: string): string[] {
  const out: string[] = [];
  for (const v of listNames(paths, 'vm')) {
    try {
      if (readVm(paths, v).nics.some((n) => n.network === name)) out.push(v);
    } catch {
      /* broken VM file: kvmctl validate reports it */
    }
  }
  return out;
}

export async function removeNetwork(o: NetOpts, name: string, force = false): Promise<{ down?: DownResult; usedBy: string[] }> {
  const net = readNetwork(o.paths, name);
  const usedBy = usersOf(o.paths, name);
  if (usedBy.length && !force) {
    throw badInput('NETWORK_IN_USE', `network "${name}" is named by VM${usedBy.length > 1 ? 's' : ''} ${usedBy.join(', ')}`, 'change those VMs first, or pass --force');
  }
  const st = await netStatus(net, { netns: o.netns, paths: o.paths });
  let down: DownResult | undefined;
  if (st.state === 'up' || st.state === 'down' || st.state === 'degraded') down = await netDown(net, { paths: o.paths, netns: o.netns, force });
  removeDef(o.paths, 'network', name);
  return { down, usedBy };
}

export async function gcNetworks(o: NetOpts & { isRunning?: (vm: string) => boolean }): Promise<GcResult & { nat: { network: string; steps: string[] }[] }> {
  const links = await gcLinks({ paths: o.paths, netns: o.netns, isRunning: o.isRunning });
  const { natGc } = await import('./nat/nat.js');
  return { ...links, nat: await natGc(o.paths, { netns: o.netns }) };
}

export const EXPORT_FORMATS = ['netifrc', 'networkd', 'ifupdown', 'script'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export function exportNetworks(o: NetOpts, format: string, names: string[]): { text: string; files?: { path: string; content: string }[] } {
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw badInput('BAD_FORMAT', `--format ${format}: not one of ${EXPORT_FORMATS.join(', ')}`);
  const all = readAllNetworks(o.paths);
  const picked = names.length ? names.map((n) => readNetwork(o.paths, n)) : [...all.values()];
  if (!picked.length) throw new KvmError('NO_NETWORKS', 'no networks defined', { hint: 'kvmctl net create -f FILE', exit: 2 });
  const vms: VmSpec[] = [];
  for (const v of listNames(o.paths, 'vm')) {
    try {
      vms.push(readVm(o.paths, v));
    } catch {
      /* skip broken */
    }
  }
  // A nat network's bridge is exported like a host-only one; its firewall, dnsmasq and sysctl files come extra.
  const nets = picked.map((n) => (n.type === 'nat' ? { ...natBridgeView(n), description: `nat network: bridge part; the rest is in kvmctl-${n.name}.nft, dnsmasq-kvmctl-${n.name}.conf, 99-kvmctl-${n.name}.conf` } : n));
  const natFilesOut = picked.flatMap((n) => (n.type === 'nat' ? exportNatFiles(n, vms) : []));
  const withNat = (r: { text: string; files?: { path: string; content: string }[] }) => {
    if (!natFilesOut.length) return r;
    const files = [...(r.files ?? []), ...natFilesOut];
    const text = r.files ? files.map((f) => `### ${f.path}\n${f.content}`).join('\n') : `${r.text}${natFilesOut.map((f) => `\n### ${f.path}\n${f.content}`).join('')}`;
    return { text, files: r.files ? files : [{ path: format === 'netifrc' ? 'net' : format === 'ifupdown' ? 'interfaces' : 'kvmctl-net.sh', content: r.text }, ...natFilesOut] };
  };
  switch (format as ExportFormat) {
    case 'netifrc':
      return withNat({ text: exportNetifrc(nets) });
    case 'ifupdown':
      return withNat({ text: exportIfupdown(nets) });
    case 'script':
      return withNat({ text: exportScript(nets, vms) });
    case 'networkd': {
      const files = exportNetworkd(nets);
      return withNat({ text: files.map((f) => `### ${f.path}\n${f.content}`).join('\n'), files });
    }
  }
}

export function importNetworks(file: string): { yaml: string; warnings: string[]; notes: string[]; count: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw badInput('FILE_NOT_FOUND', `${file}: cannot be read`);
  }
  const r = importNetifrc(text);
  return { yaml: importToYaml(r, file), warnings: r.warnings, notes: r.notes, count: r.networks.length };
}
