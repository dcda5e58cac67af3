/**
 * Rendering `kvmctl start|stop A B C …`: one line per VM on stdout as each one finishes (a failure
 * on stderr as `error: NAME: CODE: message` + hint), the warnings the VMs share printed once, and a
 * summary that names the failed VMs and the ones left running (on stderr). `--json`: one array
 * on stdout at the end; failures and the summary still go to stderr.
 * Exit status 1 when any VM failed (2 stays for bad input found before anything was done).
 */
import type { ErrInfo } from '../vm/autostart.js';
import type { Ctx } from './context.js';

type Failed = { name: string; result: 'failed'; error: ErrInfo };
type Outcome = { name: string; result: string; warnings?: string[] } | Failed;

const isFailed = (o: Outcome): o is Failed => o.result === 'failed';

/** The per-VM printer to pass as `onDone` (under --json only the failures, on stderr). */
export function printEach<T extends Outcome>(ctx: Ctx, line: (o: Exclude<T, Failed>) => string): (o: T) => void {
  return (o) => {
    // Failures go to stderr under --json too, as a one-VM command's error does.
    if (isFailed(o)) process.stderr.write(`error: ${o.name}: ${o.error.code}: ${o.error.message}${o.error.hint ? `\nhint: ${o.error.hint}` : ''}\n`);
    else if (!ctx.json) process.stdout.write(`${line(o as Exclude<T, Failed>)}\n`);
  };
}

/** Identical warnings of several VMs once, naming the VMs: `(a, b) KVM is not usable here…`. */
export function groupWarnings(outcomes: Outcome[]): string[] {
  const by = new Map<string, string[]>();
  for (const o of outcomes) if (!isFailed(o)) for (const w of o.warnings ?? []) by.set(w, [...(by.get(w) ?? []), o.name]);
  return [...by].map(([w, names]) => `${names.length === outcomes.length ? '' : `(${names.join(', ')}) `}${w}`);
}

/** After all are done: the JSON array, or warnings + summary; sets the exit status. */
export function finishMany(ctx: Ctx, verb: 'start' | 'stop', outcomes: Outcome[]): void {
  for (const w of groupWarnings(outcomes)) ctx.warn(w);
  const failed = outcomes.filter(isFailed).map((o) => o.name);
  const done = outcomes.filter((o) => !isFailed(o)).map((o) => o.name);
  if (ctx.json) process.stdout.write(`${JSON.stringify(outcomes, null, 2)}\n`);
  if (failed.length) {
    const rest =
      verb === 'start'
        ? done.length ? `; ${done.join(', ')} started and stay${done.length === 1 ? 's' : ''} running (kvmctl stop ${done.join(' ')} to undo)` : ''
        : done.length ? `; ${done.join(', ')} stopped` : '';
    process.stderr.write(`${failed.length} of ${outcomes.length} VMs failed to ${verb}: ${failed.join(', ')}${rest}\n`);
  }
  if (failed.length) process.exitCode = 1;
}
