/**
 * `kvmctl backup restore VM@ID [--as NEW] [--force]`: each disk's chain flattened by `qemu-img
 * convert` into the disk's own format, with the NVRAM and TPM state beside it. Nothing is written
 * until every check passed: never over a running VM; never over an existing disk, NVRAM or TPM
 * state without --force (and then into a scratch file renamed over the old one at the end, so a
 * failed restore leaves the old disk as it was). `--as NEW` makes a new VM: its own disk files
 * (NEW-DISK.FORMAT in the images dir), no MACs copied (kvmctl derives new ones), the same NVRAM/TPM.
 * RBD volume disks (volumes.ts) are restored into their volume (or, with --as, a new volume
 * NEW-DISK in the same storage; with --as-files an image file NEW-DISK.img), through a scratch
 * volume swapped in only when every disk converted; a volume open by a client or with snapshots is
 * never replaced.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { badInput, KvmError } from '../errors.js';
import { vmStateDir, type Paths } from '../host/paths.js';
import { validateVm } from '../definition/load.js';
import { exists, readVm } from '../definition/store.js';
import { checkLoadedDefinitions, applyLoadedDefinitions } from '../vm/definitions.js';
import { withVmLock } from '../vm/lock.js';
import { confinedPath } from '../vm/path-check.js';
import { nvramPath } from '../vm/runtime-paths.js';
import { vmStatus } from '../vm/status.js';
import { activeDisks } from '../vm/storage.js';
import { backupDir, diskChain, findBackup, resolveRepo, type Manifest } from './repo.js';
import { stringify } from '../definition/yaml-out.js';
import { restoreVolumes, volumeDisks, volumeRef, volumeRestoreProblems, type VolumePlan } from './volumes.js';

/** `asFiles`: with `as`, RBD volume disks become image files; `netns`: where Ceph is reachable. */
export type RestoreOptions = { to?: string; as?: string; asFiles?: boolean; force?: boolean; netns?: string };
export type RestoreResult = { vm: string; from: string; definition: 'created' | 'kept'; disks: { id: string; file: string; replaced: boolean }[]; nvram?: string; tpm?: string };

type Plan = { id: string; chainTop: string; dest: string; format: string; replaced: boolean };

function newDefinition(m: Manifest, yamlText: string, as: string, asFiles: boolean): { raw: Record<string, unknown>; files: Record<string, string> } {
  const raw = parse(yamlText) as Record<string, unknown>;
  raw.name = as;
  const files: Record<string, string> = {};
  const disks = (raw.disks as Record<string, unknown>[] | undefined) ?? [];
  disks.forEach((d, i) => {
    const id = (d.id as string | undefined) ?? `disk${i}`;
    const md = m.disks.find((x) => x.id === id);
    if (!md) return; // a read-only disk not in the backup: the new VM shares it, as the old one did
    if (d.volume !== undefined && !asFiles) {
      d.volume = `${as}-${id}`; // a new volume in the same storage
      return;
    }
    delete d.storage;
    delete d.volume;
    const file = `${as}-${id}.${md.format === 'raw' ? 'img' : md.format}`;
    d.file = file;
    delete d.create;
    files[id] = file;
  });
  for (const n of (raw.nics as Record<string, unknown>[] | undefined) ?? []) delete n.mac;
  delete raw.autostart;
  return { raw, files };
}

export async function restoreBackup(paths: Paths, ref: string, o: RestoreOptions = {}): Promise<RestoreResult> {
  const repo = resolveRepo(paths, o.to);
  const m = findBackup(repo, ref);
  const dir = backupDir(repo, m.vm, m.id);
  const name = o.as ?? m.vm;
  const yamlText = fs.readFileSync(path.join(dir, 'vm.yaml'), 'utf8');
  return withVmLock(paths, name, async () => {
    const st = exists(paths, 'vm', name) ? await vmStatus(paths, name, { lockHeld: true }) : undefined;
    if (st && st.state !== 'stopped' && st.state !== 'crashed') {
      throw badInput('VM_RUNNING', `VM "${name}" is ${st.state}; kvmctl never restores over a running VM`, `stop it first (kvmctl stop ${name}), or restore beside it with --as NEW`);
    }
    // The definition the restored disks belong to.
    let def: ReturnType<typeof checkLoadedDefinitions> | undefined;
    let spec;
    let files: Record<string, string> = {};
    if (o.as) {
      if (exists(paths, 'vm', name)) throw badInput('VM_EXISTS', `VM "${name}" already exists`, 'pick another name for --as, or restore over it by its own name');
      const nd = newDefinition(m, yamlText, name, !!o.asFiles);
      spec = validateVm(nd.raw, `${dir}/vm.yaml`);
      files = nd.files;
      def = checkLoadedDefinitions(paths, [{ kind: 'vm', spec, text: stringify(nd.raw), source: `restore of ${m.vm}@${m.id}` }], `restore of ${m.vm}@${m.id}`);
    } else if (exists(paths, 'vm', name)) spec = readVm(paths, name);
    else {
      spec = validateVm(parse(yamlText), `${dir}/vm.yaml`);
      def = checkLoadedDefinitions(paths, [{ kind: 'vm', spec, text: yamlText, source: `${dir}/vm.yaml` }], `restore of ${m.vm}@${m.id}`);
    }
    if (o.asFiles && !o.as) throw badInput('RESTORE_REFUSED', '--as-files goes with --as NEW (a restore over the VM writes its disks where its definition has them)');
    const active = activeDisks(paths, spec);
    const vols = volumeDisks(spec);
    const problems: string[] = [];
    const volPlans: VolumePlan[] = [];
    for (const d of m.disks) {
      const v = vols.find((x) => x.id === d.id);
      if (!v) continue;
      const p = { id: d.id, chainTop: diskChain(repo, m, d.id)[0]!.path, storage: v.storage, volume: v.volume, size: d.virtualSize };
      const r = await volumeRestoreProblems(paths, o.netns, name, p, !!o.force);
      problems.push(...r.problems);
      volPlans.push({ ...p, replaced: r.replaced });
    }
    const plans: Plan[] = m.disks.filter((d) => !vols.some((v) => v.id === d.id)).map((d) => {
      const a = active.find((x) => x.id === d.id);
      const rel = files[d.id] ?? a?.disk.file;
      if (!rel || !a) {
        problems.push(`disk ${d.id}: the definition of "${name}" has no such disk now`);
        return undefined as unknown as Plan;
      }
      if (a.overlays.length) problems.push(`disk ${d.id}: ${a.base} has snapshot overlays (${a.overlays.map((x) => x.name).join(', ')}); restoring under them would corrupt them`);
      const dest = confinedPath(paths, rel, `disk ${d.id}`, { base: paths.images });
      const replaced = fs.existsSync(dest);
      if (replaced && !o.force) problems.push(`disk ${d.id}: ${dest} exists (kvmctl never overwrites a disk without --force)`);
      return { id: d.id, chainTop: diskChain(repo, m, d.id)[0]!.path, dest, format: a.baseFormat, replaced };
    });
    const nvDest = m.nvram ? nvramPath(paths, spec) : undefined;
    if (nvDest && fs.existsSync(nvDest) && !o.force) problems.push(`NVRAM: ${nvDest} exists (use --force to replace it with the backup's)`);
    const tpmFile = m.tpm?.stateFile ? (spec.tpm ? spec.tpm.state : undefined) : undefined;
    if (m.tpm?.stateFile && o.as) problems.push(`TPM state: ${m.vm} keeps it in one file (${m.tpm.stateFile}); restore it under its own name (a copy --as NEW would share that file)`);
    else if (m.tpm?.stateFile && !tpmFile) problems.push(`TPM state: the backup has a TPM state file but the definition of "${name}" has no tpm.state now`);
    const tpmDest = m.tpm ? (m.tpm.stateFile ? tpmFile : path.join(vmStateDir(paths, name), 'tpm')) : undefined;
    if (tpmDest && !m.tpm?.stateFile && fs.existsSync(tpmDest) && fs.readdirSync(tpmDest).length && !o.force) problems.push(`TPM state: ${tpmDest} exists (use --force to replace it with the backup's)`);
    if (tpmDest && m.tpm?.stateFile && fs.existsSync(tpmDest) && fs.statSync(tpmDest).size > 0 && !o.force) problems.push(`TPM state: ${tpmDest} exists (use --force to replace it with the backup's)`);
    if (problems.length) {
      throw badInput('RESTORE_REFUSED', `restore of ${m.vm}@${m.id} as "${name}": ${problems.join('; ')}`, o.as ? 'fix the above; nothing was changed' : 'nothing was changed; --force replaces what exists, --as NEW restores beside it');
    }
    const { qemuImg } = await import('../disk/qemu-img.js');
    const scratch = plans.map((p) => `${p.dest}.restore-${process.pid}.tmp`);
    try {
      for (const [i, p] of plans.entries()) {
        fs.mkdirSync(path.dirname(p.dest), { recursive: true });
        await qemuImg(['convert', '-f', 'qcow2', '-O', p.format, p.chainTop, scratch[i]!], p.chainTop);
      }
      await restoreVolumes(paths, o.netns, volPlans);
    } catch (e) {
      for (const s of scratch) fs.rmSync(s, { force: true });
      throw new KvmError('RESTORE_FAILED', `restore of ${m.vm}@${m.id}: ${(e as Error).message}`, { hint: 'nothing was replaced; kvmctl backup verify checks the backup', cause: e });
    }
    // Everything is converted: now replace, and write the definition last.
    plans.forEach((p, i) => fs.renameSync(scratch[i]!, p.dest));
    fs.mkdirSync(vmStateDir(paths, name), { recursive: true });
    if (nvDest && m.nvram) fs.copyFileSync(path.join(dir, m.nvram.file), nvDest);
    if (tpmDest && m.tpm?.stateFile) fs.copyFileSync(path.join(dir, m.tpm.dir, 'state.bin'), tpmDest);
    else if (tpmDest && m.tpm) {
      fs.rmSync(tpmDest, { recursive: true, force: true });
      fs.cpSync(path.join(dir, m.tpm.dir), tpmDest, { recursive: true });
    }
    if (def) applyLoadedDefinitions(paths, def);
    return {
      vm: name,
      from: `${m.vm}@${m.id}`,
      definition: def ? 'created' : 'kept',
      disks: [...plans.map((p) => ({ id: p.id, file: p.dest, replaced: p.replaced })), ...volPlans.map((p) => ({ id: p.id, file: volumeRef(p), replaced: p.replaced }))],
      ...(nvDest ? { nvram: nvDest } : {}),
      ...(tpmDest ? { tpm: tpmDest } : {}),
    };
  });
}
