/**
 * Data safety for images: "is a QEMU using this image?", writing new images under a temporary
 * name that is moved into place only when complete (never a half-written file under the final
 * name, even on SIGINT/SIGTERM or a full disk), and a free-space check before long writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { probeWriteLock } from './qemu-img.js';

/** Maps an absolute image path to the name of the running VM that uses it (the VM layer's hook). */
export type InUseResolver = (absPath: string) => string | undefined | Promise<string | undefined>;

let globalResolver: InUseResolver | undefined;

/** The VM layer registers how to name the VM that uses a path; used by every disk operation. */
export function setImageInUseResolver(fn: InUseResolver | undefined): void {
  globalResolver = fn;
}

/** Linux dev_t (as in stat.dev) → "maj:min" in hex, the way /proc/locks prints it. */
function devKey(dev: number): string {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/**
 * QEMU locks bytes 100+n ("I use permission n") and 200+n ("others may not have permission n")
 * of every image it opens, with OFD locks; permission 1 is "write". Reads /proc/locks for this
 * file: `open` when some QEMU has it open (even read-only, e.g. as a backing file), `writer` when
 * one holds the write permission.
 */
export function qemuLocksOn(file: string, procLocks?: string): { open: boolean; writer: boolean } {
  const none = { open: false, writer: false };
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = procLocks ?? fs.readFileSync('/proc/locks', 'utf8');
  } catch {
    return none;
  }
  const want = `${devKey(st.dev)}:${st.ino}`;
  const r = { ...none };
  for (const line of text.split('\n')) {
    // "1: OFDLCK ADVISORY  READ -1 fe:00:2170997 100 101"
    const m = /\bOFDLCK\s+\S+\s+\S+\s+\S+\s+([0-9a-f]+:[0-9a-f]+:\d+)\s+(\d+)\s+(\d+|EOF)/i.exec(line);
    if (!m || m[1] !== want) continue;
    const start = Number(m[2]);
    const end = m[3] === 'EOF' ? Infinity : Number(m[3]);
    if (end < 100 || start >= 300) continue;
    r.open = true;
    if (start <= 101 && end >= 101) r.writer = true;
  }
  return r;
}

export type InUse = { inUse: false } | { inUse: true; vm?: string; how: string };

/**
 * Is the image in use? Asks the VM layer's resolver (names the VM), then the kernel's lock table
 * (any QEMU that has it open), then QEMU's own lock (a read-write open that fails when a QEMU
 * holds the image, also across NFS). A missing file is not in use.
 */
export async function imageInUse(file: string, opts: { inUseBy?: InUseResolver } = {}): Promise<InUse> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) return { inUse: false };
  for (const r of [opts.inUseBy, globalResolver]) {
    const vm = r ? await r(abs) : undefined;
    if (vm) return { inUse: true, vm, how: `used by VM "${vm}"` };
  }
  if (qemuLocksOn(abs).open) return { inUse: true, how: 'a QEMU process has it open (its image lock is held)' };
  const probe = await probeWriteLock(abs);
  if (probe.state === 'locked') return { inUse: true, how: `QEMU's image lock is held (${probe.stderr.split('\n')[0]})` };
  return { inUse: false };
}

/** Throw DISK_IN_USE naming the VM when known. `doing` says what was refused ("resize"). */
export async function assertNotInUse(file: string, opts: { inUseBy?: InUseResolver; doing?: string } = {}): Promise<void> {
  const u = await imageInUse(file, opts);
  if (!u.inUse) return;
  const doing = opts.doing ? `cannot ${opts.doing} ` : '';
  throw new KvmError('DISK_IN_USE', `${doing}${file}: it is in use (${u.how})`, {
    hint: u.vm ? `stop it first: kvmctl stop ${u.vm}` : 'stop the VM (QEMU process) that uses it first; `kvmctl disk info` still works while it runs',
    details: { path: path.resolve(file), ...(u.vm ? { vm: u.vm } : {}) },
  });
}

/**
 * Refuse when a running QEMU may be WRITING the image (reading from it is fine: a base image used
 * read-only as the backing file of running clones can still be copied or given another overlay).
 */
export async function assertNotWritten(file: string, opts: { inUseBy?: InUseResolver; doing?: string } = {}): Promise<void> {
  const abs = path.resolve(file);
  let vm: string | undefined;
  for (const r of [opts.inUseBy, globalResolver]) vm ??= r ? await r(abs) : undefined;
  if (!vm && !qemuLocksOn(abs).writer) return;
  throw new KvmError('DISK_IN_USE', `${opts.doing ? `cannot ${opts.doing} ` : ''}${file}: a running ${vm ? `VM "${vm}"` : 'QEMU process'} writes to it, so a copy would not be consistent`, {
    hint: vm ? `stop it first: kvmctl stop ${vm}` : 'stop the VM that uses it first',
    details: { path: abs, ...(vm ? { vm } : {}) },
  });
}

/** `.NAME.kvmctl-tmp-PID` next to the final file (same filesystem, so the rename is atomic). */
export function tempPathFor(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.kvmctl-tmp-${process.pid}`);
}

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export function assertFreeSpace(dir: string, needed: number, what: string): void {
  const free = freeBytes(dir);
  if (needed > free) {
    throw new KvmError('DISK_FULL', `${what} needs ${fmtBytes(needed)} but ${dir} has only ${fmtBytes(free)} free`, {
      hint: 'free space, pick another directory, or use --prealloc off (sparse)',
      details: { needed, free, dir },
    });
  }
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}

/**
 * Write a new file under a temporary name and move it into place only when `write` succeeded.
 * - `overwrite: false`: the final name is taken with link(2), which fails if a file appeared there
 *   meanwhile, so an existing file is never replaced even in a race.
 * - SIGINT/SIGTERM while writing abort `write` (its signal), the temp file is removed and
 *   INTERRUPTED is thrown; an AbortSignal passed in does the same.
 * - Any failure (DISK_FULL, tool errors) removes the temp file.
 */
export async function writeViaTemp<T>(
  finalPath: string,
  opts: { overwrite: boolean; signal?: AbortSignal; trapSignals?: boolean },
  write: (tmp: string, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const tmp = tempPathFor(finalPath);
  const ac = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    caught ??= sig;
    ac.abort();
  };
  const onAbort = () => ac.abort();
  const trap = opts.trapSignals ?? true;
  if (trap) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) ac.abort();
  const cleanup = () => fs.rmSync(tmp, { force: true });
  try {
    fs.rmSync(tmp, { force: true }); // a leftover of an earlier run with the same PID
    let result: T;
    try {
      if (ac.signal.aborted) throw new KvmError('CANCELED', 'canceled before start');
      result = await write(tmp, ac.signal);
      if (ac.signal.aborted) throw new KvmError('CANCELED', 'canceled');
    } catch (e) {
      cleanup();
      // Ctrl-C on a terminal signals the tool too; it may exit before our handler has run.
      if (trap && !ac.signal.aborted) await new Promise((r) => setTimeout(r, 25));
      if (ac.signal.aborted) {
        throw new KvmError('INTERRUPTED', `${caught ? `${caught}` : 'canceled'}: stopped writing ${finalPath}; nothing was left under that name`, {
          details: { path: finalPath, ...(caught ? { signal: caught } : {}) },
          cause: e,
        });
      }
      throw e;
    }
    placeFile(tmp, finalPath, opts.overwrite);
    return result;
  } finally {
    if (trap) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function placeFile(tmp: string, finalPath: string, overwrite: boolean): void {
  try {
    if (overwrite) {
      fs.renameSync(tmp, finalPath);
      return;
    }
    try {
      fs.linkSync(tmp, finalPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw existsError(finalPath);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw e;
      // No hard links on this filesystem: check, then rename (a tiny race window remains).
      if (fs.existsSync(finalPath)) throw existsError(finalPath);
      fs.renameSync(tmp, finalPath);
      return;
    }
    fs.rmSync(tmp, { force: true });
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export function existsError(file: string): KvmError {
  return new KvmError('DISK_EXISTS', `${file} already exists; kvmctl never overwrites an image without --force`, {
    exit: 2,
    hint: 'pick another path, or pass --force to replace it (refused anyway while a VM uses it)',
    details: { path: file },
  });
}

/** Whether two paths are one file (same device and inode; by path when either is missing). */
export function sameFile(a: string, b: string): boolean {
  try {
    const x = fs.statSync(a);
    const y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}
