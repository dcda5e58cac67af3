/**
 * Host configuration ($config/host.json), changed only by local commands (`kvmctl storage add|rm`),
 * never through the API, so that a token holder cannot widen what definitions may reach:
 *   storage.roots    directories every path a definition names must resolve into
 *   storage.devices  block devices a definition may use as a disk, listed one by one
 *   overcommit       vCPUs per host CPU, and memory as a fraction of RAM + swap (capacity checks)
 * kvmctl's own images dir and the test guest cache are roots without being listed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../errors.js';
import type { Paths } from './paths.js';

export type HostConfig = {
  storage: { roots: string[]; devices: string[] };
  /** cpu: vCPUs of running VMs (and the one starting) per host CPU; memory: guest memory as a multiple of RAM + swap. */
  overcommit: { cpu: number; memory: number };
  /** repository: where `kvmctl backup` writes when no --to is given (default <data>/backups). */
  backup?: { repository?: string };
};

export const HOST_CONFIG_DEFAULTS: HostConfig = { storage: { roots: [], devices: [] }, overcommit: { cpu: 4, memory: 1 } };

export function hostConfigFile(paths: Paths): string {
  return path.join(paths.config, 'host.json');
}

/** Checked by hand, not with zod: list/status/cmdline read it and must stay light (see the definition cache). */
function check(raw: unknown, file: string): HostConfig {
  const bad = (what: string) => badInput('HOST_CONFIG_INVALID', `${file}: ${what}`, 'fix the file, or remove it to use the defaults');
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be a JSON object');
  const r = raw as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const k of Object.keys(r)) if (k !== 'storage' && k !== 'overcommit' && k !== 'backup') throw bad(`unknown key "${k}"`);
  const list = (v: unknown, at: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x.startsWith('/'))) throw bad(`${at} must be a list of absolute paths`);
    return v as string[];
  };
  const num = (v: unknown, at: string, min: number, max: number, def: number): number => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !(v >= min && v <= max)) throw bad(`${at} must be a number from ${min} to ${max}`);
    return v;
  };
  return {
    storage: { roots: list(r.storage?.roots, 'storage.roots'), devices: list(r.storage?.devices, 'storage.devices') },
    overcommit: { cpu: num(r.overcommit?.cpu, 'overcommit.cpu', 1, 64, 4), memory: num(r.overcommit?.memory, 'overcommit.memory', 0.1, 4, 1) },
    ...(r.backup?.repository !== undefined ? { backup: { repository: list([r.backup.repository], 'backup.repository')[0] } } : {}),
  };
}

export function readHostConfig(paths: Paths): HostConfig {
  const file = hostConfigFile(paths);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(HOST_CONFIG_DEFAULTS);
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw badInput('HOST_CONFIG_INVALID', `${file}: ${(e as Error).message}`, 'fix the JSON, or remove the file to use the defaults');
  }
  return check(raw, file);
}

export function writeHostConfig(paths: Paths, cfg: HostConfig): void {
  const file = hostConfigFile(paths);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`);
  fs.renameSync(tmp, file);
}
