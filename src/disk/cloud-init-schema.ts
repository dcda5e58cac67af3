/**
 * The zod schemas of a cloud-init NoCloud seed (user-data as a structured cloud-config, meta-data,
 * network-config). Kept apart from the ISO builder so that the VM schema (src/definition/vm.ts) can use
 * them without loading the builder.
 */
import { z } from 'zod';

const SSH_KEY_RE = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$/;
const sshKey = z.string().trim().regex(SSH_KEY_RE, { error: 'must be an OpenSSH public key line (ssh-ed25519 AAAA… comment)' });
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const hostname = z.string().regex(HOSTNAME_RE, { error: 'must be a host name (letters, digits, -, dots between labels)' });

export const cloudUserSchema = z.strictObject({
  name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a Unix user name (lowercase, digits, _ and -)' }),
  sshAuthorizedKeys: z.array(sshKey).default([]),
  /** true = passwordless sudo for everything; a string is a sudoers rule. */
  sudo: z.union([z.boolean(), z.string().min(1)]).optional(),
  groups: z.array(z.string().regex(/^[a-z_][a-z0-9_-]*$/)).optional(),
  shell: z.string().startsWith('/').optional(),
  /** A crypt(3) hash (mkpasswd -m sha-512); never a clear-text password. */
  passwordHash: z.string().regex(/^\$[0-9a-z]+\$/, { error: 'must be a crypt hash such as $6$… (mkpasswd -m sha-512)' }).optional(),
  lockPassword: z.boolean().optional(),
});

export const cloudConfigSchema = z.strictObject({
  hostname: hostname.optional(),
  fqdn: hostname.optional(),
  /** Keys for the image's default user (debian, ubuntu, …). */
  sshAuthorizedKeys: z.array(sshKey).default([]),
  /** Extra users; the image's default user is kept unless `keepDefaultUser: false`. */
  users: z.array(cloudUserSchema).default([]),
  keepDefaultUser: z.boolean().default(true),
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.:=~-]*$/, { error: 'must be a package name (optionally =version)' })).default([]),
  packageUpdate: z.boolean().optional(),
  packageUpgrade: z.boolean().optional(),
  timezone: z.string().optional(),
  runcmd: z.array(z.union([z.string(), z.array(z.string())])).optional(),
  writeFiles: z
    .array(z.strictObject({ path: z.string().startsWith('/'), content: z.string(), permissions: z.string().regex(/^0?[0-7]{3,4}$/).optional(), owner: z.string().optional() }))
    .optional(),
  /** Any other cloud-config keys, written as given (cloud-init's own names). */
  extra: z.record(z.string(), z.unknown()).optional(),
});
export type CloudConfig = z.input<typeof cloudConfigSchema>;

export const metaDataSchema = z.looseObject({
  /** cloud-init runs its once-per-instance steps again when this changes. */
  'instance-id': z.string().min(1),
  'local-hostname': hostname.optional(),
});
export type MetaData = z.input<typeof metaDataSchema>;

/** Network config version 1 or 2 (netplan-like), passed through as YAML. */
export const networkConfigSchema = z.looseObject({ version: z.union([z.literal(1), z.literal(2)]) });

/** A definition's `cloudInit:`: the three files of the seed. */
export const seedSchema = z.strictObject({
  /** A structured cloud-config, or the full text of a user-data file (#cloud-config, #!…). */
  userData: z.union([z.string().min(1), cloudConfigSchema]),
  /** meta-data; `instance-id` defaults to iid-HOSTNAME. */
  metaData: z.looseObject({ 'instance-id': z.string().min(1).optional(), 'local-hostname': hostname.optional() }).optional(),
  networkConfig: z.union([z.string().min(1), networkConfigSchema], { error: 'must be network-config text, or a mapping with version: 1 or version: 2' }).optional(),
});
