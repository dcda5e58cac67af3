/**
 * A small tokenizer for launch scripts (POSIX sh subset), for `kvmctl import cmdline`. It never
 * runs anything: `$(…)`, backticks and variables it cannot resolve stay in the word verbatim and
 * are reported. Handles single/double quotes, `$'…'`, backslash escapes and backslash-newline,
 * comments, command separators (newline ; & && || |), `VAR=value` assignments (literal values are
 * remembered and substituted later as `$VAR` / `${VAR}`), and redirections such as `3<>/dev/tap5`
 * or `3<>/dev/tap$(cat /sys/class/net/mvt0/ifindex)` (how a script passes a macvtap fd to QEMU).
 */

export type Unresolved = {
  kind: 'command' | 'variable' | 'arithmetic';
  /** The text as written, e.g. `$(cat /sys/class/net/${MACVTAP}/ifindex)` or `${DISK}`. */
  text: string;
  line: number;
};

export type Word = {
  /** The word after quote removal and substitution of known variables; unresolved parts verbatim. */
  text: string;
  line: number;
  unresolved: Unresolved[];
  /** `NAME=value` written unquoted before the `=`: a candidate assignment. */
  assign?: { name: string; value: string };
};

export type Redirect = { fd: number; op: string; target: Word; line: number };

export type ShellCommand = {
  words: Word[];
  /** `NAME=value` words before the command word (an environment for that command only). */
  env: Word[];
  redirects: Redirect[];
  line: number;
  endLine: number;
};

export type ShellWarning = { line: number; message: string };

export type ShellScript = {
  commands: ShellCommand[];
  /** Variables with literal values, after the whole script. */
  vars: Record<string, string>;
  /** Variables assigned from something kvmctl does not run: name → where and what. */
  dynamic: Record<string, { line: number; text: string }>;
  warnings: ShellWarning[];
};

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const ASSIGN_BUILTINS = new Set(['export', 'readonly', 'local', 'declare', 'typeset']);
const REDIRECT = /^(\d*)(<>|>>|>&|<&|>\||<<-|<<|<|>)/;

export function parseShell(src: string, opts: { vars?: Record<string, string> } = {}): ShellScript {
  const vars: Record<string, string> = { ...(opts.vars ?? {}) };
  const dynamic: ShellScript['dynamic'] = {};
  const warnings: ShellWarning[] = [];
  const commands: ShellCommand[] = [];
  let i = 0;
  let line = 1;
  let cur: ShellCommand | undefined;
  const heredocs: { delim: string; line: number }[] = [];

  const warn = (l: number, message: string) => warnings.push({ line: l, message });
  const startCmd = () => (cur ??= { words: [], env: [], redirects: [], line, endLine: line });

  const finish = () => {
    if (!cur) return;
    const c = cur;
    cur = undefined;
    c.endLine = line;
    // Assignment-only commands (also `export A=b`) set script variables.
    const assignOnly = c.words.length === 0 || (ASSIGN_BUILTINS.has(c.words[0]!.text) && c.words.slice(1).every((w) => w.assign || NAME.test(w.text)));
    if (assignOnly) {
      const list = c.words.length === 0 ? c.env : c.words.slice(1).filter((w) => w.assign);
      for (const w of list) {
        const { name, value } = w.assign!;
        if (w.unresolved.length === 0) {
          vars[name] = value;
          delete dynamic[name];
        } else {
          delete vars[name];
          dynamic[name] = { line: w.line, text: value };
          warn(w.line, `${name} is set from ${w.unresolved.map((u) => u.text).join(' ')}, which kvmctl does not run: uses of $${name} stay unresolved`);
        }
      }
      if (c.words.length === 0 && c.redirects.length === 0) return; // nothing else to keep
    }
    commands.push(c);
  };

  /** Read up to the matching close of `$(` / `$((` / `` ` ``, honouring quotes and nesting. */
  const scanSubst = (open: '$(' | '$((' | '`'): string => {
    const start = i;
    i += open.length;
    if (open === '`') {
      while (i < src.length && src[i] !== '`') {
        if (src[i] === '\\') i++;
        else if (src[i] === '\n') line++;
        i++;
      }
      if (i >= src.length) warn(line, 'unterminated backtick substitution');
      i++;
      return src.slice(start, i);
    }
    let depth = open === '$((' ? 2 : 1;
    while (i < src.length && depth > 0) {
      const ch = src[i]!;
      if (ch === '\\') i++;
      else if (ch === "'") {
        const end = src.indexOf("'", i + 1);
        i = end < 0 ? src.length : end;
      } else if (ch === '"') {
        i++;
        while (i < src.length && src[i] !== '"') {
          if (src[i] === '\\') i++;
          i++;
        }
      } else if (ch === '(') depth++;
      else if (ch === ')') depth--;
      else if (ch === '\n') line++;
      i++;
    }
    if (depth > 0) warn(line, `unterminated ${open}…) substitution`);
    return src.slice(start, i);
  };

  /** After a `$`: expand into the word. Returns the text to append and what stayed unresolved. */
  const dollar = (w: Word, inDq: boolean): string => {
    const next = src[i + 1];
    if (src.startsWith('$((', i)) {
      const t = scanSubst('$((');
      w.unresolved.push({ kind: 'arithmetic', text: t, line: w.line });
      return t;
    }
    if (next === '(') {
      const l = line;
      const t = scanSubst('$(');
      w.unresolved.push({ kind: 'command', text: t, line: l });
      warn(l, `command substitution ${t} is not run by kvmctl: kept as written`);
      return t;
    }
    if (next === "'" && !inDq) {
      // $'…' ANSI-C quoting.
      i += 2;
      let out = '';
      const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', e: '\x1b' };
      while (i < src.length && src[i] !== "'") {
        if (src[i] === '\\' && i + 1 < src.length) {
          out += esc[src[i + 1]!] ?? src[i + 1];
          i += 2;
        } else out += src[i++];
      }
      i++;
      return out;
    }
    if (next === '{') {
      const end = src.indexOf('}', i);
      if (end < 0) {
        warn(line, 'unterminated ${…}');
        i = src.length;
        return '';
      }
      const raw = src.slice(i, end + 1);
      const inner = src.slice(i + 2, end);
      i = end + 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?$/.exec(inner);
      if (m && m[1]! in vars) return vars[m[1]!]!;
      if (m && m[2] && !m[3]!.includes('$') && !m[3]!.includes('`')) {
        warn(w.line, `${m[1]} is not set in the script: used the default of ${raw} ("${m[3]}")`);
        return m[3]!;
      }
      return unresolvedVar(w, raw, m?.[1]);
    }
    const nm = NAME.exec(src.slice(i + 1));
    if (nm) {
      i += 1 + nm[0].length;
      if (nm[0] in vars) return vars[nm[0]]!;
      return unresolvedVar(w, `$${nm[0]}`, nm[0]);
    }
    if (next !== undefined && /[0-9@*#?$!-]/.test(next)) {
      i += 2;
      return unresolvedVar(w, `$${next}`, undefined);
    }
    i++;
    return '$';
  };

  const unresolvedVar = (w: Word, raw: string, name: string | undefined): string => {
    w.unresolved.push({ kind: 'variable', text: raw, line: w.line });
    const d = name ? dynamic[name] : undefined;
    warn(w.line, d
      ? `${raw} is set on line ${d.line} from ${d.text}, which kvmctl does not run: kept as written`
      : `${raw} is not set in the script: kept as written`);
    return raw;
  };

  /** Read one word starting at i (not at a blank or operator). */
  const readWord = (): Word => {
    const w: Word = { text: '', line, unresolved: [] };
    const rawStart = i;
    let firstQuote = -1; // raw offset of the first quote/expansion, for NAME= detection
    const mark = () => {
      if (firstQuote < 0) firstQuote = i - rawStart;
    };
    while (i < src.length) {
      const ch = src[i]!;
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === ';' || ch === '&' || ch === '|' || ch === '<' || ch === '>' || ch === '(' || ch === ')') break;
      if (ch === '\\') {
        if (src[i + 1] === '\n') {
          i += 2;
          line++;
          continue;
        }
        mark();
        if (i + 1 < src.length) w.text += src[i + 1];
        i += 2;
        continue;
      }
      if (ch === "'") {
        mark();
        const end = src.indexOf("'", i + 1);
        if (end < 0) warn(line, 'unterminated single quote');
        const body = src.slice(i + 1, end < 0 ? src.length : end);
        line += body.split('\n').length - 1;
        w.text += body;
        i = end < 0 ? src.length : end + 1;
        continue;
      }
      if (ch === '"') {
        mark();
        i++;
        while (i < src.length && src[i] !== '"') {
          const c = src[i]!;
          if (c === '\\' && i + 1 < src.length && '$`"\\\n'.includes(src[i + 1]!)) {
            if (src[i + 1] === '\n') line++;
            else w.text += src[i + 1];
            i += 2;
          } else if (c === '$') w.text += dollar(w, true);
          else if (c === '`') w.text += backtick(w);
          else {
            if (c === '\n') line++;
            w.text += c;
            i++;
          }
        }
        if (i >= src.length) warn(w.line, 'unterminated double quote');
        i++;
        continue;
      }
      if (ch === '$') {
        mark();
        w.text += dollar(w, false);
        continue;
      }
      if (ch === '`') {
        mark();
        w.text += backtick(w);
        continue;
      }
      w.text += ch;
      i++;
    }
    const raw = src.slice(rawStart, i);
    const am = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(raw);
    if (am && (firstQuote < 0 || firstQuote > am[1]!.length) && w.text.startsWith(`${am[1]}=`)) {
      w.assign = { name: am[1]!, value: w.text.slice(am[1]!.length + 1) };
    }
    return w;
  };

  const backtick = (w: Word): string => {
    const l = line;
    const t = scanSubst('`');
    w.unresolved.push({ kind: 'command', text: t, line: l });
    warn(l, `command substitution ${t} is not run by kvmctl: kept as written`);
    return t;
  };

  const skipHeredocs = () => {
    // Called just after a newline: skip the bodies of pending here-documents.
    while (heredocs.length) {
      const h = heredocs.shift()!;
      for (;;) {
        if (i >= src.length) {
          warn(h.line, `here-document ${h.delim} is not terminated`);
          break;
        }
        const nl = src.indexOf('\n', i);
        const l = src.slice(i, nl < 0 ? src.length : nl);
        i = nl < 0 ? src.length : nl + 1;
        line++;
        if (l.replace(/^\t+/, '') === h.delim) break;
      }
    }
  };

  while (i < src.length) {
    const ch = src[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
      continue;
    }
    if (ch === '\\' && src[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    if (ch === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (ch === '\n') {
      finish();
      i++;
      line++;
      skipHeredocs();
      continue;
    }
    if (ch === ';' || ch === '&' || ch === '|' || ch === '(' || ch === ')') {
      finish();
      i += src[i + 1] === ch && ch !== '(' && ch !== ')' ? 2 : 1;
      continue;
    }
    const rm = REDIRECT.exec(src.slice(i));
    if (rm) {
      const c = startCmd();
      const l = line;
      i += rm[0].length;
      while (src[i] === ' ' || src[i] === '\t') i++;
      const op = rm[2]!;
      const fd = rm[1] ? Number(rm[1]) : op.startsWith('<') && op !== '<>' ? 0 : op === '<>' ? 0 : 1;
      if (op === '<<' || op === '<<-') {
        const target = readWord();
        heredocs.push({ delim: target.text, line: l });
        warn(l, `here-document <<${target.text} is skipped`);
        c.redirects.push({ fd, op, target, line: l });
        continue;
      }
      const target = readWord();
      c.redirects.push({ fd, op, target, line: l });
      continue;
    }
    const c = startCmd();
    const w = readWord();
    if (w.assign && c.words.length === 0) c.env.push(w);
    else c.words.push(w);
  }
  finish();
  return { commands, vars, dynamic, warnings };
}

/** Substitute known variables in a text such as an unresolved `$(cat /sys/class/net/${IF}/ifindex)`. */
export function expandKnown(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, a: string | undefined, b: string | undefined) => {
    const n = (a ?? b)!;
    return n in vars ? vars[n]! : all;
  });
}
