/**
 * Storage definitions (`kind: storage`, issue #21; docs/storage-ceph.md): one YAML file per storage
 * in `<config>/storage/NAME.yaml`, written only by `kvmctl storage define` (the host's
 * administrator, like storage roots — never `apply` or the API: an rbd storage names a keyring
 * file kvmctl reads and hands to QEMU, and monitors it would send that key to).
 *   type: dir  a named storage root (its path becomes a root: kvmctl never touches paths outside roots)
 *   type: rbd  a Ceph pool: monitors and/or a ceph.conf, a cephx user and its keyring file
 */
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { name } from './vm.js';
import { specError, toIssues } from './load.js';
import type { ErrorIssue } from '../errors.js';

const absPath = (what: string) =>
  z.string({ error: `${what} must be a path` }).refine((p) => p.startsWith('/') && !p.split('/').includes('..'), { error: `${what} must be an absolute path without ".."` });

/** A Ceph pool or RADOS namespace name (kept to characters that need no quoting anywhere). */
const cephName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"' });

/** `host`, `host:port`, `[v6]:port`; the port defaults to 3300 (msgr2, the IANA port for Ceph monitors). */
export const MONITOR_RE = /^(?:[A-Za-z0-9][A-Za-z0-9.-]*|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

export const dirStorageSchema = z.strictObject({
  kind: z.literal('storage'),
  name,
  description: z.string().optional(),
  type: z.literal('dir'),
  /** A directory; `storage define` makes it a storage root (the same refusals as `storage add`). */
  path: absPath('path'),
});

export const rbdStorageSchema = z
  .strictObject({
    kind: z.literal('storage'),
    name,
    description: z.string().optional(),
    type: z.literal('rbd'),
    pool: cephName,
    /** RADOS namespace inside the pool (optional). */
    namespace: cephName.optional(),
    /** Monitor addresses; without them the monitors come from `conf`. */
    monitors: z.array(z.string().regex(MONITOR_RE, { error: 'must be a monitor address such as 10.0.0.1, 10.0.0.1:3300 or [fd00::1]:6789' })).min(1).optional(),
    /** A ceph.conf to read (mon_host and client options); optional when monitors are given. */
    conf: absPath('conf').optional(),
    /** The cephx user without "client." (its caps: `profile rbd` on the pool is enough). */
    user: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'must be a cephx user name without "client.", such as kvmctl' })
      .refine((u) => !u.startsWith('client.'), { error: 'is given without "client." (user: admin means client.admin)' })
      .default('admin'),
    /** The keyring file holding the user's key (kvmctl reads it to pass the key to QEMU as a secret object file, never on a command line). */
    keyring: absPath('keyring'),
    /** Default cache mode of this storage's disks (a disk's own cache: wins); writeback turns librbd's cache on, none turns it off. */
    cache: z.enum(['writeback', 'none', 'writethrough', 'directsync', 'unsafe']).default('writeback'),
    /** Default discard of this storage's disks: unmap passes the guest's TRIM to RBD, which frees the objects (thin provisioning). */
    discard: z.enum(['unmap', 'ignore']).default('unmap'),
  })
  .superRefine((s, ctx) => {
    if (!s.monitors && !s.conf) ctx.addIssue({ code: 'custom', path: ['monitors'], message: 'give monitors: (addresses) or conf: (a ceph.conf naming mon_host)' });
  });

export const storageSchema = z.discriminatedUnion('type', [dirStorageSchema, rbdStorageSchema], { error: 'type must be one of dir, rbd' });

export type StorageSpec = z.output<typeof storageSchema>;
export type RbdStorageSpec = z.output<typeof rbdStorageSchema>;
export type DirStorageSpec = z.output<typeof dirStorageSchema>;

/** Parse one storage definition's YAML; throws SPEC_INVALID listing every problem with its path. */
export function parseStorage(text: string, source: string): StorageSpec {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length !== 1) throw specError(source, [{ path: '(top)', message: `a storage file holds exactly one definition, found ${list.length}` }]);
  const doc = list[0]!;
  if (doc.errors.length) throw specError(source, doc.errors.map((e) => ({ path: `${source}:${e.linePos?.[0]?.line ?? '?'}`, message: `YAML: ${e.message.split('\n')[0]}` })));
  const raw = doc.toJS() as unknown;
  return validateStorage(raw, source);
}

export function validateStorage(raw: unknown, source = '<input>'): StorageSpec {
  const issues: ErrorIssue[] = [];
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw specError(source, [{ path: '(top)', message: 'a definition must be a mapping of keys' }]);
  if ((raw as Record<string, unknown>).kind !== 'storage') issues.push({ path: 'kind', message: 'must be "storage" (kvmctl storage define takes storage definitions only)' });
  const r = storageSchema.safeParse(raw, { reportInput: true });
  if (!r.success) issues.push(...toIssues(r.error, raw).filter((i) => !(i.path === 'kind' && issues.length)));
  if (issues.length) throw specError(source, issues);
  return r.data!;
}
