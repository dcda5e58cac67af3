/**
 * `kvmctl storage check NAME` (issue #21): is the storage usable from here (this host, or the
 * network namespace given)? Each check is reported with ok / a reason, never thrown:
 *   dir: the path exists, is a storage root, is writable; free space (statfs)
 *   rbd: the keyring holds the user's key and is not readable by others; the monitors answer
 *        (`ceph mon stat`, 15 s); the pool is listable; a tiny probe image can be created and
 *        removed (write permission); free space of the pool (`ceph df`: max_avail, from the mgr)
 */
import fs from 'node:fs';
import { imageSpec, rbdRun, readKey } from './rbd.js';
import { readStorage } from './defs.js';
import type { Paths } from '../host/paths.js';

export type CheckItem = { check: string; ok: boolean; detail: string };
export type CheckResult = { storage: string; type: string; ok: boolean; free?: number; checks: CheckItem[] };

export async function checkStorage(paths: Paths, name: string, netns?: string): Promise<CheckResult> {
  const s = await readStorage(paths, name);
  const checks: CheckItem[] = [];
  const item = (check: string, ok: boolean, detail: string) => checks.push({ check, ok, detail });
  const attempt = async (check: string, fn: () => Promise<string>) => {
    try {
      item(check, true, await fn());
      return true;
    } catch (e) {
      item(check, false, (e as Error).message);
      return false;
    }
  };
  let free: number | undefined;
  if (s.type === 'dir') {
    const { realish, rootOf, storageRoots } = await import('../host/storage-roots.js');
    const real = realish(s.path);
    item('exists', real.exists && fs.statSync(real.real).isDirectory(), real.exists ? real.real : `${s.path} does not exist`);
    item('storage root', !!rootOf(real.real, storageRoots(paths)), rootOf(real.real, storageRoots(paths)) ? 'inside a root' : `not a root any more: kvmctl storage add ${s.path}`);
    await attempt('writable', async () => { fs.accessSync(real.real, fs.constants.W_OK); return 'yes'; });
    await attempt('free space', async () => { const st = fs.statfsSync(real.real); free = st.bavail * st.bsize; return `${free} bytes`; });
  } else {
    const t = { storage: s, netns };
    await attempt('keyring', async () => {
      readKey(s);
      const mode = fs.statSync(s.keyring).mode & 0o077;
      if (mode & 0o007) throw new Error(`${s.keyring} is readable by every user (mode ${(fs.statSync(s.keyring).mode & 0o777).toString(8)}): chmod 600 it`);
      return `${s.keyring} holds the key of client.${s.user}`;
    });
    const reach = await attempt('monitors reachable', async () => {
      const st = JSON.parse(await rbdRun(t, ['mon', 'stat', '--format', 'json'], { tool: 'ceph', timeoutMs: 30_000 })) as { num_mons: number; quorum: unknown[] };
      return `${st.quorum.length} of ${st.num_mons} monitors in quorum`;
    });
    if (reach) {
      const pool = await attempt('pool', async () => { await rbdRun(t, ['ls', ...(s.namespace ? ['--namespace', s.namespace] : []), s.pool], { timeoutMs: 30_000 }); return `${s.pool} is listable`; });
      if (pool) {
        await attempt('write permission', async () => {
          const probe = `kvmctl-check-${process.pid}`;
          await rbdRun(t, ['create', '--size', '4M', imageSpec(s, probe)], { timeoutMs: 30_000 });
          await rbdRun(t, ['rm', '--no-progress', imageSpec(s, probe)], { timeoutMs: 30_000 });
          return 'created and removed a probe image';
        });
      }
      await attempt('free space', async () => {
        const df = JSON.parse(await rbdRun(t, ['df', '--format', 'json'], { tool: 'ceph', timeoutMs: 30_000 })) as { pools: { name: string; stats: { max_avail: number } }[] };
        const p = df.pools.find((x) => x.name === s.pool);
        if (!p) throw new Error(`ceph df does not list pool ${s.pool}`);
        free = p.stats.max_avail;
        return `${free} bytes available to pool ${s.pool}`;
      });
    }
  }
  return { storage: name, type: s.type, ok: checks.every((c) => c.ok), ...(free !== undefined ? { free } : {}), checks };
}

export type StorageReach = { name: string; type: string; ok: boolean; why?: string };

/**
 * The light check a cluster agent repeats (src/cluster/storage-reach.ts): every storage defined on
 * this host, reachable or not. dir: the path is a directory inside a storage root; rbd: the key is
 * readable and `rbd ls POOL` answers within 15 s (monitors reachable, cephx accepted, the pool
 * readable — one C++ tool call, no probe image: this runs every 30 s on every host).
 */
export async function reachStorages(paths: Paths, netns?: string): Promise<StorageReach[]> {
  const { listStorageNames } = await import('./defs.js');
  // In parallel: one unreachable storage (15 s) does not hold up the report of the others.
  return Promise.all(listStorageNames(paths).map(async (name): Promise<StorageReach> => {
    let type = '?';
    try {
      const s = await readStorage(paths, name);
      type = s.type;
      if (s.type === 'dir') {
        const { realish, rootOf, storageRoots } = await import('../host/storage-roots.js');
        const real = realish(s.path);
        if (!real.exists || !fs.statSync(real.real).isDirectory()) throw new Error(`${s.path} is not a directory here`);
        if (!rootOf(real.real, storageRoots(paths))) throw new Error(`${s.path} is not a storage root here`);
      } else {
        readKey(s);
        await rbdRun({ storage: s, netns }, ['ls', ...(s.namespace ? ['--namespace', s.namespace] : []), s.pool], { timeoutMs: 30_000 });
      }
      return { name, type, ok: true };
    } catch (e) {
      return { name, type, ok: false, why: (e as Error).message.split('\n')[0]!.slice(0, 300) };
    }
  }));
}
