/**
 * What every CLI command gets: resolved paths, output helpers, and lazily probed host facts.
 * Commands stay thin: parse options, call the service layer, render.
 */
import { KvmError } from '../errors.js';
import type { HostFacts } from '../host/facts.js';
import { resolveNetns } from '../host/netns-target.js';
import { resolvePaths, type Paths } from '../host/paths.js';

export type Ctx = {
  paths: Paths;
  facts(): Promise<HostFacts>;
  /** Print data: JSON when --json was given, else the text from `text()`. */
  out(data: unknown, text?: () => string): void;
  warn(msg: string): void;
  json: boolean;
  /**
   * The network namespace to create host networking in (--netns, else KVMCTL_NETNS; undefined:
   * the host's own), checked on first use: commands that touch no host networking never fail
   * over a stale KVMCTL_NETNS. Pass it down as data (src/host/netns-target.ts).
   */
  netns(): string | undefined;
};

export function makeCtx(opts: { json?: boolean; netns?: string }): Ctx {
  const paths = resolvePaths();
  let facts: Promise<HostFacts> | undefined;
  let ns: { v: string | undefined } | undefined;
  return {
    paths,
    json: !!opts.json,
    netns: () => (ns ??= { v: resolveNetns({ flag: opts.netns }) }).v,
    facts: () => (facts ??= import('../host/probe.js').then((m) => m.probeHost(paths))),
    out(data, text) {
      if (opts.json || !text) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
      else {
        const t = text();
        if (t) process.stdout.write(t.endsWith('\n') ? t : `${t}\n`);
      }
    },
    warn(msg) {
      process.stderr.write(`warning: ${msg}\n`);
    },
  };
}

/** Render an error for a person: message, then the hint. */
export function renderError(e: unknown): { text: string; exit: number; json: unknown } {
  if (e instanceof KvmError) {
    return { text: `error: ${e.code}: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`, exit: e.exit, json: e.toJSON() };
  }
  const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
  return { text: `error: INTERNAL: ${msg}`, exit: 1, json: { code: 'INTERNAL', message: String((e as Error)?.message ?? e) } };
}
