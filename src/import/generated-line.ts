/**
 * Command lines that tools generate (libvirt, Proxmox) before the option mapping of
 * src/qemu/import.ts sees them:
 *  - JSON option values (`-device '{"driver":"virtio-blk-pci","drive":"libvirt-1-format",…}'`,
 *    `-netdev '{"type":"tap",…}'`, `-object '{"qom-type":…}'`) become QEMU's key=value syntax
 *    (nested objects as dotted keys, booleans as on/off, commas doubled);
 *  - `-blockdev` graphs (JSON or key=value: a protocol node `file`/`host_device`/`host_cdrom`
 *    with the filename, a format node `qcow2`/`raw`/… on it, filters such as `throttle` and
 *    `copy-on-read` on top) become one `-drive if=none,id=NODE,file=…,format=…` per node a
 *    `-device … drive=NODE` uses, so the -drive/-device pairing imports them as disks. A chain
 *    ending in network storage (nbd, rbd, iscsi, …) is left as it is: it goes to extraArgs
 *    with a warning like every option kvmctl has no field for.
 */
import { parseOpts } from '../qemu/parse-opts.js';
import type { Word } from '../qemu/shell-words.js';

type Node = Record<string, unknown>;
/** The same shape as ImportNote in src/qemu/import.ts (which imports this file). */
type ImportNote = { level: 'warning' | 'note'; message: string; line?: number };
const FORMATS = new Set(['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'qed']);
const FILTERS = new Set(['throttle', 'copy-on-read', 'compress', 'preallocate', 'blkdebug', 'blklogwrites']);
const PROTOCOLS = new Set(['file', 'host_device', 'host_cdrom']);
/** The key QEMU's key=value syntax takes without a name, per option. */
const IMPLIED: Record<string, string> = { device: 'driver', netdev: 'type', object: 'qom-type', chardev: 'backend', audiodev: 'driver', vnc: 'display', boot: 'order' };

const esc = (v: string) => v.replace(/,/g, ',,');

/** `{"a":{"b":1},"c":true}` → [["a.b","1"],["c","on"]]. */
function flatten(o: Node, prefix = ''): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v as Node, key));
    else if (Array.isArray(v)) v.forEach((x, i) => (x && typeof x === 'object' ? out.push(...flatten(x as Node, `${key}.${i}`)) : out.push([`${key}.${i}`, String(x)])));
    else out.push([key, typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v)]);
  }
  return out;
}

/** A JSON option value in QEMU's key=value syntax, the implied key's value first. */
export function jsonToOpts(option: string, json: Node): string {
  const implied = IMPLIED[option];
  const pairs = flatten(json);
  const head = implied ? pairs.find(([k]) => k === implied) : undefined;
  const rest = pairs.filter((p) => p !== head);
  return [...(head ? [esc(head[1])] : []), ...rest.map(([k, v]) => `${k}=${esc(v)}`)].join(',');
}

function parseJson(text: string): Node | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : undefined;
  } catch {
    return undefined;
  }
}

/** A -blockdev in key=value syntax as a (flat, dotted-key) node. */
function kvNode(text: string): Node {
  const p = parseOpts(text);
  return Object.fromEntries(p.pairs);
}

type Resolved = { filename: string; format?: string; readOnly: boolean; cache?: string; discard?: string; filters: string[] } | { reason: string };

function resolve(name: string, nodes: Map<string, Node>, seen = new Set<string>()): Resolved {
  const n = nodes.get(name);
  if (!n) return { reason: `no -blockdev node "${name}"` };
  if (seen.has(name)) return { reason: `-blockdev node "${name}" refers to itself` };
  seen.add(name);
  const drv = String(n.driver ?? '');
  const ro = n['read-only'] === true || n['read-only'] === 'on';
  const cacheOf = (x: Node): string | undefined => {
    const direct = x['cache.direct'] ?? (x.cache as Node | undefined)?.direct;
    const noFlush = x['cache.no-flush'] ?? (x.cache as Node | undefined)?.['no-flush'];
    if (direct === undefined && noFlush === undefined) return undefined;
    if (noFlush === true || noFlush === 'on') return 'unsafe';
    return direct === true || direct === 'on' ? 'none' : 'writeback';
  };
  const child = (): string | Node | undefined => (n.file as string | Node | undefined) ?? (typeof n['file.driver'] === 'string' ? Object.fromEntries(Object.entries(n).filter(([k]) => k.startsWith('file.')).map(([k, v]) => [k.slice(5), v])) : undefined);
  const next = (): Resolved => {
    const c = child();
    if (c === undefined) return { reason: `-blockdev ${drv} node "${name}" has no file` };
    if (typeof c === 'string') return resolve(c, nodes, seen);
    const inner = `${name}/file`;
    nodes.set(inner, c);
    return resolve(inner, nodes, seen);
  };
  if (PROTOCOLS.has(drv)) {
    if (typeof n.filename !== 'string') return { reason: `-blockdev ${drv} node "${name}" has no filename` };
    return { filename: n.filename, readOnly: ro, cache: cacheOf(n), discard: typeof n.discard === 'string' ? n.discard : undefined, filters: [] };
  }
  if (n.encrypt !== undefined || Object.keys(n).some((k) => k.startsWith('encrypt.')))
    return { reason: `-blockdev node "${name}" is an encrypted ${drv} image (opened with a secret kvmctl does not hold)` };
  if (FORMATS.has(drv) || FILTERS.has(drv)) {
    const r = next();
    if ('reason' in r) return r;
    return {
      ...r,
      format: FORMATS.has(drv) ? drv : r.format,
      readOnly: ro || r.readOnly,
      cache: cacheOf(n) ?? r.cache,
      discard: typeof n.discard === 'string' ? n.discard : r.discard,
      filters: FILTERS.has(drv) ? [drv, ...r.filters] : r.filters,
    };
  }
  return { reason: `-blockdev node "${name}" is ${drv || 'of no driver'} storage (${drv === 'nbd' || drv === 'rbd' || drv === 'iscsi' || drv === 'gluster' ? 'network storage' : 'no kvmctl field'})` };
}

/**
 * Keys tools add that change nothing kvmctl keeps, or that kvmctl must not pass on: dropped with a
 * note (option → keys → why). Values are matched in key=value syntax (after the JSON rewrite).
 */
const STRIP: { option: string; keys: string[]; why: string; when?: (v: Map<string, string>) => boolean }[] = [
  { option: 'drive', keys: ['detect-zeroes'], why: 'QEMU detects zero writes itself only when asked; kvmctl does not set it' },
  { option: 'device', keys: ['rx_queue_size', 'tx_queue_size'], why: 'virtio-net queue sizes are left at QEMU\'s defaults (tuning: issue #20)' },
  { option: 'netdev', keys: ['script', 'downscript'], why: "Proxmox's pve-bridge scripts add the tap to netN's bridge; kvmctl never runs tap scripts: the tap must exist (tap:), or use network: BRIDGE", when: (v) => /\/qemu-server\/pve-bridge/.test(v.get('script') ?? '') },
  { option: 'boot', keys: ['strict', 'reboot-timeout', 'splash', 'splash-time'], why: "boot-menu cosmetics; kvmctl's boot order comes from boot:" },
  { option: 'vnc', keys: ['password'], why: "kvmctl's VNC is a unix socket only the VM's owner can open" },
];

/** Options QEMU has deprecated, renamed or removed (QEMU's docs/about/removed-features.rst): what to use. */
const RETIRED: Record<string, string> = {
  nodefconfig: 'removed in QEMU 4.0: -no-user-config (kvmctl always passes it)',
  'no-kvm': 'removed in QEMU 5.2: -machine accel=tcg (machine.accel: [tcg])',
  'no-hpet': 'deprecated: -machine hpet=off',
  soundhw: 'removed in QEMU 7.1: -audiodev + -device (e.g. intel-hda + hda-duplex)',
  realtime: 'removed in QEMU 6.0: -overcommit mem-lock=on',
  tdf: 'removed in QEMU 5.0: no replacement (the guest clock drift fix is automatic)',
  balloon: 'removed in QEMU 3.1: -device virtio-balloon',
  usbdevice: 'removed in QEMU 3.1: -device usb-… on a USB controller',
  'no-frame': 'removed: -display sdl,window-close=…',
};

function stripKnown(words: Word[], notes: ImportNote[]): void {
  for (let i = 0; i < words.length - 1; i++) {
    const opt = /^--?([A-Za-z][\w-]*)$/.exec(words[i]!.text)?.[1];
    if (!opt) continue;
    if (opt === 'nodefconfig') {
      notes.push({ level: 'note', line: words[i]!.line, message: `-nodefconfig: ${RETIRED[opt]}; left out` });
      words.splice(i, 1);
      i--;
      continue;
    }
    if (RETIRED[opt]) notes.push({ level: 'warning', line: words[i]!.line, message: `-${opt}: ${RETIRED[opt]}; this QEMU (7.2) may refuse it — kept as written` });
    if (opt === 'id' && /^\d+$/.test(words[i + 1]!.text)) {
      notes.push({ level: 'note', line: words[i]!.line, message: `-id ${words[i + 1]!.text}: Proxmox's own QEMU option (the VM id), not in upstream QEMU: left out` });
      words.splice(i, 2);
      i--;
      continue;
    }
    if (opt === 'no-shutdown') {
      notes.push({ level: 'note', line: words[i]!.line, message: '-no-shutdown: left out (kvmctl needs QEMU to end when the guest powers off)' });
      words.splice(i, 1);
      i--;
      continue;
    }
    const v = words[i + 1]!;
    if (opt === 'smp') {
      const p = parseOpts(v.text, 'cpus');
      const n = p.get('cpus') ?? String(['sockets', 'cores', 'threads'].reduce((a, k) => a * Number(p.get(k) ?? 1), 1));
      if (p.get('maxcpus') !== undefined && p.get('maxcpus') === n) {
        words[i + 1] = { ...v, text: new QemuOptsText(p.pairs.filter(([k]) => k !== 'maxcpus')).toString() };
        notes.push({ level: 'note', line: v.line, message: `-smp maxcpus=${n}: the same as the vCPU count, left out` });
      }
      continue;
    }
    for (const st of STRIP.filter((x) => x.option === opt)) {
      const p = parseOpts(v.text, IMPLIED[opt]);
      const map = new Map(p.pairs);
      if (!st.keys.some((k) => map.has(k)) || (st.when && !st.when(map))) continue;
      const gone = p.pairs.filter(([k]) => st.keys.includes(k));
      words[i + 1] = { ...v, text: new QemuOptsText(p.pairs.filter(([k]) => !st.keys.includes(k)), IMPLIED[opt]).toString() };
      notes.push({ level: 'note', line: v.line, message: `-${opt} ${gone.map(([k, x]) => `${k}=${x}`).join(',')}: ${st.why}; left out` });
    }
  }
}

/** key=value pairs back to QEMU's syntax (the implied key first, without its name). */
class QemuOptsText {
  constructor(private pairs: [string, string][], private implied?: string) {}
  toString(): string {
    const head = this.implied ? this.pairs.find(([k]) => k === this.implied) : undefined;
    return [...(head ? [esc(head[1])] : []), ...this.pairs.filter((p) => p !== head).map(([k, v]) => (v === '' ? k : `${k}=${esc(v)}`))].join(',');
  }
}

/** Rewrite generated-line syntax into what the option mapping understands; notes say what was done. */
export function normalizeGenerated(words: Word[]): { words: Word[]; notes: ImportNote[] } {
  const notes: ImportNote[] = [];
  const out: Word[] = [];
  const blockdevs: { name: string; node: Node; flag: Word; value: Word }[] = [];
  let jsonCount = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const opt = /^--?([A-Za-z][\w-]*)$/.exec(w.text)?.[1];
    const v = words[i + 1];
    if (!opt || !v) {
      out.push(w);
      continue;
    }
    if (opt === 'blockdev') {
      const node = parseJson(v.text) ?? kvNode(v.text);
      const name = String(node['node-name'] ?? '');
      if (name) {
        blockdevs.push({ name, node, flag: w, value: v });
        i++;
        continue;
      }
    }
    const json = parseJson(v.text);
    if (json && opt !== 'readconfig') {
      out.push(w, { ...v, text: jsonToOpts(opt, json) });
      jsonCount++;
      i++;
      continue;
    }
    out.push(w);
  }
  stripKnown(out, notes);
  if (jsonCount) notes.push({ level: 'note', line: words[0]?.line, message: `${jsonCount} option value${jsonCount === 1 ? '' : 's'} in JSON syntax (as libvirt writes them) read as key=value` });
  if (!blockdevs.length) return { words: out, notes };

  const nodes = new Map(blockdevs.map((b) => [b.name, b.node]));
  // Nodes a device uses: drive=NAME on any -device.
  const used = new Set<string>();
  for (let i = 0; i < out.length; i++) {
    if (/^--?device$/.test(out[i]!.text) && out[i + 1]) {
      const d = parseOpts(out[i + 1]!.text, 'driver').get('drive');
      if (d && nodes.has(d)) used.add(d);
    }
  }
  const consumed = new Set<string>();
  const synth: Word[] = [];
  for (const name of used) {
    const r = resolve(name, new Map(nodes));
    const b = blockdevs.find((x) => x.name === name)!;
    if ('reason' in r) {
      notes.push({ level: 'warning', line: b.flag.line, message: `${r.reason}: kept as written` });
      continue;
    }
    // Every node of this chain is accounted for.
    const chain = [name];
    for (let cur = nodes.get(name); cur && typeof cur.file === 'string'; cur = nodes.get(cur.file as string)) chain.push(cur.file as string);
    chain.forEach((c) => consumed.add(c));
    // -blockdev never probes: a device on a protocol node reads it as raw.
    const kv = [`if=none`, `id=${esc(name)}`, `file=${esc(r.filename)}`, `format=${r.format ?? 'raw'}`, ...(r.readOnly ? ['readonly=on'] : []), ...(r.cache ? [`cache=${r.cache}`] : []), ...(r.discard ? [`discard=${r.discard}`] : [])].join(',');
    synth.push({ ...b.flag, text: '-drive' }, { ...b.value, text: kv, unresolved: [] });
    notes.push({ level: 'note', line: b.flag.line, message: `-blockdev chain ${chain.join(' → ')} (${r.filename}, ${r.format ?? 'raw'}) imported as a disk${r.filters.length ? `; filter${r.filters.length > 1 ? 's' : ''} ${r.filters.join(', ')} dropped (no kvmctl field)` : ''}` });
  }
  // Nodes left over (unused, or in a chain that did not resolve) stay as written.
  const left = blockdevs.filter((b) => !consumed.has(b.name)).flatMap((b) => [b.flag, b.value]);
  return { words: [...out, ...synth, ...left], notes };
}

/** Base machine type of a versioned or vendor one (pc-q35-8.1 → q35, pc-i440fx-8.1+pve0 → pc). */
export function baseMachine(m: string | undefined): { type: string; versioned: boolean } {
  if (!m) return { type: 'pc', versioned: false };
  if (/^(pc-)?q35/.test(m)) return { type: 'q35', versioned: m !== 'q35' };
  if (/^pc(-i440fx.*|-\d.*)?(\+.*)?$/.test(m)) return { type: 'pc', versioned: m !== 'pc' };
  if (m === 'microvm') return { type: 'microvm', versioned: false };
  return { type: m.replace(/\+.*$/, ''), versioned: m.includes('+') };
}
