/**
 * `kvmctl import libvirt --all DIR`: every XML file in DIR — networks (root <network>) first, so
 * the domains' `network:` NICs find them, then domains — each written like a single import. A
 * file that fails is reported with its reason and the others go on; nothing that exists is
 * replaced without `force`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Paths } from '../host/paths.js';
import { saveImport } from '../qemu/import.js';
import { defPath, writeDef } from '../definition/store.js';
import { vmPathIssues } from '../vm/path-check.js';
import { importLibvirt } from './libvirt.js';
import { importLibvirtNetwork, isNetworkXml } from './libvirt-network.js';

export type AllOutcome = { file: string; kind: 'vm' | 'network'; name?: string; ok: boolean; written?: string[]; why?: string; warnings: number };

/** A network definition as YAML text. */
export const networkYaml = (net: Record<string, unknown>) => stringify(net, { lineWidth: 0 });

export function saveNetwork(paths: Paths, net: Record<string, unknown>, source: string, force = false): string {
  const name = String(net.name);
  const file = defPath(paths, 'network', name);
  if (fs.existsSync(file) && !force) throw Object.assign(new Error(`network "${name}" is already defined (${file})`), { code: 'NETWORK_EXISTS' });
  return writeDef(paths, 'network', name, `# Imported by \`kvmctl import libvirt\` from ${source}.\n${stringify(net, { lineWidth: 0 })}`);
}

export function importLibvirtDir(paths: Paths, dir: string, opts: { force?: boolean; pools?: Record<string, string> } = {}): AllOutcome[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.xml')).sort().map((f) => path.join(dir, f));
  return importLibvirtTexts(paths, files.map((f) => ({ source: f, text: fs.readFileSync(f, 'utf8') })), opts);
}

/** Import domain and network XML texts: networks first (the domains' NICs name them), each reported. */
export function importLibvirtTexts(paths: Paths, texts: { source: string; text: string }[], opts: { force?: boolean; pools?: Record<string, string> } = {}): AllOutcome[] {
  const out: AllOutcome[] = [];
  const fail = (f: string, kind: AllOutcome['kind'], e: unknown) => out.push({ file: f, kind, ok: false, why: `${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message.split('\n')[0]}`, warnings: 0 });
  for (const { source: f, text: t } of texts.filter((x) => isNetworkXml(x.text))) {
    try {
      const r = importLibvirtNetwork(t, { source: f });
      out.push({ file: f, kind: 'network', name: r.name, ok: true, written: [saveNetwork(paths, r.network, f, opts.force)], warnings: r.notes.filter((n) => n.level === 'warning').length });
    } catch (e) {
      fail(f, 'network', e);
    }
  }
  for (const { source: f, text: t } of texts.filter((x) => !isNetworkXml(x.text))) {
    try {
      const r = importLibvirt(t, { source: f, pools: opts.pools });
      const outside = vmPathIssues(r.spec, paths);
      if (outside.length) throw Object.assign(new Error(`${outside.length} path(s) outside the storage roots: ${outside.map((i) => i.path).join(', ')}`), { code: 'PATH_OUTSIDE_ROOTS' });
      const saved = saveImport(paths, r, { source: f, force: opts.force });
      out.push({ file: f, kind: 'vm', name: r.name, ok: true, written: saved.files, warnings: r.notes.filter((n) => n.level === 'warning').length });
    } catch (e) {
      fail(f, 'vm', e);
    }
  }
  return out;
}
