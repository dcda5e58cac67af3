/**
 * What every importer (libvirt XML, Proxmox .conf; the command-line importer in
 * src/qemu/import.ts shares the result type) hands back: the definition in its input form, the
 * networks it implies, notes, and a fidelity account — what was kept as is, what was translated
 * to kvmctl's way (with why), and what could not be kept. `finish()` validates the definition,
 * so an importer can never write one that `kvmctl apply` would refuse.
 */
import { KvmError } from '../errors.js';
import type { ImportNote, ImportResult } from '../qemu/import.js';
import { validateNetwork, validateVm } from '../definition/load.js';
import { NAME_RE } from '../definition/names.js';

export type Fidelity = { kept: string[]; translated: string[]; lost: string[] };
export type Imported = ImportResult & { fidelity: Fidelity; format: 'libvirt' | 'proxmox' };

export class Notes {
  readonly notes: ImportNote[] = [];
  readonly fidelity: Fidelity = { kept: [], translated: [], lost: [] };
  /** Kept as the source has it. */
  kept(what: string): void {
    this.fidelity.kept.push(what);
  }
  /** Kept, but changed to kvmctl's way; says how. */
  translated(what: string, how: string): void {
    this.fidelity.translated.push(what);
    this.notes.push({ level: 'note', message: `${what}: ${how}` });
  }
  /** Not kept: a warning with the reason. */
  lost(what: string, why: string): void {
    this.fidelity.lost.push(what);
    this.notes.push({ level: 'warning', message: `${what}: ${why}` });
  }
  note(message: string): void {
    this.notes.push({ level: 'note', message });
  }
}

/** A name kvmctl accepts, from whatever the source calls the VM. */
export function safeName(raw: string | undefined, fallback: string, n: Notes): string {
  const s = (raw ?? '').trim();
  if (NAME_RE.test(s)) return s;
  const fixed = s.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || fallback;
  n.translated(`name "${s}"`, `"${fixed}" (kvmctl names are letters, digits, "_", "." and "-")`);
  return fixed;
}

/** Validate and package the import; a definition that does not validate is an error listing every problem. */
export function finish(format: Imported['format'], name: string, vm: Record<string, unknown>, networks: Record<string, unknown>[], n: Notes, source: string): Imported {
  dropBootWithoutDevice(vm, n);
  const spec = validateVm(vm, source);
  const networkSpecs = networks.map((x) => validateNetwork(x, source));
  return { format, name, vm, networks, spec, networkSpecs, notes: n.notes, argv: [], fidelity: n.fidelity };
}

/**
 * A boot order may name a device kind the domain has none of (libvirt's <boot dev='network'/> with
 * no interface, say); the firmware skips it, so the import leaves it out, with a warning.
 */
function dropBootWithoutDevice(vm: Record<string, unknown>, n: Notes): void {
  const boot = vm.boot as { order?: string[]; menu?: boolean } | undefined;
  if (!boot?.order) return;
  const has: Record<string, boolean> = { disk: Array.isArray(vm.disks) && vm.disks.length > 0, cdrom: Array.isArray(vm.cdroms) && vm.cdroms.length > 0, network: Array.isArray(vm.nics) && vm.nics.length > 0 };
  const gone = boot.order.filter((x) => has[x] === false);
  if (!gone.length) return;
  const order = boot.order.filter((x) => has[x] !== false);
  n.lost(`boot from ${gone.join(', ')}`, `the domain has no ${gone.map((g) => (g === 'network' ? 'interface' : g)).join(' or ')} to boot from (the firmware would skip it)`);
  if (order.length) vm.boot = { ...boot, order };
  else if (boot.menu) vm.boot = { order: ['disk'], menu: true };
  else delete vm.boot;
}

export function importError(code: string, message: string, hint?: string): KvmError {
  return new KvmError(code, message, { exit: 2, hint });
}

/** Bytes from a number and a libvirt/Proxmox unit (b, KiB, K, KB, MiB, M, MB, GiB, …). */
export function toBytes(value: string | number, unit = 'KiB'): number | undefined {
  const v = Number(value);
  if (!Number.isFinite(v) || v < 0) return undefined;
  const u = unit.toLowerCase();
  const bin: Record<string, number> = { b: 1, bytes: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };
  const dec: Record<string, number> = { kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
  const m = bin[u] ?? dec[u];
  return m === undefined ? undefined : Math.round(v * m);
}

/** A memory size as the definition writes it: the largest unit that divides it, else rounded up to MiB. */
export function sizeText(bytes: number): string {
  for (const [s, m] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2]] as const) if (bytes >= m && bytes % m === 0) return `${bytes / m}${s}`;
  return `${Math.max(1, Math.ceil(bytes / 1024 ** 2))}M`; // libvirt rounds up to MiB too
}

export { baseMachine } from './generated-line.js';
