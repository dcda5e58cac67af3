/**
 * Named API tokens with roles (`kvmctl serve token add|list|rm`), kept in `<config>/tokens.json`
 * (0600, written atomically). Only each token's SHA-256 is stored, never the token: a token is 32
 * random bytes, so a fast hash is enough (no password to brute-force) and lookups stay cheap on
 * every request. The token is printed once, when it is made.
 *
 * Roles, each including the one before: viewer (read only, no consoles), operator (lifecycle and
 * consoles), admin (definitions, disks, networks, host, tokens, audit). A token may be scoped to
 * VMs whose names match a glob (`*`, `?`): then it sees and acts on those VMs only, and nothing
 * that is not a VM's beyond reading.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';

import { ROLES, type Role } from './contract-auth.js';

export { ROLES, type Role };
export const roleRank = (r: Role): number => ROLES.indexOf(r);

export type TokenEntry = { name: string; role: Role; vms?: string; sha256: string; createdAt: string };
/** Who a request is. `token` is the legacy single token (admin), `local` the unix socket / no auth. */
export type Identity = { user: string; role: Role; vms?: string };

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const GLOB_RE = /^[A-Za-z0-9_.*?-]{1,64}$/;
/** Names the server uses for itself in the audit log. */
const RESERVED = new Set(['token', 'local']);

export const tokensFile = (paths: Paths): string => path.join(paths.config, 'tokens.json');
export const sha256 = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');

/** `web-*` → /^web-.*$/ (only `*` and `?` are special; names hold no other glob characters). */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.\-]/g, (c) => `\\${c}`).replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}
export const vmInScope = (id: Identity, vm: string): boolean => !id.vms || globToRegExp(id.vms).test(vm);

/**
 * Whether an event of the stream may go to this identity: a scoped token gets the events of its
 * VMs only. Every event names its VM (`vm`); a task's is its target, '' for one with no VM (a
 * disk, a network, the host), which a scoped token does not get, as GET /api/tasks leaves it out.
 */
export const eventInScope = (id: Identity | undefined, e: { vm: string }): boolean => !id?.vms || (e.vm !== '' && vmInScope(id, e.vm));

function parseFile(text: string, file: string): TokenEntry[] {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new KvmError('TOKENS_CORRUPT', `${file} is not JSON: ${(e as Error).message}`, { hint: 'fix or remove the file (then add the tokens again)' });
  }
  const list = (j as { tokens?: unknown }).tokens;
  if (!Array.isArray(list)) throw new KvmError('TOKENS_CORRUPT', `${file} has no "tokens" list`, { hint: 'fix or remove the file' });
  return list.filter(
    (t): t is TokenEntry => !!t && typeof t.name === 'string' && ROLES.includes(t.role) && typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256),
  );
}

export function readTokens(paths: Paths): TokenEntry[] {
  const file = tokensFile(paths);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseFile(text, file);
}

function writeTokens(paths: Paths, list: TokenEntry[]): void {
  const file = tokensFile(paths);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ tokens: list }, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

export type TokenView = Omit<TokenEntry, 'sha256'>;
const view = ({ sha256: _h, ...rest }: TokenEntry): TokenView => rest;

export function addToken(paths: Paths, name: string, role: string, vms?: string): TokenView & { token: string } {
  const issues: { path: string; message: string }[] = [];
  if (!NAME_RE.test(name)) issues.push({ path: 'name', message: 'letters, digits, "_", "." and "-", starting with a letter or digit, at most 64' });
  else if (RESERVED.has(name)) issues.push({ path: 'name', message: `"${name}" is kept for the server's own use in the audit log` });
  if (!ROLES.includes(role as Role)) issues.push({ path: 'role', message: `must be one of ${ROLES.join(', ')}` });
  if (vms !== undefined && !GLOB_RE.test(vms)) issues.push({ path: 'vms', message: 'a VM name pattern: name characters with * and ?' });
  if (issues.length) throw badInput('BAD_TOKEN_REQUEST', issues.map((i) => `${i.path}: ${i.message}`).join('; '), 'e.g. kvmctl serve token add alice --role operator --vms "web-*"', issues);
  const list = readTokens(paths);
  if (list.some((t) => t.name === name)) throw new KvmError('TOKEN_EXISTS', `a token named "${name}" exists`, { hint: `kvmctl serve token rm ${name} first` });
  const token = `kvm_${crypto.randomBytes(32).toString('base64url')}`;
  const entry: TokenEntry = { name, role: role as Role, ...(vms ? { vms } : {}), sha256: sha256(token), createdAt: new Date().toISOString() };
  writeTokens(paths, [...list, entry]);
  return { ...view(entry), token };
}

export const listTokens = (paths: Paths): TokenView[] => readTokens(paths).map(view);

export function removeToken(paths: Paths, name: string): { removed: string } {
  const list = readTokens(paths);
  if (!list.some((t) => t.name === name)) throw new KvmError('TOKEN_NOT_FOUND', `no token named "${name}"`, { hint: 'kvmctl serve token list' });
  writeTokens(paths, list.filter((t) => t.name !== name));
  return { removed: name };
}

/** The token file, re-read when it changes (a token added or removed works at once, no restart). */
export function tokenStore(paths: Paths): () => TokenEntry[] {
  const file = tokensFile(paths);
  let cur: TokenEntry[] = [];
  let stamp = '';
  return () => {
    let s = 'none';
    try {
      const st = fs.statSync(file);
      s = `${st.mtimeMs}:${st.ino}:${st.size}`;
    } catch {
      /* no file: no named tokens */
    }
    if (s !== stamp) {
      try {
        cur = s === 'none' ? [] : parseFile(fs.readFileSync(file, 'utf8'), file);
      } catch {
        cur = []; // a corrupt file admits nobody by name (the main token still works)
      }
      stamp = s;
    }
    return cur;
  };
}

/** The named token that matches, compared by hash in constant time against every entry. */
export function findToken(list: TokenEntry[], given: string): TokenEntry | undefined {
  const h = Buffer.from(sha256(given), 'hex');
  let hit: TokenEntry | undefined;
  for (const t of list) if (crypto.timingSafeEqual(h, Buffer.from(t.sha256, 'hex'))) hit = t;
  return hit;
}
