/**
 * Writing an import: the YAML (notes as comments at the top, MACs and on/off quoted for YAML 1.1
 * readers), to -o FILE or stdout, or into the config dir as vms/NAME.yaml + networks/NAME.yaml.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Document, visit } from 'yaml';
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { defPath, writeDef } from '../definition/store.js';
import type { ImportNote, ImportResult } from './types.js';

export function header(r: ImportResult, source: string, what: string): string {
  const lines = [`Imported by \`kvmctl import ${(r as { format?: string }).format ?? 'cmdline'}\` from ${source}${r.line ? ` (line ${r.line})` : ''}: ${what}.`];
  const group = (level: ImportNote['level'], title: string) => {
    const list = r.notes.filter((n) => n.level === level);
    if (!list.length) return;
    lines.push(`${title}:`);
    for (const n of list) lines.push(`  - ${n.line ? `line ${n.line}: ` : ''}${n.message}`);
  };
  group('warning', 'Warnings');
  group('note', 'Notes');
  return lines.map((l) => `# ${l}`.trimEnd()).join('\n') + '\n';
}

function doc(obj: Record<string, unknown>): string {
  const d = new Document(obj);
  // Quote strings that YAML 1.1 readers would take for something else (MACs as base-60 numbers, on/off as booleans).
  visit(d, {
    Scalar(_k, node) {
      if (typeof node.value === 'string' && (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(node.value) || /^(on|off|yes|no|y|n)$/i.test(node.value))) node.type = 'QUOTE_DOUBLE';
    },
  });
  return d.toString({ lineWidth: 0 });
}

/** One YAML text: the networks the script implies, then the VM (for -o FILE or stdout). */
export function importYaml(r: ImportResult, source: string): string {
  const parts = [...r.networks.map(doc), doc(r.vm)];
  return header(r, source, `VM "${r.name}"${r.networks.length ? ` and network${r.networks.length > 1 ? 's' : ''} ${r.networks.map((n) => `"${String(n.name)}"`).join(', ')}` : ''}`) + parts.join('---\n');
}

export type SaveResult = {
  files: string[];
  /** Networks the import implies that were already defined (kept as they are). */
  skipped: { name: string; file: string }[];
  /** Networks the VM's NICs name that are neither imported nor defined: `kvmctl apply` will ask for them. */
  missingNetworks: string[];
};

/**
 * Write the import: to `out` (one multi-document file), or into the config dir (the VM as
 * vms/NAME.yaml, each network as networks/NAME.yaml). Refuses to replace an existing VM
 * definition or file without `force`; an existing network of the same name is kept.
 */
export function saveImport(paths: Paths, r: ImportResult, opts: { source: string; out?: string; force?: boolean }): SaveResult {
  if (opts.out) {
    if (fs.existsSync(opts.out) && !opts.force) throw badInput('FILE_EXISTS', `${opts.out} already exists`, 'use --force to replace it, or pick another -o file');
    fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
    fs.writeFileSync(opts.out, importYaml(r, opts.source));
    return { files: [opts.out], skipped: [], missingNetworks: [] };
  }
  const vmFile = defPath(paths, 'vm', r.name);
  if (fs.existsSync(vmFile) && !opts.force) {
    throw badInput('VM_EXISTS', `VM "${r.name}" is already defined (${vmFile})`, 'use --force to replace it, or --name NAME to import it under another name');
  }
  const files: string[] = [];
  const skipped: SaveResult['skipped'] = [];
  for (const n of r.networks) {
    const name = String(n.name);
    const file = defPath(paths, 'network', name);
    if (fs.existsSync(file) && !opts.force) {
      skipped.push({ name, file });
      continue;
    }
    files.push(writeDef(paths, 'network', name, `# Imported by \`kvmctl import ${(r as { format?: string }).format ?? 'cmdline'}\` from ${opts.source}: the ${String(n.type)} network that VM "${r.name}" uses.\n${doc(n)}`));
  }
  files.push(writeDef(paths, 'vm', r.name, header(r, opts.source, `VM "${r.name}"`) + doc(r.vm)));
  const missingNetworks = [...new Set(r.spec.nics.flatMap((n) => (n.network ? [n.network] : [])))].filter((n) => !fs.existsSync(defPath(paths, 'network', n)));
  return { files, skipped, missingNetworks };
}
