/**
 * Launch script → VM definition (`kvmctl import cmdline`). The script is tokenized without
 * running anything (shell-words.ts); the QEMU command in it is mapped option by option onto the
 * definition's input form (src/definition/vm.ts). What cannot be mapped is kept in `extraArgs`
 * verbatim and reported as a warning: nothing is dropped silently. Where QEMU's own default
 * differs from kvmctl's (machine pc, accel tcg, cpu qemu64, 128M, one user-mode NIC, a window),
 * the import keeps QEMU's meaning and says so in a note. This file finds the QEMU command in
 * the script; the mapping itself is import-map.ts, by option family (import-machine.ts,
 * import-drives.ts, import-net.ts, import-console.ts, over the shared state in import-state.ts).
 */
import path from 'node:path';
import { badInput } from '../errors.js';
import { normalizeGenerated } from '../import/generated-line.js';
import { configWords, parseQemuConfig } from '../import/readconfig.js';
import { mapArgv } from './import-map.js';
import type { Macvtap } from './import-state.js';
import { expandKnown, parseShell, type Redirect, type ShellCommand, type Word } from './shell-words.js';

import type { ImportNote, ImportOptions, ImportResult } from '../import/types.js';
export type { ImportNote, ImportOptions, ImportResult } from '../import/types.js';
export { importYaml, saveImport, type SaveResult } from '../import/write.js';

const QEMU_BIN = /^(qemu-system-[A-Za-z0-9_-]+|qemu-kvm|kvm)$/;
const WRAPPERS = new Set(['exec', 'sudo', 'doas', 'env', 'nice', 'ionice', 'nohup', 'taskset', 'numactl', 'chrt', 'time', 'command', 'setsid', 'stdbuf']);

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
  const gen = normalizeGenerated(expandReadconfig(words, opts, notes));
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

/** `-readconfig FILE` replaced by the options in FILE when the caller can read it; else left for extraArgs. */
function expandReadconfig(words: Word[], opts: ImportOptions, notes: ImportNote[]): Word[] {
  const out: Word[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const file = words[i + 1];
    if (!/^--?readconfig$/.test(w.text) || !file || file.unresolved.length) {
      out.push(w);
      continue;
    }
    const text = opts.readConfig?.(file.text);
    if (text === undefined) {
      notes.push({ level: 'warning', line: w.line, message: `-readconfig ${file.text}: the file could not be read here, so its options are not imported (kept in extraArgs)` });
      out.push(w);
      continue;
    }
    const { sections, problems } = parseQemuConfig(text);
    for (const p of problems) notes.push({ level: 'warning', line: w.line, message: `-readconfig ${file.text} ${p}: not QEMU config syntax, left out` });
    notes.push({ level: 'note', line: w.line, message: `-readconfig ${file.text}: its ${sections.length} section${sections.length === 1 ? '' : 's'} (${sections.map((s) => s.option).join(', ')}) imported as options` });
    out.push(...configWords(sections, w.line));
    i++;
  }
  return out;
}
