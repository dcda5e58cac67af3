/**
 * A backup repository: a directory of plain files anyone can restore with qemu-img alone.
 *
 *   REPO/VM/ID/manifest.json     what this backup holds (see Manifest), sums of the restored content
 *   REPO/VM/ID/DISK.qcow2        one qcow2 per disk: a full image, or an incremental whose backing
 *                                file is ../PARENT/DISK.qcow2 (a relative path: the repository moves)
 *   REPO/VM/ID/vm.yaml           the definition as it was
 *   REPO/VM/ID/nvram.fd, tpm/    the UEFI vars and the TPM state, when the VM has them
 *
 * A backup is written into REPO/VM/.ID.partial and renamed into place only when complete, so a
 * directory named like an ID is always a whole backup. IDs sort by time (UTC, to the second).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import { readHostConfig } from '../host/host-config.js';
import type { Paths } from '../host/paths.js';
import { realish, rootOf, storageRoots, within } from '../host/storage-roots.js';

export type ManifestDisk = {
  id: string;
  /** File name inside the backup directory. */
  file: string;
  /** The disk's image as the definition names it (resolved), and its format there. */
  source: string;
  format: string;
  /** An RBD volume disk: STORAGE/VOLUME (then `source` is the same and `format` raw). */
  volume?: string;
  kind: 'full' | 'incremental';
  /** Relative backing file of an incremental (../PARENT/DISK.qcow2). */
  backing?: string;
  virtualSize: number;
  /** Bytes this backup file takes (its own clusters only). */
  fileSize: number;
  /** SHA-256 of the disk's whole content as a restore writes it (the chain, flattened to raw). */
  sha256: string;
  /** How the changes were found: the dirty bitmap, rbd diff since the previous backup's anchor, or a full copy (older manifests: absent). */
  via?: 'bitmap' | 'rbd-diff' | 'full';
  /** RBD: the anchor snapshot this backup left on the volume (kvmctl-bk-ID), and for rbd-diff the bytes the diff marked. */
  anchor?: string;
  diffBytes?: number;
  /** Why this disk's backup is full although an incremental was asked. */
  fullBecause?: string;
};

export type Manifest = {
  format: 1;
  id: string;
  vm: string;
  createdAt: string;
  kind: 'full' | 'incremental';
  /** The backup the incrementals of this one build on. */
  parent?: string;
  /** The dirty-bitmap generation: every full backup starts a new one (bitmap kvmctl-GEN on each disk). */
  generation: string;
  vmState: string;
  frozen: boolean;
  note?: string;
  disks: ManifestDisk[];
  /** Disks not backed up (read-only), with why. */
  skipped: { id: string; why: string }[];
  nvram?: { file: string; sha256: string };
  /** `stateFile`: the VM kept its TPM in one file (tpm.state), copied here as tpm/state.bin. */
  tpm?: { dir: string; files: Record<string, string>; stateFile?: string };
  durationMs: number;
  /** Of which: the block jobs (the copy itself), and reading the chain back for the sums. */
  jobMs?: number;
  sumMs?: number;
};

/** The default repository: host.json's backup.repository, else <data>/backups. */
export function defaultRepo(paths: Paths): string {
  return readHostConfig(paths).backup?.repository ?? path.join(paths.data, 'backups');
}

/**
 * The repository directory to use, resolved: kvmctl's own <data>/backups, or a directory inside a
 * storage root (kvmctl never writes outside them). Created when missing.
 */
export function resolveRepo(paths: Paths, to?: string): string {
  const dir = path.resolve(to ?? defaultRepo(paths));
  const { real } = realish(dir);
  const own = realish(path.join(paths.data, 'backups')).real;
  if (!within(real, own) && !rootOf(real, storageRoots(paths))) {
    throw badInput('PATH_OUTSIDE_ROOTS', `--to ${dir}: the backup repository must be inside a storage root or ${own}`, `to allow it: kvmctl storage add ${dir}`);
  }
  if (fs.existsSync(real) && !fs.statSync(real).isDirectory()) throw badInput('BACKUP_REPO_INVALID', `${dir} is not a directory`);
  fs.mkdirSync(real, { recursive: true });
  return real;
}

export const ID_RE = /^\d{8}T\d{6}Z(-\d+)?$/;

/** A new backup ID for a VM: the time, made unique within the VM's directory. */
export function newBackupId(vmDir: string, now = new Date()): string {
  const base = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let id = base;
  for (let n = 1; fs.existsSync(path.join(vmDir, id)) || fs.existsSync(path.join(vmDir, `.${id}.partial`)); n++) id = `${base}-${n}`;
  return id;
}

/** Time order of IDs: the time, then the uniqueness suffix as a number (…Z-2 before …Z-10). */
export function compareIds(a: string, b: string): number {
  const [ta, na] = [a.slice(0, 16), Number(a.slice(17) || 0)];
  const [tb, nb] = [b.slice(0, 16), Number(b.slice(17) || 0)];
  return ta < tb ? -1 : ta > tb ? 1 : na - nb;
}

export const vmRepoDir = (repo: string, vm: string) => path.join(repo, vm);
export const backupDir = (repo: string, vm: string, id: string) => path.join(repo, vm, id);

export function readManifest(dir: string): Manifest {
  const file = path.join(dir, 'manifest.json');
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  } catch (e) {
    throw new KvmError('BACKUP_MANIFEST_INVALID', `${file}: ${(e as Error).message}`, { hint: 'the backup is damaged; kvmctl backup verify says more' });
  }
  if (m.format !== 1 || !Array.isArray(m.disks)) throw new KvmError('BACKUP_MANIFEST_INVALID', `${file}: not a kvmctl backup manifest (format ${String(m.format)})`);
  return m;
}

export function writeManifest(dir: string, m: Manifest): void {
  const file = path.join(dir, 'manifest.json');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(m, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** The VM's complete backups in the repository, oldest first. */
export function listBackups(repo: string, vm: string): Manifest[] {
  const dir = vmRepoDir(repo, vm);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => ID_RE.test(n))
    .sort(compareIds)
    .map((n) => readManifest(path.join(dir, n)));
}

/** VMs with backups in the repository. */
export function listBackedUpVms(repo: string): string[] {
  try {
    return fs
      .readdirSync(repo, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.readdirSync(path.join(repo, d.name)).some((n) => ID_RE.test(n)))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

/** `VM@ID` (or `VM@latest`) → its manifest; a clear error naming what exists otherwise. */
export function findBackup(repo: string, ref: string): Manifest {
  const at = ref.lastIndexOf('@');
  if (at <= 0) throw badInput('BACKUP_REF_INVALID', `"${ref}" is not VM@ID`, 'kvmctl backup list VM shows the IDs; VM@latest is the newest');
  const vm = ref.slice(0, at);
  const id = ref.slice(at + 1);
  const all = listBackups(repo, vm);
  const m = id === 'latest' ? all[all.length - 1] : all.find((b) => b.id === id);
  if (!m) {
    throw badInput('BACKUP_NOT_FOUND', `no backup ${id} of VM "${vm}" in ${repo}`, all.length ? `its backups: ${all.map((b) => b.id).join(', ')}` : 'the repository has no backup of that VM');
  }
  return m;
}

/** The chain a backup's disk restores from, newest first (this backup, its parent, … the full). */
export function diskChain(repo: string, m: Manifest, diskId: string): { manifest: Manifest; disk: ManifestDisk; path: string }[] {
  const out: { manifest: Manifest; disk: ManifestDisk; path: string }[] = [];
  let cur: Manifest | undefined = m;
  while (cur) {
    const d = cur.disks.find((x) => x.id === diskId);
    if (!d) throw new KvmError('BACKUP_CHAIN_BROKEN', `backup ${cur.id} of "${m.vm}" has no disk ${diskId}`);
    out.push({ manifest: cur, disk: d, path: path.join(backupDir(repo, m.vm, cur.id), d.file) });
    if (d.kind === 'full') return out;
    if (!cur.parent) throw new KvmError('BACKUP_CHAIN_BROKEN', `backup ${cur.id} of "${m.vm}": disk ${diskId} is incremental but has no parent`);
    const dir = backupDir(repo, m.vm, cur.parent);
    if (!fs.existsSync(dir)) throw new KvmError('BACKUP_CHAIN_BROKEN', `backup ${cur.id} of "${m.vm}" builds on ${cur.parent}, which is not in ${repo}`);
    cur = readManifest(dir);
  }
  return out;
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
