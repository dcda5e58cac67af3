/**
 * `backup verify` re-reads a backup: `qemu-img check` of every file of each disk's chain, the
 * SHA-256 of the content a restore would write against the manifest, and the NVRAM/TPM sums.
 * `backup prune` drops what the keep rules (prune-plan.ts, PBS semantics) do not keep, merging a
 * dropped backup into the incremental that builds on it first (`qemu-img rebase` onto the dropped
 * one's own parent, or onto nothing), so every kept backup stays restorable with the same sums.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { withVmLock } from '../vm/lock.js';
import { planPrune, type KeepRules } from './prune-plan.js';
import { backupDir, diskChain, fileSha256, findBackup, listBackups, resolveRepo, writeManifest, type Manifest } from './repo.js';
import { contentSha256 } from './sums.js';

export type VerifyResult = { backup: string; ok: boolean; problems: string[]; disks: { id: string; files: number; sha256: string; ok: boolean }[] };

export async function verifyBackup(paths: Paths, ref: string, o: { to?: string } = {}): Promise<VerifyResult> {
  const repo = resolveRepo(paths, o.to);
  const m = findBackup(repo, ref);
  const dir = backupDir(repo, m.vm, m.id);
  const { check } = await import('../disk/qemu-img.js');
  const problems: string[] = [];
  const disks: VerifyResult['disks'] = [];
  for (const d of m.disks) {
    let okDisk = true;
    let sum = '';
    let chain: ReturnType<typeof diskChain> = [];
    try {
      chain = diskChain(repo, m, d.id);
    } catch (e) {
      problems.push((e as Error).message);
      disks.push({ id: d.id, files: 0, sha256: '', ok: false });
      continue;
    }
    for (const c of chain) {
      if (!fs.existsSync(c.path)) {
        problems.push(`disk ${d.id}: ${c.path} is missing`);
        okDisk = false;
        continue;
      }
      const r = await check(c.path, 'qcow2').catch((e: Error) => ({ supported: true as const, status: 'unreadable', error: e.message }));
      // Leaked clusters waste space but lose nothing; corruption or an unreadable image fails.
      if (r.supported && r.status !== 'clean' && r.status !== 'leaks') {
        problems.push(`disk ${d.id}: qemu-img check of ${c.path}: ${r.status}${'error' in r ? ` (${r.error})` : ''}`);
        okDisk = false;
      }
    }
    if (okDisk) {
      try {
        sum = await contentSha256(chain[0]!.path, dir);
        if (sum !== d.sha256) {
          problems.push(`disk ${d.id}: content SHA-256 is ${sum}, the manifest says ${d.sha256}`);
          okDisk = false;
        }
      } catch (e) {
        problems.push(`disk ${d.id}: reading the chain failed: ${(e as Error).message}`);
        okDisk = false;
      }
    }
    disks.push({ id: d.id, files: chain.length, sha256: sum, ok: okDisk });
  }
  if (m.nvram) {
    const f = path.join(dir, m.nvram.file);
    if (!fs.existsSync(f) || (await fileSha256(f)) !== m.nvram.sha256) problems.push(`NVRAM ${f}: missing or its SHA-256 differs from the manifest`);
  }
  for (const [name, sum] of Object.entries(m.tpm?.files ?? {})) {
    const f = path.join(dir, m.tpm!.dir, name);
    if (!fs.existsSync(f) || (await fileSha256(f)) !== sum) problems.push(`TPM state ${f}: missing or its SHA-256 differs from the manifest`);
  }
  return { backup: `${m.vm}@${m.id}`, ok: problems.length === 0, problems, disks };
}

/** Check the result of a verify of a whole chain (the CLI/API turn a bad one into exit 1). */
export function verifyFailed(results: VerifyResult[]): KvmError | undefined {
  const bad = results.filter((r) => !r.ok);
  if (!bad.length) return undefined;
  return new KvmError('BACKUP_CORRUPT', `${bad.map((b) => `${b.backup}: ${b.problems.join('; ')}`).join(' | ')}`, { hint: 'restore from another backup; the next backup of the VM can be made --full' });
}

/** `anchors`: kvmctl's RBD snapshots (kvmctl-bk-ID) of removed backups that were removed with them (VOLUME@SNAP), and the ones that could not be (left for the next backup or volume rm). */
export type PruneResult = { vm: string; kept: { id: string; by: string }[]; removed: string[]; merged: { into: string; from: string; disks: string[] }[]; dryRun: boolean; anchors?: { removed: string[]; failed: string[] } };

/**
 * Make each kept backup that builds on a removed one independent of it: every incremental disk is
 * rebased straight onto the nearest KEPT ancestor's file (or onto nothing when the chain reaches a
 * full disk first). `qemu-img rebase` in safe mode copies what the skipped layers provided, so the
 * content (and its sum) stays the same; the removed directories go only after all merges.
 */
async function mergeInto(repo: string, vm: string, all: Manifest[], remove: Set<string>, merged: PruneResult['merged']): Promise<void> {
  const { qemuImg } = await import('../disk/qemu-img.js');
  const byId = new Map(all.map((m) => [m.id, m]));
  for (const child of all) {
    if (remove.has(child.id) || !child.parent || !remove.has(child.parent)) continue;
    const cdir = backupDir(repo, vm, child.id);
    let keptAncestor: string | undefined;
    const skipped: string[] = [];
    for (let a = byId.get(child.parent); a; a = a.parent ? byId.get(a.parent) : undefined) {
      if (!remove.has(a.id)) {
        keptAncestor = a.id;
        break;
      }
      skipped.push(a.id);
    }
    const rebased: string[] = [];
    for (const d of child.disks) {
      if (d.kind !== 'incremental') continue;
      // Down this disk's chain: the first kept backup, unless a removed full copy of the disk comes first.
      let onto: string | undefined;
      for (let a = byId.get(child.parent); a; a = a.parent ? byId.get(a.parent) : undefined) {
        const ad = a.disks.find((x) => x.id === d.id);
        if (!remove.has(a.id)) {
          onto = ad ? `../${a.id}/${ad.file}` : undefined;
          break;
        }
        if (!ad || ad.kind === 'full') break;
      }
      const file = path.join(cdir, d.file);
      await qemuImg(['rebase', '-f', 'qcow2', '-b', onto ?? '', ...(onto ? ['-F', 'qcow2'] : []), file], file);
      if (onto) d.backing = onto;
      else {
        d.kind = 'full';
        delete d.backing;
      }
      d.fileSize = fs.statSync(file).blocks * 512;
      rebased.push(d.id);
    }
    if (child.disks.some((d) => d.kind === 'incremental') && keptAncestor) child.parent = keptAncestor;
    else {
      delete child.parent;
      child.kind = 'full';
    }
    writeManifest(cdir, child);
    merged.push({ into: child.id, from: skipped.join(', '), disks: rebased });
  }
  for (const id of remove) fs.rmSync(backupDir(repo, vm, id), { recursive: true, force: true });
}

export async function pruneBackups(paths: Paths, vm: string, rules: KeepRules, o: { to?: string; dryRun?: boolean; netns?: string } = {}): Promise<PruneResult> {
  const repo = resolveRepo(paths, o.to);
  const all = listBackups(repo, vm);
  const plan = planPrune(all.map((b) => ({ id: b.id, createdAt: b.createdAt })), rules);
  const merged: PruneResult['merged'] = [];
  const anchors = { removed: [] as string[], failed: [] as string[] };
  if (!o.dryRun && plan.remove.length) {
    // Under the VM's lock: no backup of it meanwhile.
    await withVmLock(paths, vm, async () => {
      const now = listBackups(repo, vm);
      await mergeInto(repo, vm, now, new Set(plan.remove), merged);
      // The RBD anchors of removed backups (usually none: a newer backup replaced them already).
      const drop = now.filter((b) => plan.remove.includes(b.id)).flatMap((b) => b.disks.filter((d) => d.volume && d.anchor).map((d) => ({ vol: d.volume!, snap: d.anchor! })));
      if (drop.length) {
        const a = await import('../storage/anchors.js');
        for (const x of drop) {
          const [storage, volume] = x.vol.split('/') as [string, string];
          try {
            if ((await a.dropAnchors({ paths, netns: o.netns }, storage, volume, { only: x.snap })).length) anchors.removed.push(`${x.vol}@${x.snap}`);
          } catch (e) {
            anchors.failed.push(`${x.vol}@${x.snap}: ${(e as Error).message}`);
          }
        }
      }
    });
  }
  return { vm, kept: plan.keep, removed: plan.remove, merged, dryRun: !!o.dryRun, ...(anchors.removed.length || anchors.failed.length ? { anchors } : {}) };
}
