/**
 * Read the host's QEMU firmware descriptors (the interop format QEMU, libvirt and Debian's ovmf
 * package share: /usr/share/qemu/firmware, overridden by /etc/qemu/firmware of the same name),
 * keeping x86_64 flash images whose files exist. Sorted by file name, as the spec says (lower
 * first). Part of the probed host facts (src/host/probe.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FirmwareImage } from './facts.js';

export const FIRMWARE_DIRS = ['/usr/share/qemu/firmware', '/etc/qemu/firmware'];

type Descriptor = {
  description?: string;
  'interface-types'?: string[];
  mapping?: { device?: string; executable?: { filename?: string; format?: string }; 'nvram-template'?: { filename?: string } };
  targets?: { architecture?: string; machines?: string[] }[];
  features?: string[];
};

/** One descriptor's JSON → a FirmwareImage, or undefined when it is not an x86_64 UEFI flash image. Pure. */
export function parseDescriptor(file: string, text: string): FirmwareImage | undefined {
  let d: Descriptor;
  try {
    d = JSON.parse(text) as Descriptor;
  } catch {
    return undefined;
  }
  const m = d.mapping;
  if (!d['interface-types']?.includes('uefi') || m?.device !== 'flash' || !m.executable?.filename) return undefined;
  if ((m.executable.format ?? 'raw') !== 'raw') return undefined;
  const target = d.targets?.find((t) => t.architecture === 'x86_64');
  if (!target) return undefined;
  return {
    descriptor: file,
    description: d.description ?? path.basename(file),
    code: m.executable.filename,
    varsTemplate: m['nvram-template']?.filename,
    features: d.features ?? [],
    machines: target.machines ?? [],
  };
}

export function probeFirmware(dirs: string[] = FIRMWARE_DIRS): FirmwareImage[] {
  const byName = new Map<string, string>(); // later dirs (/etc) override earlier ones of the same name
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.json')) byName.set(n, path.join(dir, n));
  }
  const out: FirmwareImage[] = [];
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name)!;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const img = parseDescriptor(file, text);
    if (img && fs.existsSync(img.code) && (!img.varsTemplate || fs.existsSync(img.varsTemplate))) out.push(img);
  }
  return out;
}

/** A cache-key part that changes when firmware is installed or removed. */
export function firmwareKey(dirs: string[] = FIRMWARE_DIRS): string {
  return dirs
    .map((d) => {
      try {
        const st = fs.statSync(d);
        return `${st.mtimeMs}:${fs.readdirSync(d).length}`;
      } catch {
        return '-';
      }
    })
    .join(',');
}
