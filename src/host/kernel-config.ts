/**
 * Kernel `.config` text: parse it, read it from a file (plain or gzip, like /proc/config.gz), and
 * find the running kernel's config (/proc/config.gz, then /boot/config-$(uname -r)).
 * Values are kept as written: y, m, a number, or a quoted string ("rtc0"); an option that is
 * "# CONFIG_X is not set" maps to "n"; an option not mentioned at all is absent from the map.
 */
import fs from 'node:fs';
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { badInput } from '../errors.js';

export type KernelConfig = Map<string, string>;

/** `.config` text → option name (without CONFIG_) → value ("y", "m", "n", "\"rtc0\"", "1000"). */
export function parseKernelConfig(text: string): KernelConfig {
  const cfg: KernelConfig = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const set = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) {
      cfg.set(set[1]!, set[2]!);
      continue;
    }
    const unset = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) cfg.set(unset[1]!, 'n');
  }
  return cfg;
}

/** y / m / n for a tristate or bool option; "n" when absent. Other values are returned as they are. */
export function optionValue(cfg: KernelConfig, name: string): string {
  return cfg.get(name.replace(/^CONFIG_/, '')) ?? 'n';
}

/** Decompress when the bytes are gzip (magic 1f 8b), else read as UTF-8 text. */
export function decodeConfigBytes(buf: Buffer): string {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return gunzipSync(buf).toString('utf8');
  return buf.toString('utf8');
}

/** Read a kernel config file given by the user (plain text or .gz). Bad path → exit 2. */
export function readKernelConfigFile(file: string): string {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw badInput('FILE_NOT_FOUND', `${file}: cannot read kernel config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'give the path of a kernel .config, e.g. /boot/config-$(uname -r) or /proc/config.gz');
  }
  let text: string;
  try {
    text = decodeConfigBytes(buf);
  } catch (e) {
    throw badInput('KERNEL_CONFIG_INVALID', `${file}: not a readable gzip file (${(e as Error).message})`);
  }
  if (parseKernelConfig(text).size === 0) {
    throw badInput('KERNEL_CONFIG_INVALID', `${file}: no CONFIG_ lines found; this is not a kernel .config`, 'give the path of a kernel .config, e.g. /boot/config-$(uname -r)');
  }
  return text;
}

/** The running kernel's config, or undefined when neither /proc/config.gz nor /boot/config-R is readable. */
export function findRunningKernelConfig(release = os.release(), root = '/'): { source: string; text: string } | undefined {
  const candidates = [`${root}proc/config.gz`, `${root}boot/config-${release}`];
  for (const source of candidates) {
    try {
      const text = decodeConfigBytes(fs.readFileSync(source));
      if (parseKernelConfig(text).size > 0) return { source, text };
    } catch {
      /* try the next one */
    }
  }
  return undefined;
}
