/** Quote an argv for a POSIX shell so it can be copied and pasted as it is. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_./:=,@%+-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** One option per line, like the seed's launch script: `qemu \` + ` -name x \` … */
export function formatCommandLine(argv: readonly string[], opts: { multiline?: boolean; prefix?: string } = {}): string {
  const q = argv.map(shellQuote);
  if (!opts.multiline) return (opts.prefix ?? '') + q.join(' ');
  const lines: string[] = [(opts.prefix ?? '') + q[0]];
  for (let i = 1; i < q.length; i++) {
    if (q[i]!.startsWith('-') && i + 1 < q.length && !q[i + 1]!.startsWith('-')) {
      lines.push(` ${q[i]} ${q[i + 1]}`);
      i++;
    } else lines.push(` ${q[i]}`);
  }
  return lines.join(' \\\n');
}
