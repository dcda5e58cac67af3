/**
 * Which command lines the start fast path (src/cli/start-fast.ts) takes: `start NAME` with only
 * --wait, --json, --wait-for-guest [MARKER], --timeout SECONDS, --netns NAME, in any order, each
 * at most once. Anything else (several names, --on, --remote, --help, a bad value, an unknown
 * option) is left to the full CLI, which parses it with commander and reports errors; so this
 * parser only needs to be right about what it accepts. Pure: argv in, options or undefined out.
 * It reads an option's value the way commander does: `--wait-for-guest` takes the next word as
 * its marker unless that word starts with "-"; `--timeout`/`--netns` take the next word whatever it is.
 */
export type FastStart = { name: string; json: boolean; waitForGuest?: string | true; timeout?: number; netns?: string };

const FLAGS = new Set(['--wait', '--json']);
const VALUED = new Set(['--timeout', '--netns']);

/** `args` = process.argv.slice(2). */
export function parseFastStart(args: readonly string[]): FastStart | undefined {
  if (args[0] !== 'start') return undefined;
  const seen = new Set<string>();
  const names: string[] = [];
  const out: Omit<FastStart, 'name'> = { json: false };
  for (let i = 1; i < args.length; i++) {
    let a = args[i]!;
    if (!a.startsWith('-')) {
      names.push(a);
      continue;
    }
    let value: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (seen.has(a) || value === '') return undefined;
    seen.add(a);
    if (FLAGS.has(a)) {
      if (value !== undefined) return undefined;
      if (a === '--json') out.json = true;
    } else if (a === '--wait-for-guest') {
      if (value === undefined && i + 1 < args.length && !args[i + 1]!.startsWith('-')) value = args[++i];
      out.waitForGuest = value ?? true;
    } else if (VALUED.has(a)) {
      if (value === undefined) {
        if (i + 1 >= args.length) return undefined;
        value = args[++i]!;
      }
      if (a === '--timeout') {
        const n = Number(value);
        if (value.trim() === '' || !Number.isFinite(n) || n < 0) return undefined;
        out.timeout = n;
      } else out.netns = value;
    } else return undefined;
  }
  if (names.length !== 1) return undefined;
  return { name: names[0]!, ...out };
}
