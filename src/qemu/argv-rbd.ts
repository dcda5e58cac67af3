/**
 * QEMU arguments of a volume disk on an rbd storage (issue #21, docs/storage-ceph.md). Pure:
 * src/storage/attach.ts resolves the storage definition and writes the key file before start.
 *
 *   -object secret,id=SEC,file=KEYFILE,format=base64      the cephx key: a 0600 file, never argv
 *   -blockdev {"driver":"rbd","node-name":"ID-rbd",…}     protocol node (librbd inside QEMU)
 *   -blockdev {"driver":"raw","node-name":"ID","file":"ID-rbd",…}   format node: the one devices,
 *                                                          block_resize and block jobs name
 * Cache modes (a disk's cache:, else the storage's, default writeback):
 *   writeback     librbd cache on; guest flushes reach the OSDs (safe: virtio-blk announces a
 *                 volatile write cache, so the guest flushes)            cache.direct=off
 *   none          librbd cache off (BDRV_O_NOCACHE → rbd_cache=false)   cache.direct=on
 *   writethrough  librbd cache on, the device says write-cache=off (every write is flushed)
 *   directsync    librbd cache off and write-cache=off
 *   unsafe        flushes ignored (cache.no-flush=on): test VMs only
 * Discard: unmap (default) passes the guest's TRIM down, so RBD frees the objects; ignore drops it.
 */
import type { DiskSpec } from '../definition/vm.js';

export type RbdVolumeArg = {
  /** Storage name (one secret object per storage). */
  storage: string;
  pool: string;
  namespace?: string;
  image: string;
  /** host/port of each monitor (port as QEMU wants it: a string). */
  servers?: { host: string; port: string }[];
  conf?: string;
  user: string;
  /** The 0600 file holding the base64 key (`-object secret,file=`). */
  keyFile: string;
  cache: NonNullable<DiskSpec['cache']>;
  discard: 'unmap' | 'ignore';
};

export const secretId = (storage: string) => `sec-${storage}`;

/** `host[:port]` / `[v6]:port` → QEMU's {host, port}; 3300 (msgr2) when no port is given. */
export function serverOf(m: string): { host: string; port: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(m);
  if (v6) return { host: v6[1]!, port: v6[2] ?? '3300' };
  const i = m.lastIndexOf(':');
  return i > 0 ? { host: m.slice(0, i), port: m.slice(i + 1) } : { host: m, port: '3300' };
}

/** cache: → the node's cache options and the device's write-cache. */
export function rbdCache(mode: RbdVolumeArg['cache']): { cache: { direct: boolean; 'no-flush': boolean }; writeCache: 'on' | 'off' } {
  return {
    cache: { direct: mode === 'none' || mode === 'directsync', 'no-flush': mode === 'unsafe' },
    writeCache: mode === 'writethrough' || mode === 'directsync' ? 'off' : 'on',
  };
}

/** The secret objects (one per storage used) and the two -blockdev nodes of each volume disk. */
export function rbdSecretArgs(vols: RbdVolumeArg[]): string[] {
  const seen = new Map<string, string>();
  for (const v of vols) seen.set(v.storage, v.keyFile);
  return [...seen].flatMap(([s, file]) => ['-object', `secret,id=${secretId(s)},file=${file.replace(/,/g, ',,')},format=base64`]);
}

export function rbdBlockdevArgs(id: string, v: RbdVolumeArg, d: Pick<DiskSpec, 'readOnly' | 'detectZeroes' | 'cache' | 'discard'>): { args: string[]; writeCache: 'on' | 'off' } {
  const { cache, writeCache } = rbdCache(d.cache ?? v.cache);
  const discard = d.discard ?? v.discard;
  const proto = {
    driver: 'rbd',
    'node-name': `${id}-rbd`,
    pool: v.pool,
    ...(v.namespace ? { namespace: v.namespace } : {}),
    image: v.image,
    ...(v.servers?.length ? { server: v.servers } : {}),
    ...(v.conf ? { conf: v.conf } : {}),
    user: v.user,
    'key-secret': secretId(v.storage),
    'auth-client-required': ['cephx'],
    cache,
    discard,
    'read-only': d.readOnly,
  };
  const fmt = { driver: 'raw', 'node-name': id, file: `${id}-rbd`, cache, discard, ...(d.detectZeroes ? { 'detect-zeroes': d.detectZeroes } : {}), 'read-only': d.readOnly };
  return { args: ['-blockdev', JSON.stringify(proto), '-blockdev', JSON.stringify(fmt)], writeCache };
}
