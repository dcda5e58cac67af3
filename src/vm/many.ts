/**
 * `kvmctl start A B C …` / `kvmctl stop A B C …`: several VMs from one kvmctl process, at once.
 * Every definition is read and validated first: one bad name or definition (or a name given
 * twice) is bad input and nothing is started or stopped. Then each VM goes through the one-VM
 * `startVm` / `stopVm` — its own lock, its own undo when its start fails — concurrently. A VM that
 * fails does not stop the others; the ones that started stay running (the caller reports which).
 * One process instead of N saves N Node start-ups (≈ 60 MiB and a few hundred ms of CPU each)
 * competing with the guests' boots, and the QEMUs are spawned together rather than staggered.
 */
import { badInput, isKvmError, type ErrorIssue } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import { errInfo, type ErrInfo } from './autostart.js';
import type { StartOptions, StartResult } from './start.js';
import type { StopResult } from './stop.js';

export type Outcome<T, Ok extends string> = ({ result: Ok } & T) | { name: string; result: 'failed'; error: ErrInfo };
export type StartOutcome = Outcome<StartResult, 'started'>;
export type StopOutcome = Outcome<StopResult, 'stopped'>;

/**
 * Every name once, every definition readable and valid — or one bad-input error listing each
 * problem by VM name (exit 2, nothing done). A single problem is rethrown as it was (its own code).
 */
export function checkVmNames(paths: Paths, names: string[]): void {
  const issues: ErrorIssue[] = [];
  const errors: unknown[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      issues.push({ path: name, message: 'named more than once' });
      errors.push(badInput('DUPLICATE_NAME', `VM "${name}" is named more than once`, 'name each VM once'));
      continue;
    }
    seen.add(name);
    try {
      readVm(paths, name);
    } catch (e) {
      if (!isKvmError(e)) throw e;
      issues.push({ path: name, message: `${e.code}: ${e.message}${e.hint ? ` (${e.hint})` : ''}` });
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (issues.length) {
    throw badInput('VMS_INVALID', `${issues.length} of the ${names.length} VMs cannot be used:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`, 'nothing was done: fix these, then run the command again', issues);
  }
}

/** Run `fn` for every name at once; each outcome as soon as it is known, all of them in input order. */
async function each<T extends { name: string }, Ok extends string>(names: string[], ok: Ok, fn: (name: string) => Promise<T>, onDone?: (o: Outcome<T, Ok>) => void): Promise<Outcome<T, Ok>[]> {
  return Promise.all(
    names.map(async (name) => {
      let o: Outcome<T, Ok>;
      try {
        o = Object.assign({ name, result: ok }, await fn(name)) as Outcome<T, Ok>; // name, result first in --json
      } catch (e) {
        o = { name, result: 'failed', error: errInfo(e) };
      }
      onDone?.(o);
      return o;
    }),
  );
}

export async function startMany(paths: Paths, names: string[], opts: StartOptions & { onDone?: (o: StartOutcome) => void } = {}): Promise<StartOutcome[]> {
  checkVmNames(paths, names);
  // Probe once (cached on disk) before the concurrent starts, rather than N probes at once on a cold cache.
  await (await import('../host/probe.js')).probeHost(paths);
  const { startVm } = await import('./start.js');
  const { onDone, ...startOpts } = opts;
  return each(names, 'started', (name) => startVm(paths, name, { ...startOpts, log: startOpts.log && ((m) => startOpts.log!(`${name}: ${m}`)) }), onDone);
}

export async function stopMany(paths: Paths, names: string[], opts: { timeoutSec?: number; force?: boolean; method?: 'acpi' | 'agent'; onDone?: (o: StopOutcome) => void } = {}): Promise<StopOutcome[]> {
  checkVmNames(paths, names);
  const { stopVm } = await import('./stop.js');
  return each(names, 'stopped', (name) => stopVm(paths, name, { timeoutSec: opts.timeoutSec, force: opts.force, method: opts.method }), opts.onDone);
}
