/** The launch-script tokenizer: quotes, continuations, comments, variables, substitutions, fd redirections. */
import { describe, expect, it } from 'vitest';
import { expandKnown, parseShell } from '../../../src/qemu/shell-words.js';

const words = (src: string, i = 0) => parseShell(src).commands[i]!.words.map((w) => w.text);

describe('parseShell', () => {
  it('joins backslash-newline continuations and keeps line numbers', () => {
    const s = parseShell('qemu-system-x86_64 \\\n -name "exam_vm" \\\n -m 4G\n\necho done\n');
    expect(s.commands.map((c) => c.words.map((w) => w.text))).toEqual([['qemu-system-x86_64', '-name', 'exam_vm', '-m', '4G'], ['echo', 'done']]);
    expect(s.commands[0]!.words[3]!.line).toBe(3);
    expect(s.commands[0]!.line).toBe(1);
    expect(s.commands[0]!.endLine).toBe(3);
    expect(s.commands[1]!.line).toBe(5);
  });

  it('handles single, double and ANSI-C quotes and backslash escapes', () => {
    expect(words(`a 'b c' "d \\"e\\" \\$f" g\\ h $'i\\tj' 'k'"l"m`)).toEqual(['a', 'b c', 'd "e" $f', 'g h', 'i\tj', 'klm']);
    expect(words(`-append 'console=ttyS0 root=/dev/vda'`)).toEqual(['-append', 'console=ttyS0 root=/dev/vda']);
  });

  it('drops comments but not a # inside a word', () => {
    const s = parseShell('# a comment\nqemu -name a#b # trailing comment\n  # indented\n');
    expect(s.commands).toHaveLength(1);
    expect(s.commands[0]!.words.map((w) => w.text)).toEqual(['qemu', '-name', 'a#b']);
  });

  it('splits commands on ; && || | & and newlines', () => {
    const s = parseShell('a 1; b 2 && c 3 || d | e & f');
    expect(s.commands.map((c) => c.words[0]!.text)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('remembers literal assignments and substitutes $VAR and ${VAR}', () => {
    const s = parseShell('NAME=web\nexport DISK="/srv/${NAME}.qcow2"\nqemu -name $NAME -hda ${DISK}\n');
    expect(s.vars).toEqual({ NAME: 'web', DISK: '/srv/web.qcow2' });
    expect(s.commands.map((c) => c.words.map((w) => w.text))).toEqual([['export', 'DISK=/srv/web.qcow2'], ['qemu', '-name', 'web', '-hda', '/srv/web.qcow2']]);
    expect(s.warnings).toEqual([]);
  });

  it('keeps an unknown variable verbatim and warns once per use', () => {
    const s = parseShell('qemu -hda "$IMG" -m ${MEM:-2G}\n');
    expect(s.commands[0]!.words.map((w) => w.text)).toEqual(['qemu', '-hda', '$IMG', '-m', '2G']);
    expect(s.commands[0]!.words[2]!.unresolved).toEqual([{ kind: 'variable', text: '$IMG', line: 1 }]);
    expect(s.warnings.map((w) => w.message)).toEqual(['$IMG is not set in the script: kept as written', 'MEM is not set in the script: used the default of ${MEM:-2G} ("2G")']);
  });

  it('keeps $(…) and backticks as unresolved text and warns, without running them', () => {
    const s = parseShell('qemu -name "$(hostname)-vm" -smp `nproc` -m $((2*1024))\n');
    const w = s.commands[0]!.words;
    expect(w.map((x) => x.text)).toEqual(['qemu', '-name', '$(hostname)-vm', '-smp', '`nproc`', '-m', '$((2*1024))']);
    expect(w[2]!.unresolved[0]).toMatchObject({ kind: 'command', text: '$(hostname)' });
    expect(w[4]!.unresolved[0]).toMatchObject({ kind: 'command', text: '`nproc`' });
    expect(w[6]!.unresolved[0]).toMatchObject({ kind: 'arithmetic' });
    expect(s.warnings.map((x) => x.message)).toEqual([
      'command substitution $(hostname) is not run by kvmctl: kept as written',
      'command substitution `nproc` is not run by kvmctl: kept as written',
    ]);
  });

  it('nests parentheses and quotes inside $(…)', () => {
    expect(words(`x "$(echo "a)b" $(date))" y`)).toEqual(['x', '$(echo "a)b" $(date))', 'y']);
  });

  it('warns when a variable is set from a substitution, and at its use', () => {
    const s = parseShell('IDX=$(cat /sys/class/net/mvt0/ifindex)\nqemu -x /dev/tap$IDX\n');
    expect(s.vars).toEqual({});
    expect(s.dynamic.IDX).toEqual({ line: 1, text: '$(cat /sys/class/net/mvt0/ifindex)' });
    expect(s.commands[0]!.words[2]!.text).toBe('/dev/tap$IDX');
    expect(s.warnings.map((w) => w.message)).toContain('$IDX is set on line 1 from $(cat /sys/class/net/mvt0/ifindex), which kvmctl does not run: kept as written');
  });

  it('understands fd redirections such as 3<>/dev/tap$(cat …)', () => {
    const s = parseShell('qemu -netdev tap,id=net0,fd=3 3<>/dev/tap$(cat /sys/class/net/${MACVTAP}/ifindex) 4<> /dev/tap7 2>&1 >/tmp/log\n');
    const c = s.commands[0]!;
    expect(c.words.map((w) => w.text)).toEqual(['qemu', '-netdev', 'tap,id=net0,fd=3']);
    expect(c.redirects.map((r) => [r.fd, r.op, r.target.text])).toEqual([
      [3, '<>', '/dev/tap$(cat /sys/class/net/${MACVTAP}/ifindex)'],
      [4, '<>', '/dev/tap7'],
      [2, '>&', '1'],
      [1, '>', '/tmp/log'],
    ]);
    expect(c.redirects[0]!.target.unresolved[0]!.kind).toBe('command');
  });

  it('treats env-prefixed commands as an environment, not script variables', () => {
    const s = parseShell('QEMU_AUDIO_DRV=none qemu -m 1G\n');
    expect(s.commands[0]!.env.map((w) => w.text)).toEqual(['QEMU_AUDIO_DRV=none']);
    expect(s.commands[0]!.words.map((w) => w.text)).toEqual(['qemu', '-m', '1G']);
    expect(s.vars).toEqual({});
  });

  it('skips here-document bodies and reports unterminated quotes', () => {
    const s = parseShell('cat <<EOF\nqemu -m 1G\nEOF\nqemu -m 2G\n');
    expect(s.commands.map((c) => c.words.map((w) => w.text))).toEqual([['cat'], ['qemu', '-m', '2G']]);
    expect(parseShell(`qemu -name 'oops\n`).warnings.map((w) => w.message)).toEqual(['unterminated single quote']);
  });

  it('does not take a quoted NAME= as an assignment', () => {
    const s = parseShell(`"A=1" B'=2'\n`);
    expect(s.vars).toEqual({});
    expect(s.commands[0]!.words.map((w) => w.text)).toEqual(['A=1', 'B=2']);
  });
});

describe('expandKnown', () => {
  it('substitutes known variables inside an unresolved substitution text', () => {
    expect(expandKnown('$(cat /sys/class/net/${MV}/ifindex) $X', { MV: 'macvtap0' })).toBe('$(cat /sys/class/net/macvtap0/ifindex) $X');
  });
});
