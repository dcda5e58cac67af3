/**
 * Volume disks at start (and in `cmdline`): each disk with `storage:` gets its storage definition
 * resolved into the RbdVolumeArg buildArgv needs (src/qemu/argv-rbd.ts). The cephx key goes to
 * QEMU as `-object secret,file=`: `writeKeys` writes it into the VM's run dir (0600, owned by the
 * user QEMU runs as) just before QEMU starts, and `start` removes it once QMP answers (QEMU read it
 * when it created the object), so the key never sits in a command line, a process listing or argv.json.
 * `checkVolumes` makes sure each image exists before QEMU is spawned (a clear error, nothing started).
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';
import type { Paths } from '../host/paths.js';
import type { RbdStorageSpec } from '../definition/storage.js';
import type { VmSpec } from '../definition/vm.js';
import { serverOf, type RbdVolumeArg } from '../qemu/argv-rbd.js';
import { diskId } from '../qemu/argv.js';
import { readRbdStorage } from './defs.js';

export type ResolvedVolumes = { volumes: Record<string, RbdVolumeArg>; storages: Map<string, RbdStorageSpec>; images: { id: string; storage: string; image: string }[] };

export type VolumeDisk = { id: string; storage: string; volume: string; readOnly: boolean };

/** The VM's RBD volume disks, by disk id (pure). */
export function volumeDisks(vm: Pick<VmSpec, 'disks'>): VolumeDisk[] {
  return vm.disks.flatMap((d, i) => (d.storage !== undefined && d.volume !== undefined ? [{ id: diskId(d, i), storage: d.storage, volume: d.volume, readOnly: !!d.readOnly }] : []));
}

export const keyFilePath = (runDir: string, storage: string) => path.join(runDir, `rbd-${storage}.key`);

export async function resolveVolumes(paths: Paths, vm: VmSpec, runDir: string): Promise<ResolvedVolumes> {
  const volumes: Record<string, RbdVolumeArg> = {};
  const storages = new Map<string, RbdStorageSpec>();
  const images: ResolvedVolumes['images'] = [];
  const issues: { path: string; message: string }[] = [];
  for (const [i, d] of vm.disks.entries()) {
    if (d.storage === undefined || d.volume === undefined) continue;
    let s = storages.get(d.storage);
    if (!s) {
      try {
        s = await readRbdStorage(paths, d.storage);
      } catch (e) {
        issues.push({ path: `disks[${i}].storage`, message: (e as Error).message });
        continue;
      }
      storages.set(d.storage, s);
    }
    const id = diskId(d, i);
    volumes[id] = {
      storage: s.name, pool: s.pool, namespace: s.namespace, image: d.volume,
      servers: s.monitors?.map(serverOf), conf: s.conf, user: s.user,
      keyFile: keyFilePath(runDir, s.name), cache: s.cache, discard: s.discard,
    };
    images.push({ id, storage: s.name, image: d.volume });
  }
  if (issues.length) throw badInput('SPEC_INVALID', `VM "${vm.name}": ${issues.map((x) => `${x.path}: ${x.message}`).join('; ')}`, 'kvmctl storage list shows the storages', issues);
  return { volumes, storages, images };
}

/** Every volume must exist (one `rbd info` each, in the namespace QEMU will run in). */
export async function checkVolumes(r: ResolvedVolumes, netns?: string): Promise<void> {
  const { imageSpec, rbdRun } = await import('./rbd.js');
  for (const im of r.images) {
    const s = r.storages.get(im.storage)!;
    await rbdRun({ storage: s, netns }, ['info', '--format', 'json', imageSpec(s, im.image)], { what: `volume ${im.storage}/${im.image} (disk ${im.id})`, timeoutMs: 30_000 });
  }
}

/** Write each storage's key file (0600) for QEMU; returns the files written (to remove after start). */
export async function writeKeys(r: ResolvedVolumes, runDir: string, owner?: { uid: number; gid: number }): Promise<string[]> {
  const { readKey } = await import('./rbd.js');
  const out: string[] = [];
  for (const s of r.storages.values()) {
    const f = keyFilePath(runDir, s.name);
    fs.rmSync(f, { force: true });
    fs.writeFileSync(f, readKey(s), { mode: 0o600, flag: 'wx' });
    if (owner) fs.chownSync(f, owner.uid, owner.gid);
    out.push(f);
  }
  return out;
}
