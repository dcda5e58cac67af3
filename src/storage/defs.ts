/**
 * Stored storage definitions: `<config>/storage/NAME.yaml` (0600: it names a keyring), written
 * atomically by `kvmctl storage define` only. Reading one validates it (the zod schema module is
 * loaded lazily: only commands that touch a volume disk pay for it). A dir storage's path becomes
 * a storage root when it is defined (src/host/storage-roots.ts, the same refusals as `storage add`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { NAME_RE, NAME_RULE, closest } from '../definition/names.js';
import type { RbdStorageSpec, StorageSpec } from '../definition/storage.js';

export function storageDefsDir(paths: Paths): string {
  return path.join(paths.config, 'storage');
}

function file(paths: Paths, name: string): string {
  if (!NAME_RE.test(name)) throw badInput('BAD_NAME', `"${name}" is not a valid name: it ${NAME_RULE}`);
  return path.join(storageDefsDir(paths), `${name}.yaml`);
}

export function listStorageNames(paths: Paths): string[] {
  try {
    return fs.readdirSync(storageDefsDir(paths)).filter((f) => f.endsWith('.yaml') && !f.startsWith('.')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

export async function readStorage(paths: Paths, name: string): Promise<StorageSpec> {
  const f = file(paths, name);
  let text: string;
  try {
    text = fs.readFileSync(f, 'utf8');
  } catch {
    const guess = closest(name, listStorageNames(paths));
    throw badInput('STORAGE_NOT_FOUND', `no storage named "${name}"`, guess ? `did you mean "${guess}"?` : 'define it with kvmctl storage define -f FILE (kvmctl storage list shows what exists)');
  }
  const { parseStorage } = await import('../definition/storage.js');
  const s = parseStorage(text, f);
  if (s.name !== name) throw badInput('DEFINITION_CORRUPT', `${f} holds storage "${s.name}", not "${name}"`, 'define it again with kvmctl storage define -f FILE');
  return s;
}

/**
 * A storage as lists show it (`kvmctl storage list`, GET /api/storage): where it is, never the key
 * (nor the keyring's path: a listing is for any viewer). A definition that no longer validates is
 * listed with its error instead of failing the whole list.
 */
export type StorageSummary = {
  name: string;
  type?: 'dir' | 'rbd';
  description?: string;
  path?: string;
  pool?: string;
  namespace?: string;
  monitors?: string[];
  conf?: string;
  user?: string;
  error?: string;
};

export function storageSummary(s: StorageSpec): StorageSummary {
  const d = s.description !== undefined ? { description: s.description } : {};
  if (s.type === 'dir') return { name: s.name, type: 'dir', ...d, path: s.path };
  return { name: s.name, type: 'rbd', ...d, pool: s.pool, ...(s.namespace ? { namespace: s.namespace } : {}), ...(s.monitors ? { monitors: s.monitors } : {}), ...(s.conf ? { conf: s.conf } : {}), user: s.user };
}

export async function listStorages(paths: Paths): Promise<StorageSummary[]> {
  const out: StorageSummary[] = [];
  for (const n of listStorageNames(paths)) {
    try {
      out.push(storageSummary(await readStorage(paths, n)));
    } catch (e) {
      out.push({ name: n, error: (e as Error).message.split('\n')[0]!.slice(0, 300) });
    }
  }
  return out;
}

export async function readRbdStorage(paths: Paths, name: string): Promise<RbdStorageSpec> {
  const s = await readStorage(paths, name);
  if (s.type !== 'rbd') throw badInput('STORAGE_NOT_RBD', `storage "${name}" is of type ${s.type}: volumes live in rbd storages`, 'a dir storage holds files: name them with file: in a disk');
  return s;
}

export type DefineResult = { name: string; type: string; action: 'created' | 'configured' | 'unchanged'; file: string; root?: string };

/** `kvmctl storage define -f FILE`: validate, (dir) add the root, write. Bad input changes nothing. */
export async function defineStorage(paths: Paths, text: string, source: string): Promise<DefineResult> {
  const { parseStorage } = await import('../definition/storage.js');
  const s = parseStorage(text, source);
  const f = file(paths, s.name);
  let root: string | undefined;
  if (s.type === 'dir') {
    const { addStorage } = await import('../host/storage-roots.js');
    root = addStorage(paths, s.path).real;
  } else {
    // The keyring must be there and hold the user's key now, not at the first VM start.
    const { readKey } = await import('./rbd.js');
    readKey(s);
  }
  const old = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined;
  const body = text.endsWith('\n') ? text : `${text}\n`;
  if (old === body) return { name: s.name, type: s.type, action: 'unchanged', file: f, root };
  fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
  const tmp = path.join(path.dirname(f), `.${s.name}.yaml.${process.pid}.tmp`);
  fs.writeFileSync(tmp, body, { mode: 0o600 });
  fs.renameSync(tmp, f);
  return { name: s.name, type: s.type, action: old === undefined ? 'created' : 'configured', file: f, root };
}

/** VMs whose definitions name the storage (a disk's storage:). */
export async function vmsUsingStorage(paths: Paths, name: string, volume?: string): Promise<{ vm: string; disk: string }[]> {
  const store = await import('../definition/store.js');
  await store.prepareDefinitions(paths);
  const out: { vm: string; disk: string }[] = [];
  for (const n of store.listNames(paths, 'vm')) {
    let vm;
    try {
      vm = store.readVm(paths, n);
    } catch {
      continue; // an invalid definition is reported by the commands that read it
    }
    vm.disks.forEach((d, i) => {
      if (d.storage === name && (volume === undefined || d.volume === volume)) out.push({ vm: n, disk: d.id ?? `disk${i}` });
    });
  }
  return out;
}

/** `kvmctl storage rm NAME`: refused while a VM definition names it. The data (a pool, a dir) is never touched. */
export async function removeStorageDef(paths: Paths, name: string): Promise<{ removed: string }> {
  const s = await readStorage(paths, name);
  const users = await vmsUsingStorage(paths, name);
  if (users.length) throw badInput('STORAGE_IN_USE', `storage "${name}" is named by ${users.map((u) => `VM "${u.vm}" (disk ${u.disk})`).join(', ')}`, 'change or remove those disks first');
  fs.rmSync(file(paths, s.name));
  return { removed: name };
}
