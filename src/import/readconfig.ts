/**
 * QEMU's `-readconfig FILE` (docs/config/ in QEMU: an INI-like file that `-writeconfig` wrote in
 * older QEMUs), turned back into the options it stands for, so the command-line importer maps
 * them like any other: `[drive "d0"]` + `file = "a.img"` → `-drive id=d0,file=a.img`;
 * `[device "n0"]` → `-device id=n0,driver=…`; `[memory]` → `-m size=…`; `[smp-opts]` → `-smp`;
 * `[machine]` → `-machine` (its `type`); sections without an id (`[machine]`) take none. Pure: the
 * caller reads the file.
 */
import type { Word } from '../qemu/shell-words.js';

/** Sections whose QEMU option has another name. */
const OPTION_OF: Record<string, string> = { memory: 'm', 'smp-opts': 'smp', 'boot-opts': 'boot', 'rtc': 'rtc', mon: 'mon', 'add-fd': 'add-fd' };

export type ConfigSection = { option: string; id?: string; pairs: [string, string][]; line: number };

export function parseQemuConfig(text: string): { sections: ConfigSection[]; problems: string[] } {
  const sections: ConfigSection[] = [];
  const problems: string[] = [];
  let cur: ConfigSection | undefined;
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const head = /^\[([A-Za-z][\w-]*)(?:\s+"([^"]*)")?\]$/.exec(l);
    if (head) {
      cur = { option: OPTION_OF[head[1]!] ?? head[1]!, ...(head[2] !== undefined ? { id: head[2] } : {}), pairs: [], line: i + 1 };
      sections.push(cur);
      return;
    }
    const kv = /^([A-Za-z][\w.-]*)\s*=\s*"((?:[^"\\]|\\.)*)"$/.exec(l);
    if (kv && cur) cur.pairs.push([kv[1]!, kv[2]!.replace(/\\(.)/g, '$1')]);
    else problems.push(`line ${i + 1}: ${l}`);
  });
  return { sections, problems };
}

const esc = (v: string) => v.replace(/,/g, ',,');

/** The options a config file stands for, as command-line words (at the line of the -readconfig). */
export function configWords(sections: ConfigSection[], line: number): Word[] {
  const out: Word[] = [];
  for (const s of sections) {
    const pairs = s.option === 'machine' ? s.pairs.map(([k, v]) => [k === 'type' ? 'type' : k, v] as [string, string]) : s.pairs;
    const kv = [...(s.id !== undefined ? [`id=${esc(s.id)}`] : []), ...pairs.map(([k, v]) => `${k}=${esc(v)}`)].join(',');
    out.push({ text: `-${s.option}`, line, unresolved: [] }, { text: kv, line, unresolved: [] });
  }
  return out;
}
