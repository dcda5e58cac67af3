/**
 * Launch script → VM definition (`kvmctl import cmdline`). The script is tokenized without
 * running anything (shell-words.ts); the QEMU command in it is mapped option by option onto the
 * definition's input form (src/spec/vm.ts). What cannot be mapped is kept in `extraArgs`
 * verbatim and reported as a warning: nothing is dropped silently. Where QEMU's own default
 * differs from kvmctl's (machine pc, accel tcg, cpu qemu64, 128M, one user-mode NIC, a window),
 * the import keeps QEMU's meaning and says so in a note.
 */
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import { validateNetwork, validateVm } from '../spec/load.js';
import { IFNAME_RE, MAC_RE, NAME_RE } from '../spec/names.js';
import { parseSize, formatSize } from '../spec/units.js';
import { CACHE_MODES, DISK_FORMATS, SECURITY_MODELS, type VmSpec } from '../spec/vm.js';
import { baseMachine, normalizeGenerated } from '../import/generated-line.js';
import { parseBool, parseOpts, type QemuOpts } from './parse-opts.js';
import { expandKnown, parseShell, type Redirect, type ShellCommand, type Word } from './shell-words.js';

import type { ImportNote, ImportOptions, ImportResult } from '../import/types.js';
export type { ImportNote, ImportOptions, ImportResult } from '../import/types.js';
export { importYaml, saveImport, type SaveResult } from '../import/write.js';

const QEMU_BIN = /^(qemu-system-[A-Za-z0-9_-]+|qemu-kvm|kvm)$/;
const WRAPPERS = new Set(['exec', 'sudo', 'doas', 'env', 'nice', 'ionice', 'nohup', 'taskset', 'numactl', 'chrt', 'time', 'command', 'setsid', 'stdbuf']);
/** QEMU options that take no argument (everything else takes one). */
const FLAGS = new Set([
  'enable-kvm', 'nographic', 'daemonize', 'no-user-config', 'nodefaults', 'usb', 'no-reboot', 'no-shutdown', 'S', 's',
  'snapshot', 'no-hpet', 'no-acpi', 'full-screen', 'no-fd-bootchk', 'no-quit', 'enable-fips', 'only-migratable', 'version',
  'help', 'h', 'no-frame', 'alt-grab', 'ctrl-grab', 'win2k-hack', 'rtc-td-hack', 'preconfig', 'nodefconfig', 'enable-sync-profile',
  // Flags of older QEMUs that still appear in scripts.
  'no-kvm', 'no-kvm-irqchip', 'no-kvm-pit', 'no-kvm-pit-reinjection', 'enable-nesting', 'localtime', 'std-vga', 'curses', 'sdl', 'no-quit',
]);
/** Options known to take a value; an unknown option followed by another option is read as a flag. */
const VALUED = new Set([
  'name', 'machine', 'M', 'accel', 'cpu', 'smp', 'm', 'drive', 'hda', 'hdb', 'hdc', 'hdd', 'cdrom', 'fda', 'fdb', 'boot', 'netdev', 'nic', 'net',
  'device', 'object', 'chardev', 'fsdev', 'virtfs', 'monitor', 'mon', 'qmp', 'qmp-pretty', 'serial', 'parallel', 'display', 'vnc', 'vga', 'kernel',
  'initrd', 'append', 'dtb', 'runas', 'run-with', 'chroot', 'pidfile', 'sandbox', 'msg', 'rtc', 'global', 'bios', 'L', 'k', 'audiodev', 'soundhw',
  'incoming', 'loadvm', 'D', 'd', 'trace', 'spice', 'usbdevice', 'numa', 'mem-path', 'mem-prealloc', 'overcommit', 'smbios', 'fw_cfg', 'iscsi',
  'blockdev', 'add-fd', 'semihosting-config', 'icount', 'watchdog', 'watchdog-action', 'action', 'compat', 'set', 'readconfig', 'gdb', 'uuid',
]);
const NIC_MODELS: Record<string, 'virtio' | 'e1000' | 'e1000e' | 'rtl8139' | 'vmxnet3'> = {
  virtio: 'virtio', 'virtio-net': 'virtio', 'virtio-net-pci': 'virtio', 'virtio-net-pci-non-transitional': 'virtio',
  'virtio-net-pci-transitional': 'virtio', 'virtio-net-device': 'virtio', e1000: 'e1000', e1000e: 'e1000e', rtl8139: 'rtl8139', vmxnet3: 'vmxnet3',
};
/** Device keys kvmctl sets itself (placement, ids, boot index): dropped with a note. */
// Where a device sits (bus, slot, IDE unit, SCSI target/LUN), its boot index, and write-cache (follows the drive's cache mode): kvmctl sets these itself.
const DEVICE_PLACEMENT = ['id', 'bus', 'addr', 'bootindex', 'unit', 'channel', 'scsi-id', 'lun', 'write-cache'];

type Opt = {
  name: string;
  value?: string;
  word?: Word;
  line: number;
  /** mapped into the definition, dropped with a note, or kept in extraArgs */
  status?: 'mapped' | 'dropped' | 'extra';
  reason?: string;
  spelled: string;
};

type Nic = { id?: string; network?: string; tap?: string; user?: true | { forwards: unknown[] }; model: string; mac?: string; vhost?: 'on' | 'off' };
type Disk = Record<string, unknown> & { file: string };

/** Import the QEMU command of a launch script (or a pasted command line). */
export function importCommandLine(text: string, opts: ImportOptions = {}): ImportResult {
  const sh = parseShell(text);
  const notes: ImportNote[] = [];
  const qemuCmds = sh.commands.filter((c) => qemuIndex(c) >= 0);
  let words: Word[];
  let redirects: Redirect[] = [];
  let line: number | undefined;
  let used: ShellCommand[];
  let binary: string | undefined;
  if (qemuCmds.length > 0) {
    const c = qemuCmds[0]!;
    const at = qemuIndex(c);
    if (at > 0) notes.push({ level: 'note', line: c.line, message: `"${c.words.slice(0, at).map((w) => w.text).join(' ')}" before QEMU is not imported (kvmctl starts QEMU itself)` });
    if (c.env.length) notes.push({ level: 'warning', line: c.line, message: `environment ${c.env.map((w) => w.text).join(' ')} for QEMU is not imported` });
    binary = c.words[at]!.text;
    words = c.words.slice(at + 1);
    redirects = c.redirects;
    line = c.line;
    used = [c];
    if (qemuCmds.length > 1) notes.push({ level: 'warning', line: qemuCmds[1]!.line, message: `${qemuCmds.length} QEMU commands in the script: imported the first (line ${c.line}) only` });
  } else {
    // A pasted fragment: lines that start with an option, e.g. the seed's `-netdev … 3<>/dev/tap…`.
    used = sh.commands.filter((c) => c.words[0]?.text.startsWith('-'));
    if (used.length === 0) {
      throw badInput('NO_QEMU_COMMAND', `${opts.source ?? 'input'}: no QEMU command found (no qemu-system-* command and no lines of -options)`, 'give the script that starts QEMU, or paste its command line');
    }
    words = used.flatMap((c) => c.words);
    redirects = used.flatMap((c) => c.redirects);
    line = used[0]!.line;
    notes.push({ level: 'note', line, message: 'no qemu-system-* command: imported the lines that start with an option as its arguments' });
  }
  if (binary && !/x86_64|qemu-kvm|^kvm$/.test(path.basename(binary))) {
    notes.push({ level: 'warning', line, message: `${binary}: kvmctl runs qemu-system-x86_64; options for other targets may not apply` });
  }
  // Shell warnings that concern the imported lines (substitutions, unset variables, syntax).
  for (const w of sh.warnings) {
    if (/^\$[@*] /.test(w.message)) continue; // reported by the mapping, with what it means
    if (used.some((c) => w.line >= c.line && w.line <= c.endLine) || /unterminated|here-document/.test(w.message)) notes.push({ level: 'warning', line: w.line, message: w.message });
  }
  const macvtaps = findMacvtaps(sh.commands, sh.vars);
  const gen = normalizeGenerated(words);
  notes.push(...gen.notes);
  const r = mapArgv(gen.words, redirects, { ...opts, vars: sh.vars, macvtaps, notes });
  // The rest of the script: say once what was not imported.
  const asNetwork = new Set(macvtaps.filter((m) => r.networks.some((n) => n.name === m.name)).map((m) => m.line));
  const others = sh.commands.filter((c) => !used.includes(c) && c.words.length > 0 && !asNetwork.has(c.line));
  if (others.length) {
    const list = [...new Set(others.map((c) => c.words.slice(0, 3).map((w) => w.text).join(' ')))];
    notes.push({ level: 'note', message: `other commands in the script are not imported: ${list.slice(0, 6).join('; ')}${list.length > 6 ? `; … (${list.length} in all)` : ''}` });
  }
  for (const m of macvtaps.filter((x) => asNetwork.has(x.line))) {
    notes.push({ level: 'note', line: m.line, message: `ip link add … ${m.name} type macvtap: imported as network "${m.name}" (kvmctl net up makes it, and sets /dev/tapN to root:kvm 0660)` });
  }
  return { ...r, argv: [...(binary ? [binary] : []), ...words.map((w) => w.text)], line };
}

/** Import an argv that is already split (no shell involved), e.g. from /proc/PID/cmdline. */
export function importArgv(argv: string[], opts: ImportOptions = {}): ImportResult {
  const rest = QEMU_BIN.test(path.basename(argv[0] ?? '')) ? argv.slice(1) : argv;
  const gen = normalizeGenerated(rest.map((text) => ({ text, line: 1, unresolved: [] })));
  const r = mapArgv(gen.words, [], { ...opts, vars: {}, macvtaps: [], notes: [...gen.notes] });
  return { ...r, argv };
}

/** Where QEMU is in a command: the first word, or after wrappers such as exec, sudo -u U, taskset -c L. */
function qemuIndex(c: ShellCommand): number {
  const w = c.words.map((x) => path.basename(x.text));
  if (!w.length || (!QEMU_BIN.test(w[0]!) && !WRAPPERS.has(w[0]!))) return -1;
  const strong = w.findIndex((x) => /^qemu-system-|^qemu-kvm$/.test(x));
  if (strong >= 0) return strong;
  // A bare `kvm` (Debian's old wrapper) only right at the start or right after a wrapper (not `sudo -u kvm`).
  return w.findIndex((x, i) => x === 'kvm' && (i === 0 || WRAPPERS.has(w[i - 1]!)));
}

type Macvtap = { name: string; parent: string; mode: string; line: number };

/** `ip link add link PARENT name X type macvtap mode M` (any order of the pairs). */
function findMacvtaps(cmds: ShellCommand[], vars: Record<string, string>): Macvtap[] {
  const out: Macvtap[] = [];
  for (const c of cmds) {
    const w = c.words.map((x) => x.text);
    const at = w.findIndex((x, i) => path.basename(x) === 'ip' && w[i + 1] === 'link' && w[i + 2] === 'add');
    if (at < 0) continue;
    const args = w.slice(at + 3);
    const get = (k: string) => {
      const i = args.indexOf(k);
      return i >= 0 ? args[i + 1] : undefined;
    };
    if (get('type') !== 'macvtap') continue;
    let name = get('name');
    if (!name) name = args.find((x, i) => i === 0 && x !== 'link' && x !== 'name');
    const parent = get('link');
    if (!name || !parent) continue;
    out.push({ name: expandKnown(name, vars), parent: expandKnown(parent, vars), mode: get('mode') ?? 'vepa', line: c.line });
  }
  return out;
}

type Ctx = ImportOptions & { vars: Record<string, string>; macvtaps: Macvtap[]; notes: ImportNote[] };

/* eslint-disable complexity */
function mapArgv(words: Word[], redirects: Redirect[], ctx: Ctx): Omit<ImportResult, 'argv' | 'line'> {
  const notes = ctx.notes;
  const warn = (o: Opt | undefined, message: string) => notes.push({ level: 'warning', line: o?.line, message });
  const note = (o: Opt | undefined, message: string) => notes.push({ level: 'note', line: o?.line, message });

  // 1. Split into options.
  const opts: Opt[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.text.startsWith('-') && w.text.length > 1) {
      const name = w.text.replace(/^--?/, '');
      const next = words[i + 1]?.text;
      if (FLAGS.has(name) || (!VALUED.has(name) && next !== undefined && /^--?[A-Za-z]/.test(next))) opts.push({ name, line: w.line, spelled: w.text });
      else if (i + 1 < words.length) {
        opts.push({ name, value: words[i + 1]!.text, word: words[i + 1], line: w.line, spelled: w.text });
        i++;
      } else opts.push({ name, line: w.line, spelled: w.text, status: 'extra', reason: 'its value is missing' });
    } else if (/^\$[@*]$/.test(w.text) && w.unresolved.length) {
      notes.push({ level: 'warning', line: w.line, message: `${w.text}: the script passes its own arguments on to QEMU; whatever was given there is not imported` });
    } else {
      // A bare argument is QEMU's first hard disk image.
      opts.push({ name: 'hda', value: w.text, word: w, line: w.line, spelled: '' });
    }
  }
  const all = (n: string) => opts.filter((o) => o.name === n && !o.status);
  const unresolved = (o: Opt, value = o.value ?? '') => o.word?.unresolved.find((u) => value.includes(u.text));
  const parsed = new Map<Opt, QemuOpts>();
  const P = (o: Opt, implied?: string) => {
    let p = parsed.get(o);
    if (!p) parsed.set(o, (p = parseOpts(o.value ?? '', implied)));
    return p;
  };
  const extra = (o: Opt, reason: string) => {
    if (o.status === 'extra') return;
    o.status = 'extra';
    o.reason = reason;
  };
  const mapped = (...os: (Opt | undefined)[]) => os.forEach((o) => o && o.status !== 'extra' && (o.status = 'mapped'));
  const dropped = (o: Opt, why: string) => {
    o.status = 'dropped';
    note(o, `${o.spelled} ${o.value ?? ''}`.trim() + `: ${why}`);
  };

  // 2. Backends by id, for the devices that use them.
  const byId = (kind: string, implied?: string) => {
    const m = new Map<string, Opt>();
    for (const o of opts.filter((x) => x.name === kind)) {
      const id = P(o, implied).get('id');
      if (id !== undefined) m.set(id, o);
    }
    return m;
  };
  const drives = byId('drive');
  const netdevs = byId('netdev', 'type');
  const chardevs = byId('chardev', 'backend');
  const fsdevs = byId('fsdev', 'driver');
  const objects = byId('object', 'qom-type');

  const vm: Record<string, any> = {};
  const disks: Disk[] = [];
  const cdroms: Record<string, unknown>[] = [];
  const nics: Nic[] = [];
  const shares: Record<string, unknown>[] = [];
  const accels: string[] = [];
  let machineType: string | undefined;
  let memMerge: boolean | undefined;
  let rng: boolean | { source: string } = false;
  let display: Record<string, unknown> | undefined;
  let nographic = false;
  let netNone = false;
  let nodefaults = false;
  const emittedNetworks: Record<string, unknown>[] = [];
  let relNoted = false;
  const fileNote = (o: Opt, f: string) => {
    if (!path.isAbsolute(f) && !relNoted) {
      relNoted = true;
      note(o, `relative image paths such as "${f}" are resolved in kvmctl's images dir, not the script's working directory: move the images there or give absolute paths`);
    }
  };

  // 3. Option by option. Values with shell substitutions that are not understood stay verbatim.
  for (const o of opts) {
    if (o.status) continue;
    if (o.word && o.word.unresolved.length && !['netdev', 'device', 'nic', 'name'].includes(o.name)) {
      extra(o, `its value contains ${o.word.unresolved.map((u) => u.text).join(' ')}, which kvmctl does not run`);
      continue;
    }
    const v = o.value ?? '';
    switch (o.name) {
      case 'name': {
        const p = P(o, 'guest');
        const n = p.get('guest');
        const rest = p.unknown(['guest']);
        if (rest.length) warn(o, `-name ${v}: ${p.describe(rest)} not imported (kvmctl names QEMU's process itself)`);
        if (n !== undefined && !unresolved(o, n)) vm.name = n;
        else warn(o, `-name ${v}: not a literal name; give --name`);
        mapped(o);
        break;
      }
      case 'machine':
      case 'M': {
        const p = P(o, 'type');
        if (p.get('type') === 'help') { extra(o, 'it only prints help'); break; }
        if (p.has('type')) {
          const b = baseMachine(p.get('type'));
          machineType = b.type;
          if (b.versioned) note(o, `machine ${p.get('type')}: imported as ${b.type} (the host QEMU's current ${b.type}; a versioned or vendor type such as +pve0 may not exist in this QEMU)`);
        }
        if (p.has('accel')) accels.push(...p.get('accel')!.split(':'));
        if (p.has('mem-merge')) memMerge = parseBool(p.get('mem-merge'));
        const rest = p.unknown(['type', 'accel', 'mem-merge']);
        if (rest.length) {
          // QEMU merges repeated -machine options, so the rest can ride in extraArgs.
          extraArgsPush(o, '-machine', p.pick(rest).toString(), `machine properties ${p.describe(rest)} have no field in the definition`);
        }
        mapped(o);
        break;
      }
      case 'enable-kvm':
        accels.push('kvm');
        mapped(o);
        break;
      case 'accel': {
        const p = P(o, 'accel');
        accels.push(p.get('accel')!);
        const rest = p.unknown(['accel']);
        if (rest.length) warn(o, `-accel ${v}: ${p.describe(rest)} not imported (-accel and -machine accel= cannot be combined, and kvmctl uses the latter)`);
        mapped(o);
        break;
      }
      case 'cpu':
        vm.cpu = { ...(vm.cpu ?? {}), model: v };
        mapped(o);
        break;
      case 'smp': {
        const p = P(o, 'cpus');
        const num = (k: string) => (p.has(k) ? Number(p.get(k)) : undefined);
        const cpus = num('cpus');
        const topo = { sockets: num('sockets'), cores: num('cores'), threads: num('threads') };
        const bad = [cpus, topo.sockets, topo.cores, topo.threads].some((x) => x !== undefined && !(Number.isInteger(x) && x > 0));
        if (bad) { extra(o, 'it is not a CPU count'); break; }
        const given = Object.values(topo).filter((x) => x !== undefined);
        const count = cpus ?? (given.length ? given.reduce((a, b) => a! * b!, 1)! : 1);
        const cpu: Record<string, unknown> = { ...(vm.cpu ?? {}), count };
        if (given.length) {
          let { sockets, cores, threads } = topo;
          const known = (sockets ?? 1) * (cores ?? 1) * (threads ?? 1);
          if (known !== count && cores === undefined && count % ((sockets ?? 1) * (threads ?? 1)) === 0) cores = count / ((sockets ?? 1) * (threads ?? 1));
          else if (known !== count && sockets === undefined && count % ((cores ?? 1) * (threads ?? 1)) === 0) sockets = count / ((cores ?? 1) * (threads ?? 1));
          if ((sockets ?? 1) * (cores ?? 1) * (threads ?? 1) === count) Object.assign(cpu, { sockets, cores, threads });
          else warn(o, `-smp ${v}: the topology does not multiply to ${count}; only the count is imported`);
        }
        vm.cpu = cpu;
        const rest = p.unknown(['cpus', 'sockets', 'cores', 'threads']);
        if (rest.length) extraArgsPush(o, '-smp', p.pick(rest).toString(), `-smp ${p.describe(rest)} has no field in the definition`);
        mapped(o);
        break;
      }
      case 'm': {
        const p = P(o, 'size');
        const s = p.get('size');
        const bytes = s === undefined ? undefined : /^\d+$/.test(s) ? Number(s) * 1024 ** 2 : parseSize(s.replace(/([kmgt])b?$/i, (x) => x[0]!.toUpperCase()));
        if (bytes === undefined) { extra(o, 'it is not a memory size'); break; }
        vm.memory = formatSize(bytes);
        const rest = p.unknown(['size']);
        if (rest.length) extraArgsPush(o, '-m', p.pick(rest).toString(), `-m ${p.describe(rest)} has no field in the definition`);
        mapped(o);
        break;
      }
      case 'drive': {
        const p = P(o);
        if (p.get('if') === 'none') break; // used by a -device below, or kept at the end
        const r = mapDrive(p, p.get('if') ?? 'ide');
        if ('reason' in r) { extra(o, r.reason); break; }
        if (r.cdrom) cdroms.push(r.cdrom);
        else disks.push(r.disk!);
        fileNote(o, p.get('file') ?? '');
        r.notes.forEach((n) => note(o, n));
        mapped(o);
        break;
      }
      case 'hda': case 'hdb': case 'hdc': case 'hdd':
        disks.push({ file: v, interface: 'ide', index: 'abcd'.indexOf(o.name[2]!) });
        fileNote(o, v);
        if (o.spelled === '') note(o, `"${v}" (a bare argument) is QEMU's first hard disk: imported as an IDE disk`);
        mapped(o);
        break;
      case 'cdrom':
        cdroms.push({ file: v });
        fileNote(o, v);
        mapped(o);
        break;
      case 'boot': {
        const p = P(o, 'order');
        const letters = (s: string | undefined) => [...new Set([...(s ?? '')])];
        const dev = (l: string) => ({ c: 'disk', d: 'cdrom', n: 'network' } as Record<string, string>)[l];
        const boot: Record<string, unknown> = {};
        const order = letters(p.get('order')).map(dev);
        if (order.some((x) => !x)) warn(o, `-boot ${v}: floppy boot (a, b) is not supported; left out`);
        if (order.filter(Boolean).length) boot.order = order.filter(Boolean);
        const once = letters(p.get('once')).map(dev)[0];
        if (once) {
          boot.once = once;
          note(o, `-boot once=${p.get('once')}: kvmctl applies boot.once only when asked on start (an install boot), not on every start`);
        }
        const menu = parseBool(p.get('menu'));
        if (menu !== undefined) boot.menu = menu;
        if (Object.keys(boot).length) vm.boot = boot;
        const rest = p.unknown(['order', 'once', 'menu']);
        if (rest.length) extraArgsPush(o, '-boot', p.pick(rest).toString(), `-boot ${p.describe(rest)} has no field in the definition`);
        mapped(o);
        break;
      }
      case 'netdev':
        break; // with its -device below
      case 'nic': {
        const p = P(o, 'type');
        if (p.get('type') === 'none') { netNone = true; mapped(o); break; }
        const r = mapNetBackend(p, o, ['model', 'mac']);
        if ('reason' in r) { extra(o, r.reason); break; }
        const model = nicModel(p.get('model'));
        if (model === undefined) { extra(o, `NIC model ${p.get('model')} is not one kvmctl knows (virtio, e1000, e1000e, rtl8139, vmxnet3)`); break; }
        const mac = macOf(o, p.get('mac'));
        nics.push({ ...r.nic, model: model!, ...(mac ? { mac } : {}) });
        mapped(o);
        break;
      }
      case 'net':
        break; // legacy hub pairs, below
      case 'device': {
        const p = P(o, 'driver');
        const drv = p.get('driver') ?? '';
        const placement = p.pick(DEVICE_PLACEMENT.filter((k) => k !== 'id'));
        const dropPlacement = () => {
          if (placement.pairs.length) note(o, `-device ${drv}: ${placement.toString()} dropped (kvmctl places devices and sets the boot order from boot:)`);
        };
        if (unresolvedOther(o, p, ['mac'])) { extra(o, `its value contains ${o.word!.unresolved.map((u) => u.text).join(' ')}, which kvmctl does not run`); break; }
        if (NIC_MODELS[drv] && p.has('netdev')) {
          const nd = netdevs.get(p.get('netdev')!);
          const rest = p.unknown(['driver', 'netdev', 'mac', ...DEVICE_PLACEMENT]);
          if (!nd || nd.status) { extra(o, `its netdev ${p.get('netdev')} is not a -netdev kvmctl imports`); break; }
          if (rest.length) { extra(o, `device properties ${p.describe(rest)} have no field in the definition`); break; }
          const np = P(nd, 'type');
          const r = mapNetBackend(np, nd, []);
          if ('reason' in r) { extra(o, r.reason); extra(nd, r.reason); break; }
          const mac = r.macvtap ? literalMac(o, p.get('mac'), true) : macOf(o, p.get('mac'));
          const id = np.get('id');
          nics.push({ ...(id && NAME_RE.test(id) ? { id } : {}), ...r.nic, model: NIC_MODELS[drv]!, ...(mac ? { mac } : {}) });
          dropPlacement();
          mapped(o, nd);
          break;
        }
        if (drv === 'virtio-rng-pci' || drv === 'virtio-rng-device') {
          const rest = p.unknown(['driver', 'rng', ...DEVICE_PLACEMENT]);
          if (rest.length) { extra(o, `device properties ${p.describe(rest)} have no field in the definition`); break; }
          if (!p.has('rng')) { rng = true; mapped(o); break; }
          const ob = objects.get(p.get('rng')!);
          const op = ob && P(ob, 'qom-type');
          if (!ob || !op || op.unknown(['qom-type', 'id', 'filename']).length || !['rng-random', 'rng-builtin'].includes(op.get('qom-type')!)) {
            extra(o, `its rng backend ${p.get('rng')} is not an rng-random or rng-builtin object kvmctl imports`);
            break;
          }
          rng = op.get('qom-type') === 'rng-random' ? { source: op.get('filename') ?? '/dev/urandom' } : true;
          mapped(o, ob);
          break;
        }
        if (['virtio-blk-pci', 'virtio-blk', 'scsi-hd', 'ide-hd', 'nvme', 'ide-cd', 'scsi-cd'].includes(drv) && p.has('drive')) {
          const dr = drives.get(p.get('drive')!);
          if (!dr || dr.status) { extra(o, `its drive ${p.get('drive')} is not an if=none -drive kvmctl imports`); break; }
          const rest = p.unknown(['driver', 'drive', ...DEVICE_PLACEMENT, ...(drv === 'nvme' ? ['serial'] : [])]);
          if (rest.length) { extra(o, `device properties ${p.describe(rest)} have no field in the definition`); break; }
          const iface = ({ 'virtio-blk-pci': 'virtio', 'virtio-blk': 'virtio', 'scsi-hd': 'scsi', 'ide-hd': 'ide', nvme: 'nvme', 'ide-cd': 'ide', 'scsi-cd': 'scsi' } as Record<string, string>)[drv]!;
          const dp = P(dr);
          const r = mapDrive(dp, iface, drv.endsWith('-cd'));
          if ('reason' in r) { extra(o, r.reason); extra(dr, r.reason); break; }
          if (r.cdrom) cdroms.push(r.cdrom);
          else disks.push(r.disk!);
          fileNote(dr, dp.get('file') ?? '');
          r.notes.forEach((n) => note(dr, n));
          if (drv === 'nvme' && p.has('serial')) note(o, `nvme serial=${p.get('serial')} dropped (kvmctl uses the disk id)`);
          dropPlacement();
          mapped(o, dr);
          break;
        }
        if (drv === 'virtio-9p-pci' || drv === 'virtio-9p-device') {
          const fs = fsdevs.get(p.get('fsdev') ?? '');
          const rest = p.unknown(['driver', 'fsdev', 'mount_tag', ...DEVICE_PLACEMENT]);
          if (!fs || fs.status || rest.length || !p.has('mount_tag')) {
            extra(o, rest.length ? `device properties ${p.describe(rest)} have no field in the definition` : 'it has no -fsdev kvmctl imports, or no mount_tag');
            break;
          }
          const r = mapShare(P(fs, 'driver'), p.get('mount_tag')!);
          if ('reason' in r) { extra(o, r.reason); extra(fs, r.reason); break; }
          shares.push(r.share);
          dropPlacement();
          mapped(o, fs);
          break;
        }
        if (drv === 'virtio-scsi-pci') break; // the controller: decided once its disks are known
        if (drv === 'VGA' && display?.type !== 'none') { dropped(o, 'kvmctl adds the standard VGA adapter itself when the display is not none'); break; }
        extra(o, /^usb-|xhci|ehci|uhci/.test(drv) ? 'USB devices have no field in the definition' : `device ${drv} has no field in the definition`);
        break;
      }
      case 'object':
      case 'chardev':
      case 'fsdev':
        break; // with the device that uses them
      case 'virtfs': {
        const p = P(o, 'driver');
        const r = mapShare(p, p.get('mount_tag') ?? '', true);
        if ('reason' in r) { extra(o, r.reason); break; }
        shares.push(r.share);
        mapped(o);
        break;
      }
      case 'monitor': {
        const r = mapChardevSpec(v);
        if (r.kind === 'none') vm.monitor = false;
        else if (r.kind === 'stdio') {
          if (vm.monitor === undefined) vm.monitor = true;
          note(o, `-monitor ${v}: kvmctl runs QEMU detached, so the monitor is on a socket in the VM's runtime dir instead (kvmctl monitor NAME)`);
        } else if (r.kind === 'chardev') {
          const cd = chardevs.get(r.id);
          const c = cd && !cd.status ? chardevMonitor(P(cd, 'backend')) : undefined;
          if (!c || 'reason' in c) { extra(o, c?.reason ?? `chardev ${r.id} is not one kvmctl imports`); break; }
          if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
          vm.monitor = c.monitor;
          mapped(cd);
        } else if (r.kind === 'reason') { extra(o, r.reason); break; }
        else {
          if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
          vm.monitor = r.monitor;
          if (r.waitOn) note(o, `-monitor ${v}: wait dropped: kvmctl never waits for a monitor client`);
        }
        mapped(o);
        break;
      }
      case 'mon': {
        const p = P(o, 'chardev');
        const cd = chardevs.get(p.get('chardev') ?? '');
        const rest = p.unknown(['chardev', 'mode', 'pretty']);
        if (!cd || cd.status || rest.length) { extra(o, rest.length ? `-mon ${p.describe(rest)} has no field in the definition` : `chardev ${p.get('chardev')} is not one kvmctl imports`); break; }
        const c = chardevMonitor(P(cd, 'backend'));
        if ('reason' in c) { extra(o, c.reason); break; }
        if ((p.get('mode') ?? 'readline') === 'control') {
          if (!('socket' in (c.monitor as object))) { extra(o, 'kvmctl imports QMP on a unix socket only'); break; }
          vm.qmp = c.monitor;
          note(o, 'QMP: kvmctl always keeps its own QMP socket in the VM\'s runtime dir; the imported path is recorded in qmp.socket');
        } else {
          if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
          vm.monitor = c.monitor;
        }
        if (c.waitOn) note(o, 'wait=on dropped: kvmctl never waits for a monitor client');
        mapped(o, cd);
        break;
      }
      case 'qmp': {
        const r = mapChardevSpec(v);
        if (r.kind !== 'socket' || !('socket' in (r.monitor as object))) { extra(o, 'kvmctl imports a QMP unix server socket only (it always keeps its own)'); break; }
        vm.qmp = r.monitor;
        note(o, 'QMP: kvmctl always keeps its own QMP socket in the VM\'s runtime dir; the imported path is recorded in qmp.socket');
        mapped(o);
        break;
      }
      case 'serial': {
        if (vm.serial !== undefined) { extra(o, 'kvmctl keeps one serial port'); break; }
        if (v === 'none' || v === 'null') { vm.serial = 'none'; mapped(o); break; }
        vm.serial = 'socket';
        if (v === 'mon:stdio') {
          if (vm.monitor === undefined) vm.monitor = true;
          note(o, '-serial mon:stdio: kvmctl runs QEMU detached: the serial console is on a socket with a log (kvmctl console NAME) and the monitor on its own socket (kvmctl monitor NAME)');
        } else {
          const m = /^chardev:(.*)$/.exec(v);
          const cd = m ? chardevs.get(m[1]!) : undefined;
          if (cd) mapped(cd);
          note(o, `-serial ${v}: kvmctl puts the serial console on a socket with a log instead (kvmctl console NAME)`);
        }
        mapped(o);
        break;
      }
      case 'display': {
        const p = P(o, 'type');
        const t = p.get('type');
        if (p.has('vnc')) display = { type: 'vnc', vnc: vncOf(p.get('vnc')!) };
        else if (t === 'none' || t === 'curses') display = { ...(display ?? {}), type: t };
        else if (t === 'vnc') display = { type: 'vnc' };
        else {
          display = { type: 'vnc' };
          warn(o, `-display ${v}: kvmctl runs QEMU detached, without a window: imported as a VNC display on a socket (kvmctl vnc NAME)`);
        }
        const rest = p.unknown(['type', 'vnc']);
        if (rest.length) warn(o, `-display ${v}: ${p.describe(rest)} not imported`);
        mapped(o);
        break;
      }
      case 'vnc': {
        const p = P(o, 'vnc');
        if (p.unknown(['vnc']).length) { extra(o, `-vnc ${p.describe(p.unknown(['vnc']))} has no field in the definition`); break; }
        if (p.get('vnc') === 'none') { dropped(o, 'no VNC'); break; }
        const vnc = vncOf(p.get('vnc')!);
        if (!vnc) { extra(o, 'it is not a unix socket or HOST:DISPLAY'); break; }
        display = { type: 'vnc', vnc };
        mapped(o);
        break;
      }
      case 'vga':
        if (v === 'std') dropped(o, 'kvmctl adds the standard VGA adapter itself when the display is not none');
        else if (v === 'none') dropped(o, 'no VGA adapter: kvmctl adds none when display is none');
        else extra(o, `VGA model ${v} has no field in the definition`);
        break;
      case 'nographic':
        nographic = true;
        note(o, '-nographic: imported as display none; kvmctl runs QEMU detached: the serial console is on a socket (kvmctl console NAME), the monitor too (kvmctl monitor NAME)');
        mapped(o);
        break;
      case 'curses':
        display = { type: 'curses' };
        mapped(o);
        break;
      case 'no-kvm':
        dropped(o, 'an old flag; the accelerator comes from -machine accel= / -enable-kvm');
        break;
      case 'kernel':
        vm.kernel = { ...(vm.kernel ?? {}), path: v };
        mapped(o);
        break;
      case 'initrd':
      case 'append':
        break; // with -kernel, below
      case 'runas':
        vm.runAs = v;
        mapped(o);
        break;
      case 'run-with': {
        const p = P(o);
        const u = p.get('user');
        if (!u || p.unknown(['user']).length) { extra(o, `-run-with ${v}: only user= is imported`); break; }
        const [user, group] = u.split(':');
        vm.runAs = group ? { user, group } : user;
        mapped(o);
        break;
      }
      case 'daemonize':
        dropped(o, 'kvmctl always runs QEMU detached (its own session, pidfile, logs)');
        break;
      case 'pidfile':
        dropped(o, 'kvmctl keeps the pidfile in the VM\'s runtime dir');
        break;
      case 'nodefaults':
        nodefaults = true;
        dropped(o, 'kvmctl always passes -nodefaults');
        break;
      case 'no-user-config':
        dropped(o, 'kvmctl always passes -no-user-config');
        break;
      case 'sandbox':
        dropped(o, 'kvmctl sets its own -sandbox from the host facts');
        break;
      case 'msg':
        dropped(o, 'kvmctl always passes -msg timestamp=on');
        break;
      default:
        extra(o, `-${o.name} has no field in the definition`);
    }
  }

  // 4. Options that pair with others.
  for (const o of [...all('initrd'), ...all('append')]) {
    if (!vm.kernel) { extra(o, `-${o.name} without -kernel`); continue; }
    vm.kernel[o.name === 'initrd' ? 'initrd' : 'append'] = o.value;
    mapped(o);
  }
  mapLegacyNet(opts.filter((o) => o.name === 'net' && !o.status));

  // SCSI controllers used by imported scsi disks.
  for (const o of opts.filter((x) => x.name === 'device' && !x.status && P(x, 'driver').get('driver') === 'virtio-scsi-pci')) {
    const p = P(o, 'driver');
    if (disks.some((d) => d.interface === 'scsi') && !p.unknown(['driver', ...DEVICE_PLACEMENT]).length) mapped(o);
    else extra(o, 'a SCSI controller with no disks kvmctl imports');
  }
  // Backends nothing imported uses.
  for (const o of opts.filter((x) => ['drive', 'netdev', 'chardev', 'fsdev', 'object'].includes(x.name) && !x.status)) {
    if (o.name === 'object' && ['rng-random', 'rng-builtin'].includes(P(o, 'qom-type').get('qom-type') ?? '') && rng !== false) { mapped(o); continue; }
    extra(o, `no device that kvmctl imports uses it`);
  }

  // 5. QEMU's defaults where kvmctl's differ.
  const given = (...n: string[]) => opts.some((o) => n.includes(o.name));
  if (machineType === undefined && !given('machine', 'M')) note(undefined, 'no -machine: QEMU\'s default machine is pc (i440fx); imported as machine type pc (kvmctl\'s own default is q35)');
  const type = machineType ?? 'pc';
  const acc = [...new Set(accels.filter((a) => a === 'kvm' || a === 'tcg'))];
  for (const a of accels.filter((x) => x !== 'kvm' && x !== 'tcg')) warn(undefined, `accelerator ${a} is not supported by kvmctl (kvm, tcg): left out`);
  if (acc.length === 0) note(undefined, 'no -enable-kvm / accel=: QEMU runs such a script under TCG, so accel is [tcg]; use [kvm, tcg] to prefer KVM');
  vm.machine = { type, accel: acc.length ? acc : ['tcg'], ...(memMerge !== undefined ? { memMerge } : {}) };
  if (!vm.cpu?.model) {
    vm.cpu = { model: 'qemu64', ...(vm.cpu ?? {}) };
    if (!given('cpu')) note(undefined, 'no -cpu: QEMU\'s default model qemu64 is kept (host is faster under KVM)');
  }
  if (!vm.cpu.count) vm.cpu.count = 1;
  if (!vm.memory) {
    vm.memory = '128M';
    if (!given('m')) note(undefined, 'no -m: QEMU\'s default of 128M is kept');
  }
  const defaultModel = type.startsWith('pc-q35') || type === 'q35' ? 'e1000e' : 'e1000';
  for (const n of nics) if (n.model === '') n.model = defaultModel;
  const anyNet = opts.some((o) => ['netdev', 'nic', 'net'].includes(o.name));
  if (!anyNet && !nodefaults && !netNone) {
    nics.push({ user: true, model: defaultModel });
    note(undefined, `no network options: QEMU's default is one user-mode NIC (${defaultModel}); imported as such (remove nics for none)`);
  }
  // -nographic multiplexes a monitor onto the terminal (Ctrl-A c): keep one, on a socket.
  if (nographic && !nodefaults && vm.monitor === undefined) vm.monitor = true;
  if (nodefaults && vm.serial === undefined) vm.serial = 'none'; // -nodefaults and no -serial: QEMU has no serial port
  if (!display) {
    display = { type: nographic ? 'none' : 'vnc' };
    if (!nographic) note(undefined, 'no -display: QEMU would open a window; kvmctl runs QEMU detached, so the display is VNC on a socket (kvmctl vnc NAME)');
  }
  // Boot entries that point at nothing would not validate.
  if (vm.boot && !vm.boot.order && !disks.length && !vm.kernel) {
    // boot: {menu: …} alone means order [disk]: with no disk, say so instead.
    note(undefined, `-boot ${vm.boot.menu !== undefined ? `menu=${vm.boot.menu ? 'on' : 'off'}` : ''}: the script has no disk to boot; boot options left out`.replace('-boot : ', '-boot: '));
    delete vm.boot;
  }
  if (vm.boot) {
    const has = { disk: disks.length > 0 || !!vm.kernel, cdrom: cdroms.length > 0, network: nics.length > 0 } as Record<string, boolean>;
    const miss = [...(vm.boot.order ?? []), vm.boot.once].filter((b) => b && !has[b]);
    if (miss.length) {
      warn(undefined, `-boot: boots from ${miss.join(', ')} but the script defines none: left out`);
      vm.boot.order = (vm.boot.order ?? []).filter((b: string) => has[b]);
      if (vm.boot.once && !has[vm.boot.once]) delete vm.boot.once;
      if (!vm.boot.order.length) delete vm.boot.order;
      if (!Object.keys(vm.boot).length) delete vm.boot;
    }
  }

  // 6. Name.
  let name = ctx.name ?? vm.name;
  if (!name && ctx.source && ctx.source !== '-') name = path.basename(ctx.source).replace(/\.[^.]*$/, '');
  if (!name) throw badInput('NAME_REQUIRED', `${ctx.source ?? 'input'}: the command has no -name`, 'give one with --name NAME');
  if (!NAME_RE.test(name)) {
    const fixed = name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
    if (!fixed || ctx.name) throw badInput('BAD_NAME', `"${name}" is not a valid VM name`, 'give one with --name NAME (letters, digits, "_", "." or "-")');
    warn(undefined, `name "${name}" is not a valid kvmctl name: using "${fixed}"`);
    name = fixed;
  }

  // 7. extraArgs in the script's order, each with its reason.
  const extraArgs: string[] = [];
  for (const o of opts) {
    if (o.status === 'extra') {
      const args = o.spelled === '' ? [o.value!] : o.value === undefined ? [o.spelled] : [o.spelled.replace(/^--/, '-'), o.value];
      extraArgs.push(...args);
      warn(o, `${args.join(' ')}: kept in extraArgs (${o.reason})`);
    }
    for (const [flag, value, why] of extraPushes.get(o) ?? []) {
      extraArgs.push(flag, value);
      warn(o, `${flag} ${value}: kept in extraArgs (${why})`);
    }
  }

  dedupeIds(nics, 'net');
  dedupeIds(disks, 'disk');
  dedupeIds(shares, 'fs');
  const out: Record<string, unknown> = { kind: 'vm', name };
  out.machine = vm.machine;
  out.cpu = vm.cpu;
  out.memory = vm.memory;
  out.rng = rng;
  if (disks.length) out.disks = disks;
  if (cdroms.length) out.cdroms = cdroms;
  if (vm.boot) out.boot = vm.boot;
  if (vm.kernel) out.kernel = vm.kernel;
  out.nics = nics.map((n) => orderKeys(n, ['id', 'network', 'tap', 'user', 'model', 'mac', 'vhost']));
  if (vm.monitor !== undefined) out.monitor = vm.monitor;
  if (vm.qmp) out.qmp = vm.qmp;
  if (vm.serial) out.serial = vm.serial;
  out.display = display;
  if (shares.length) out.shares = shares;
  if (vm.runAs) out.runAs = vm.runAs;
  if (extraArgs.length) out.extraArgs = extraArgs;

  let spec: VmSpec;
  try {
    spec = validateVm(out, `${ctx.source ?? 'input'} (imported)`);
  } catch (e) {
    if (e instanceof KvmError) throw new KvmError('IMPORT_INVALID', `${e.message}`, { exit: 2, issues: e.issues, hint: 'the script uses values kvmctl cannot accept; fix them in the script (or in the written YAML) and import again' });
    throw e;
  }
  const networkSpecs = emittedNetworks.map((n) => validateNetwork(n, `network ${String(n.name)} (imported)`));
  return { name, vm: out, networks: emittedNetworks, spec, networkSpecs, notes };

  /* ---- helpers that need the option list ---- */

  function unresolvedOther(o: Opt, p: QemuOpts, allowed: string[]): boolean {
    if (!o.word?.unresolved.length) return false;
    return p.pairs.some(([k, val]) => !allowed.includes(k) && o.word!.unresolved.some((u) => val.includes(u.text)));
  }

  function macOf(o: Opt, mac: string | undefined): string | undefined {
    if (mac === undefined) return undefined;
    if (unresolved(o, mac)) {
      warn(o, `mac=${mac} is not literal: left out (kvmctl generates a stable MAC)`);
      return undefined;
    }
    if (!MAC_RE.test(mac)) {
      warn(o, `mac=${mac} is not a MAC address: left out`);
      return undefined;
    }
    return mac.toLowerCase();
  }

  function literalMac(o: Opt, mac: string | undefined, macvtap: boolean): string | undefined {
    if (mac !== undefined && unresolved(o, mac) && macvtap) {
      note(o, `mac=${mac}: kvmctl gives a macvtap NIC the macvtap interface's own MAC, as the script does`);
      return undefined;
    }
    return macOf(o, mac);
  }

  /** A -netdev / -nic / -net backend → the attachment part of a NIC. */
  function mapNetBackend(p: QemuOpts, o: Opt, also: string[]): { nic: Nic; macvtap?: boolean } | { reason: string } {
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
        const s = p.get(k);
        if (s !== undefined && s !== 'no' && s !== '') return { reason: `${k}=${s}: kvmctl never runs tap scripts (attach the NIC to a kvmctl network instead)` };
      }
      const vhost = p.has('vhost') ? (parseBool(p.get('vhost')) ? 'on' : 'off') : 'off';
      if (p.has('fd')) {
        const mv = macvtapOf(p.get('fd')!, o);
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
  function macvtapOf(fd: string, o: Opt): { network: string } | { reason: string } {
    const rd = redirects.find((r) => r.fd === Number(fd) && (r.op === '<>' || r.op === '<'));
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
    if (mk && !emittedNetworks.some((n) => n.name === netName)) {
      emittedNetworks.push({ kind: 'network', name: netName, type: 'macvtap', parent: mk.parent, mode: mk.mode });
    } else if (!mk) {
      warn(o, `define network "${netName}" yourself (kind: network, type: macvtap, parent: YOUR_NIC): the script does not show how it is made`);
    }
    return { network: netName };
  }

  function mapLegacyNet(list: Opt[]): void {
    // `-net nic … -net user …`: every -net on one hub (vlan=N in old QEMUs) forms one NIC.
    const hubs = new Map<string, { nic: Opt[]; back: Opt[] }>();
    for (const o of list) {
      const p = P(o, 'type');
      if (p.get('type') === 'none') { netNone = true; mapped(o); continue; }
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
      const r = mapNetBackend(P(back[0]!, 'type').omit(['vlan', 'name']), back[0]!, []);
      if (rest.length || model === undefined || 'reason' in r) {
        const why = rest.length ? `-net nic ${np.describe(rest)} has no field in the definition` : model === undefined ? `NIC model ${np.get('model')} is not one kvmctl knows` : (r as { reason: string }).reason;
        extra(nic[0]!, why);
        extra(back[0]!, why);
        continue;
      }
      const mac = macOf(nic[0]!, np.get('macaddr'));
      nics.push({ ...r.nic, model: model!, ...(mac ? { mac } : {}) });
      mapped(nic[0], back[0]);
    }
  }
}

/** Extra args that belong to an option (machine/smp/boot/-m properties QEMU merges). */
const extraPushes = new WeakMap<object, [string, string, string][]>();
function extraArgsPush(o: object, flag: string, value: string, why: string): void {
  if (!extraPushes.has(o)) extraPushes.set(o, []);
  extraPushes.get(o)!.push([flag, value, why]);
}

function nicModel(m: string | undefined): string | undefined {
  if (m === undefined) return '';
  return NIC_MODELS[m];
}
function nicModelDefault(m: string | undefined): string {
  return (m !== undefined && NIC_MODELS[m]) || '';
}

/** A -drive (its options) → a disk or a CD-ROM. */
function mapDrive(p: QemuOpts, iface: string, cd = false): { disk?: Disk; cdrom?: Record<string, unknown>; notes: string[] } | { reason: string } {
  const notes: string[] = [];
  const rest = p.unknown(['file', 'format', 'driver', 'if', 'index', 'bus', 'unit', 'media', 'cache', 'aio', 'discard', 'readonly', 'id']);
  if (rest.length) return { reason: `drive properties ${p.describe(rest)} have no field in the definition` };
  const file = p.get('file');
  if (!file) return { reason: 'a drive without a file (an empty drive) has no field in the definition' };
  const id = p.get('id');
  const idPart = id && NAME_RE.test(id) ? { id } : {};
  if ((p.get('media') ?? (cd ? 'cdrom' : 'disk')) === 'cdrom' || cd) {
    if (iface !== 'ide') notes.push(`CD-ROM ${file}: kvmctl attaches CD-ROMs over IDE/AHCI (the script used ${iface})`);
    return { cdrom: { ...idPart, file }, notes };
  }
  if (p.get('media') !== undefined && p.get('media') !== 'disk') return { reason: `media=${p.get('media')} is not disk or cdrom` };
  const ifaces: Record<string, string> = { virtio: 'virtio', ide: 'ide', scsi: 'scsi', nvme: 'nvme', sata: 'sata' };
  const interf = ifaces[iface];
  if (!interf) return { reason: `if=${iface} has no field in the definition (kvmctl disks are virtio, scsi, ide, sata or nvme)` };
  if (iface === 'scsi' && p.get('if') === 'scsi') notes.push(`if=scsi: QEMU would use its default SCSI controller (lsi53c895a); kvmctl uses virtio-scsi`);
  const format = p.get('format') ?? p.get('driver');
  if (format !== undefined && !(DISK_FORMATS as readonly string[]).includes(format)) return { reason: `format ${format} is not one of ${DISK_FORMATS.join(', ')}` };
  const disk: Disk = { ...idPart, file, ...(format ? { format } : {}), interface: interf };
  let index = p.has('index') ? Number(p.get('index')) : undefined;
  if (index === undefined && (p.has('bus') || p.has('unit'))) {
    const per = iface === 'ide' ? 2 : 1;
    index = Number(p.get('bus') ?? 0) * per + Number(p.get('unit') ?? 0);
  }
  if (index !== undefined) {
    if (!Number.isInteger(index) || index < 0 || index > 63) return { reason: `index ${p.get('index')} is out of range` };
    disk.index = index;
  }
  const cache = p.get('cache');
  if (cache !== undefined) {
    if (!(CACHE_MODES as readonly string[]).includes(cache)) return { reason: `cache=${cache} is not one of ${CACHE_MODES.join(', ')}` };
    disk.cache = cache;
  }
  const aio = p.get('aio');
  if (aio !== undefined) {
    if (!['threads', 'native', 'io_uring'].includes(aio)) return { reason: `aio=${aio} is not threads, native or io_uring` };
    disk.aio = aio;
  }
  const discard = p.get('discard');
  if (discard !== undefined) {
    const d = ({ ignore: 'ignore', off: 'ignore', unmap: 'unmap', on: 'unmap' } as Record<string, string>)[discard];
    if (!d) return { reason: `discard=${discard} is not ignore or unmap` };
    disk.discard = d;
  }
  const ro = parseBool(p.get('readonly'));
  if (ro) disk.readOnly = true;
  return { disk, notes };
}

/** -fsdev local,… (or -virtfs) → a 9p share. */
function mapShare(p: QemuOpts, tag: string, virtfs = false): { share: Record<string, unknown> } | { reason: string } {
  const known = ['driver', 'id', 'path', 'security_model', 'readonly', ...(virtfs ? ['mount_tag'] : [])];
  const rest = p.unknown(known);
  if (rest.length) return { reason: `fsdev properties ${p.describe(rest)} have no field in the definition` };
  if (p.get('driver') !== 'local') return { reason: `fsdev driver ${p.get('driver')} has no field in the definition (kvmctl shares are local)` };
  const sm = p.get('security_model') ?? 'mapped-xattr';
  if (!(SECURITY_MODELS as readonly string[]).includes(sm)) return { reason: `security_model=${sm} is not one of ${SECURITY_MODELS.join(', ')}` };
  if (!p.get('path') || !/^[A-Za-z0-9_.-]{1,31}$/.test(tag)) return { reason: 'a share needs path= and a mount_tag of 1–31 letters, digits, "_", "." or "-"' };
  const id = p.get('id');
  return {
    share: { ...(id && NAME_RE.test(id) ? { id } : {}), path: p.get('path'), tag, securityModel: sm, ...(parseBool(p.get('readonly')) ? { readOnly: true } : {}) },
  };
}

type ChardevResult =
  | { kind: 'socket'; monitor: { socket: string } | { telnet: string }; waitOn: boolean }
  | { kind: 'stdio' }
  | { kind: 'none' }
  | { kind: 'chardev'; id: string }
  | { kind: 'reason'; reason: string };

/** `-monitor`/`-qmp`/`-serial` chardev shorthand: unix:PATH,server,nowait / telnet:H:P,server,nowait / stdio … */
function mapChardevSpec(v: string): ChardevResult {
  if (v === 'none' || v === 'null') return { kind: 'none' };
  if (v === 'stdio' || v === 'vc' || v === 'mon:stdio' || v.startsWith('vc:')) return { kind: 'stdio' };
  const cm = /^chardev:(.+)$/.exec(v);
  if (cm) return { kind: 'chardev', id: cm[1]! };
  const p = parseOpts(v, 'backend');
  const b = p.get('backend') ?? '';
  const colon = b.indexOf(':');
  const kind = colon < 0 ? b : b.slice(0, colon);
  const target = colon < 0 ? '' : b.slice(colon + 1);
  const rest = p.unknown(['backend', 'server', 'wait', 'telnet']);
  if (rest.length) return { kind: 'reason', reason: `${p.describe(rest)} has no field in the definition` };
  if (!parseBool(p.get('server'))) return { kind: 'reason', reason: 'it connects to a socket as a client (no server)' };
  const waitOn = p.get('wait') === undefined ? true : !!parseBool(p.get('wait'));
  if (kind === 'unix' && target) return { kind: 'socket', monitor: { socket: target }, waitOn };
  if ((kind === 'telnet' || (kind === 'tcp' && parseBool(p.get('telnet')))) && /^[A-Za-z0-9.:[\]-]+:\d{1,5}$/.test(target)) return { kind: 'socket', monitor: { telnet: target }, waitOn };
  return { kind: 'reason', reason: `${kind || v} has no field in the definition (monitor sockets are unix:PATH or telnet:HOST:PORT)` };
}

/** `-chardev socket,id=X,path=P,server=on,wait=off` (or host=,port=,telnet=on) → a monitor. */
function chardevMonitor(p: QemuOpts): { monitor: { socket: string } | { telnet: string }; waitOn: boolean } | { reason: string } {
  if (p.get('backend') !== 'socket') return { reason: `chardev ${p.get('backend')} has no field in the definition (monitors are unix or telnet sockets)` };
  const rest = p.unknown(['backend', 'id', 'path', 'host', 'port', 'server', 'wait', 'telnet']);
  if (rest.length) return { reason: `chardev properties ${p.describe(rest)} have no field in the definition` };
  if (!parseBool(p.get('server'))) return { reason: 'the chardev connects as a client (no server=on)' };
  const waitOn = p.get('wait') === undefined ? true : !!parseBool(p.get('wait'));
  if (p.get('path')) return { monitor: { socket: p.get('path')! }, waitOn };
  if (p.get('port') && parseBool(p.get('telnet'))) return { monitor: { telnet: `${p.get('host') || '127.0.0.1'}:${p.get('port')}` }, waitOn };
  return { reason: 'a TCP monitor without telnet has no field in the definition' };
}

function vncOf(v: string): { socket: string } | { listen: string } | undefined {
  if (v.startsWith('unix:')) return { socket: v.slice(5) };
  if (/^[A-Za-z0-9.:[\]-]*:\d+$/.test(v)) return { listen: v };
  return undefined;
}

function orderKeys<T extends object>(o: T, order: string[]): T {
  const src = o as Record<string, unknown>;
  const keys = [...order.filter((k) => k in src), ...Object.keys(src).filter((k) => !order.includes(k))];
  return Object.fromEntries(keys.map((k) => [k, src[k]])) as T;
}

/** Make effective ids (id ?? PREFIXi) unique, renaming later duplicates. */
function dedupeIds(items: Record<string, unknown>[], prefix: string): void {
  const eff = (x: Record<string, unknown>, i: number) => (x.id as string | undefined) ?? `${prefix}${i}`;
  const seen = new Set<string>();
  items.forEach((x, i) => {
    let id = eff(x, i);
    if (seen.has(id.toLowerCase())) {
      let k = 0;
      while (items.some((y, j) => eff(y, j).toLowerCase() === `${prefix}${k}`) || seen.has(`${prefix}${k}`)) k++;
      id = `${prefix}${k}`;
      x.id = id;
    }
    seen.add(id.toLowerCase());
  });
}

/* ---- YAML out ---- */
