/**
 * cloud-init NoCloud seeds: user-data (from a structured object, rendered as `#cloud-config`
 * YAML), meta-data and optional network-config, packed into an ISO9660 image whose volume label is
 * `cidata` — what cloud-init's NoCloud datasource looks for on a CD-ROM or disk.
 * The ISO is made by Debian's genisoimage, or xorriso (`-as mkisofs`) when that is what is there.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { z } from 'zod';
import { cloudConfigSchema, metaDataSchema, networkConfigSchema, type CloudConfig, type MetaData } from './cloud-init-schema.js';
import { KvmError, badInput } from '../errors.js';
import { run } from '../host/exec.js';
import { assertNotInUse, existsError, writeViaTemp } from './safety.js';

export { cloudConfigSchema, cloudUserSchema, metaDataSchema, networkConfigSchema, seedSchema, type CloudConfig, type MetaData } from './cloud-init-schema.js';

export type SeedInput = {
  /** A structured cloud-config, or the full text of a user-data file (#cloud-config, #!…). */
  userData: CloudConfig | string;
  /** meta-data; `instance-id` defaults to iid-HOSTNAME. */
  metaData?: Partial<MetaData>;
  networkConfig?: Record<string, unknown> | string;
};

function zodIssues(err: z.ZodError, prefix: string) {
  return err.issues.map((i) => ({ path: [prefix, ...i.path].join('.'), message: i.message }));
}

/** Render a structured cloud-config as `#cloud-config` YAML (cloud-init's key names). */
export function renderUserData(input: CloudConfig): string {
  const r = cloudConfigSchema.safeParse(input);
  if (!r.success) throw badInput('CLOUD_INIT_INVALID', 'user-data is not valid', undefined, zodIssues(r.error, 'userData'));
  const c = r.data;
  const doc: Record<string, unknown> = {};
  if (c.hostname) {
    doc.hostname = c.hostname;
    doc.preserve_hostname = false;
  }
  if (c.fqdn) doc.fqdn = c.fqdn;
  if (c.sshAuthorizedKeys.length) doc.ssh_authorized_keys = c.sshAuthorizedKeys;
  if (c.users.length || !c.keepDefaultUser) {
    doc.users = [
      ...(c.keepDefaultUser ? ['default'] : []),
      ...c.users.map((u) => ({
        name: u.name,
        ...(u.sshAuthorizedKeys.length ? { ssh_authorized_keys: u.sshAuthorizedKeys } : {}),
        ...(u.sudo === true ? { sudo: 'ALL=(ALL) NOPASSWD:ALL' } : typeof u.sudo === 'string' ? { sudo: u.sudo } : {}),
        ...(u.groups?.length ? { groups: u.groups.join(', ') } : {}),
        ...(u.shell ? { shell: u.shell } : {}),
        ...(u.passwordHash ? { passwd: u.passwordHash } : {}),
        ...(u.lockPassword !== undefined ? { lock_passwd: u.lockPassword } : u.passwordHash ? { lock_passwd: false } : {}),
      })),
    ];
  }
  if (c.timezone) doc.timezone = c.timezone;
  if (c.packageUpdate !== undefined) doc.package_update = c.packageUpdate;
  if (c.packageUpgrade !== undefined) doc.package_upgrade = c.packageUpgrade;
  if (c.packages.length) doc.packages = c.packages;
  if (c.writeFiles?.length) doc.write_files = c.writeFiles;
  if (c.runcmd?.length) doc.runcmd = c.runcmd;
  for (const [k, v] of Object.entries(c.extra ?? {})) {
    if (k in doc) throw badInput('CLOUD_INIT_INVALID', `userData.extra.${k} repeats a key set by the structured fields`);
    doc[k] = v;
  }
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}

export function renderMetaData(md: Partial<MetaData> | undefined, hostnameHint?: string): string {
  const full = { 'instance-id': md?.['instance-id'] ?? `iid-${md?.['local-hostname'] ?? hostnameHint ?? 'kvmctl'}`, ...(hostnameHint && !md?.['local-hostname'] ? { 'local-hostname': hostnameHint } : {}), ...md };
  const r = metaDataSchema.safeParse(full);
  if (!r.success) throw badInput('CLOUD_INIT_INVALID', 'meta-data is not valid', undefined, zodIssues(r.error, 'metaData'));
  return stringify(r.data, { lineWidth: 0 });
}

export function renderNetworkConfig(nc: Record<string, unknown> | string): string {
  if (typeof nc === 'string') return nc;
  const r = networkConfigSchema.safeParse(nc);
  if (!r.success) throw badInput('CLOUD_INIT_INVALID', 'network-config is not valid', 'it needs version: 1 or version: 2', zodIssues(r.error, 'networkConfig'));
  return stringify(r.data, { lineWidth: 0 });
}

/** The three files of a seed, rendered (pure). */
export function renderSeedFiles(input: SeedInput): Record<string, string> {
  let userData: string;
  let host: string | undefined;
  if (typeof input.userData === 'string') {
    if (!/^(#cloud-config|#!|#include|#cloud-boothook|Content-Type: multipart)/.test(input.userData)) {
      throw badInput('CLOUD_INIT_INVALID', 'user-data text must start with #cloud-config (or #!, #include, a MIME multipart)');
    }
    userData = input.userData.endsWith('\n') ? input.userData : `${input.userData}\n`;
  } else {
    userData = renderUserData(input.userData);
    host = input.userData.hostname;
  }
  const files: Record<string, string> = { 'user-data': userData, 'meta-data': renderMetaData(input.metaData, host) };
  if (input.networkConfig !== undefined) files['network-config'] = renderNetworkConfig(input.networkConfig);
  return files;
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** The ISO tool to use: genisoimage, else xorriso; undefined when neither is installed. */
export function isoTool(): { tool: 'genisoimage' | 'xorriso'; path: string } | undefined {
  const g = onPath('genisoimage');
  if (g) return { tool: 'genisoimage', path: g };
  const x = onPath('xorriso');
  if (x) return { tool: 'xorriso', path: x };
  return undefined;
}

export function isoArgv(tool: 'genisoimage' | 'xorriso', out: string, files: string[]): string[] {
  return tool === 'genisoimage'
    ? ['genisoimage', '-quiet', '-output', out, '-volid', 'cidata', '-joliet', '-rock', ...files]
    : ['xorriso', '-as', 'mkisofs', '-quiet', '-o', out, '-V', 'cidata', '-J', '-r', ...files];
}

/**
 * Build a NoCloud seed ISO (volume label `cidata`) at `outPath`. Never replaces an existing file
 * without `force` (nor one a running QEMU has open); written under a temp name, then renamed.
 */
export async function buildNoCloudSeed(input: SeedInput, outPath: string, opts: { force?: boolean; signal?: AbortSignal } = {}): Promise<{ path: string; tool: string; files: Record<string, string> }> {
  const files = renderSeedFiles(input);
  const abs = path.resolve(outPath);
  if (fs.existsSync(abs)) {
    if (!opts.force) throw existsError(abs);
    await assertNotInUse(abs, { doing: 'replace the seed' });
  }
  const tool = isoTool();
  if (!tool) {
    throw new KvmError('TOOL_MISSING', 'no ISO tool to build the cloud-init seed: neither genisoimage nor xorriso is installed', {
      hint: 'apt-get install --no-install-recommends genisoimage',
    });
  }
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-seed-'));
  try {
    const paths = Object.entries(files).map(([name, text]) => {
      const p = path.join(stage, name);
      fs.writeFileSync(p, text, { mode: 0o644 });
      return p;
    });
    await writeViaTemp(abs, { overwrite: !!opts.force, signal: opts.signal, trapSignals: false }, async (tmp, signal) => {
      await run(isoArgv(tool.tool, tmp, paths), { signal, errorCode: 'SEED_BUILD_FAILED' });
    });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  return { path: abs, tool: tool.tool, files };
}

/** The volume id of an ISO9660 image: primary volume descriptor (sector 16), bytes 40..71. */
export function readIsoVolumeId(isoPath: string): string {
  const fd = fs.openSync(isoPath, 'r');
  try {
    const b = Buffer.alloc(72);
    fs.readSync(fd, b, 0, 72, 16 * 2048);
    if (b[0] !== 1 || b.toString('latin1', 1, 6) !== 'CD001') throw new KvmError('NOT_AN_ISO', `${isoPath} is not an ISO9660 image`);
    return b.toString('latin1', 40, 72).trimEnd();
  } finally {
    fs.closeSync(fd);
  }
}
