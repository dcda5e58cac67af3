/**
 * The network namespace kvmctl works in — resolved in this one place. `--netns NAME` (global or
 * on the command) wins, else the `KVMCTL_NETNS` environment variable, else none (the host's own
 * namespace). The name is checked (the syntax `ip netns` accepts for a file under
 * /var/run/netns) and the namespace must exist: a typo must not fall back to the root namespace,
 * nor get one created silently. The result is passed down as data (StartOptions.netns,
 * NetOpts.netns, ServerOptions.netns, AgentOptions.netns): no other module under src/ reads
 * KVMCTL_NETNS (test/unit/host/netns-target.test.ts greps for it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';

export const NETNS_ENV = 'KVMCTL_NETNS';
/** Where `ip netns add` puts the namespaces' bind mounts (a link to /run/netns on most hosts). */
export const NETNS_DIR = '/var/run/netns';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type NetnsSource = { flag?: string; env?: NodeJS.ProcessEnv; dir?: string };

/** The namespace to work in, or undefined for the host's own. Throws exit-2 errors, nothing changed. */
export function resolveNetns(o: NetnsSource = {}): string | undefined {
  const env = o.env ?? process.env;
  const fromFlag = o.flag !== undefined;
  const raw = fromFlag ? o.flag : env[NETNS_ENV];
  if (raw === undefined || (!fromFlag && raw === '')) return undefined;
  const where = fromFlag ? '--netns' : NETNS_ENV;
  if (!NAME.test(raw)) {
    throw badInput('BAD_NETNS', `${where} "${raw}" is not a network namespace name`, 'letters, digits, "_", "." and "-", at most 64, starting with a letter or digit (see: ip netns list)');
  }
  const dir = o.dir ?? NETNS_DIR;
  if (!netnsExists(raw, dir)) {
    throw badInput('NETNS_NOT_FOUND', `network namespace "${raw}" (from ${where}) does not exist (no ${path.join(dir, raw)})`, `create it first: ip netns add ${raw}${fromFlag ? '' : ` — or unset ${NETNS_ENV} to work in the host's namespace`}`);
  }
  return raw;
}

/**
 * Whether a named namespace exists: an nsfs bind mount on an empty file, so another device than
 * the directory's (a file left by a half-done `ip netns del` is not a namespace).
 */
export function netnsExists(name: string, dir = NETNS_DIR): boolean {
  try {
    const st = fs.statSync(path.join(dir, name));
    return st.isFile() && st.dev !== fs.statSync(dir).dev;
  } catch {
    return false;
  }
}

/**
 * Where a network recorded as up lives: its recorded namespace when that still exists (or the
 * host's, recorded as undefined), else — the namespace is gone, and its links with it — the
 * caller's. `recorded` is undefined when there is no record.
 */
export function recordedNetns(recorded: { netns?: string } | undefined, caller: string | undefined): string | undefined {
  if (!recorded) return caller;
  if (recorded.netns === undefined) return undefined;
  return netnsExists(recorded.netns) ? recorded.netns : caller;
}
