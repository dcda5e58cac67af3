/**
 * KSM (kernel samepage merging) through /sys/kernel/mm/ksm: read the state and counters, start,
 * stop (or stop and unmerge), and tune the scanner. The sysfs root is a parameter so unit tests
 * can use a temp dir. Memory saved = pages_sharing × page size (the kernel's own definition:
 * pages_sharing counts the extra sites that share an already-shared page).
 * The per-VM opt-out is `machine.memMerge: false` in a definition (QEMU -machine mem-merge=off).
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';

export const KSM_ROOT = '/sys/kernel/mm/ksm';

export type KsmStatus = {
  root: string;
  /** 0 = stopped, 1 = running, 2 = stopped and all merged pages unmerged. */
  run: number;
  pagesToScan: number;
  sleepMillisecs: number;
  /** Absent on kernels without NUMA. */
  mergeAcrossNodes?: number;
  pagesShared: number;
  pagesSharing: number;
  pagesUnshared: number;
  pagesVolatile?: number;
  fullScans: number;
  pageSize: number;
  /** pages_sharing × pageSize. */
  savedBytes: number;
};

export type KsmSettings = { run?: 0 | 1 | 2; pagesToScan?: number; sleepMillisecs?: number; mergeAcrossNodes?: 0 | 1 };

const FILE = {
  run: 'run',
  pagesToScan: 'pages_to_scan',
  sleepMillisecs: 'sleep_millisecs',
  mergeAcrossNodes: 'merge_across_nodes',
} as const;

/** The kernel's page size (KernelPageSize of this process's first mapping), 4096 when unknown. */
export function systemPageSize(): number {
  try {
    const fd = fs.openSync('/proc/self/smaps', 'r');
    try {
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      const kb = /KernelPageSize:\s+(\d+) kB/.exec(buf.subarray(0, n).toString('utf8'))?.[1];
      if (kb) return Number(kb) * 1024;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* fall through */
  }
  return 4096;
}

function unavailable(root: string): KvmError {
  return new KvmError('KSM_UNAVAILABLE', `${root} does not exist: this kernel has no KSM`, {
    hint: 'enable CONFIG_KSM (Memory Management options → Enable KSM for page merging) and rebuild the kernel',
  });
}

function readNum(root: string, file: string, required: boolean): number | undefined {
  let t: string;
  try {
    t = fs.readFileSync(path.join(root, file), 'utf8');
  } catch (e) {
    if (!required) return undefined;
    if (!fs.existsSync(root)) throw unavailable(root);
    throw new KvmError('KSM_READ_FAILED', `${path.join(root, file)}: ${(e as Error).message}`);
  }
  const n = Number(t.trim());
  if (!Number.isFinite(n)) throw new KvmError('KSM_READ_FAILED', `${path.join(root, file)}: not a number: ${JSON.stringify(t.trim())}`);
  return n;
}

export function readKsm(root = KSM_ROOT, pageSize = systemPageSize()): KsmStatus {
  if (!fs.existsSync(root)) throw unavailable(root);
  const req = (f: string) => readNum(root, f, true)!;
  const opt = (f: string) => readNum(root, f, false);
  const pagesSharing = req('pages_sharing');
  return {
    root,
    run: req('run'),
    pagesToScan: req('pages_to_scan'),
    sleepMillisecs: req('sleep_millisecs'),
    mergeAcrossNodes: opt('merge_across_nodes'),
    pagesShared: req('pages_shared'),
    pagesSharing,
    pagesUnshared: req('pages_unshared'),
    pagesVolatile: opt('pages_volatile'),
    fullScans: req('full_scans'),
    pageSize,
    savedBytes: pagesSharing * pageSize,
  };
}

const U32 = 0xffff_ffff;

/** Check settings before anything is written (bad input → exit 2, nothing changed). */
export function validateKsmSettings(s: KsmSettings): void {
  const int = (v: number | undefined, what: string, min: number, max: number) => {
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < min || v > max) throw badInput('BAD_VALUE', `${what} must be an integer from ${min} to ${max}, got ${String(v)}`);
  };
  int(s.pagesToScan, '--pages-to-scan', 1, U32);
  int(s.sleepMillisecs, '--sleep-ms', 0, U32);
  int(s.mergeAcrossNodes, '--merge-across-nodes', 0, 1);
  int(s.run, 'run', 0, 2);
}

/**
 * Apply settings: tuning first, `run` last (so the scanner starts with the new values).
 * merge_across_nodes can only change while nothing is merged: the kernel answers EBUSY.
 */
export function writeKsm(s: KsmSettings, root = KSM_ROOT, pageSize = systemPageSize()): KsmStatus {
  validateKsmSettings(s);
  if (!fs.existsSync(root)) throw unavailable(root);
  const order: (keyof KsmSettings)[] = ['mergeAcrossNodes', 'pagesToScan', 'sleepMillisecs', 'run'];
  for (const key of order) {
    const v = s[key];
    if (v === undefined) continue;
    const file = path.join(root, FILE[key]);
    if (key === 'mergeAcrossNodes' && !fs.existsSync(file)) {
      throw badInput('KSM_NO_NUMA', `${file} does not exist: this kernel has no NUMA support, --merge-across-nodes does not apply`);
    }
    try {
      fs.writeFileSync(file, `${v}\n`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new KvmError('KSM_WRITE_FAILED', `${file}: cannot write ${v} (${code ?? (e as Error).message})`, {
        hint:
          code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? 'KSM settings need root'
            : code === 'EBUSY'
              ? 'merge_across_nodes can only change while no pages are merged: run kvmctl host ksm off --unmerge first'
              : undefined,
      });
    }
  }
  return readKsm(root, pageSize);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatKsm(s: KsmStatus): string {
  const state = s.run === 1 ? 'running' : s.run === 2 ? 'stopped, merged pages unmerged' : 'stopped';
  return [
    `KSM: ${state} (run=${s.run})`,
    `  pages_to_scan=${s.pagesToScan} sleep_millisecs=${s.sleepMillisecs}${s.mergeAcrossNodes !== undefined ? ` merge_across_nodes=${s.mergeAcrossNodes}` : ''}`,
    `  pages_shared=${s.pagesShared} pages_sharing=${s.pagesSharing} pages_unshared=${s.pagesUnshared}${s.pagesVolatile !== undefined ? ` pages_volatile=${s.pagesVolatile}` : ''} full_scans=${s.fullScans}`,
    `  memory saved: ${formatBytes(s.savedBytes)} (pages_sharing ${s.pagesSharing} × ${s.pageSize} B pages)`,
  ].join('\n');
}
