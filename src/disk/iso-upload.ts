/**
 * ISO images in the images root's `iso/` folder (`<data>/images/iso/NAME.iso`): list them and
 * receive one as a stream (the API's upload, docs/web.md "ISO upload"). The stream goes to a
 * hidden `.NAME.iso.partial` (created exclusively), counted against a size limit and the free
 * space, fsynced, then renamed into place: an upload that fails, is cut off or cancelled leaves
 * nothing. The name is a plain file name ending in .iso; the folder must resolve inside a storage
 * root once symlinks are resolved (a symlinked `iso/` pointing elsewhere is refused, src/host/storage-roots.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import { isSystemPath, realish, storageRoots, within } from '../host/storage-roots.js';

/** Default largest upload: 16 GiB (a DVD image is 4.7–9 GB; Windows ISOs are 5–6 GB). */
export const DEFAULT_MAX_ISO_BYTES = 16 * 1024 ** 3;
/** Free space kept on the file system after an upload. */
const KEEP_FREE = 256 * 1024 ** 2;
export const ISO_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,195}\.iso$/i;

export const isoDir = (paths: Paths): string => path.join(paths.images, 'iso');

/** The folder, made if missing and checked to be inside a storage root. */
function ensureIsoDir(paths: Paths): string {
  const dir = isoDir(paths);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const real = realish(dir).real;
  const roots = storageRoots(paths);
  if (!roots.dirs.some((r) => within(real, r.real)) || isSystemPath(real)) {
    throw badInput('PATH_OUTSIDE_ROOTS', `the ISO folder ${dir} resolves to ${real}, outside the storage roots (${roots.dirs.map((r) => r.path).join(', ')})`, 'make <images>/iso a plain directory inside the images dir');
  }
  return dir;
}

export function checkIsoName(name: string): void {
  if (!ISO_NAME_RE.test(name) || name.includes('..')) {
    throw badInput('BAD_ISO_NAME', `"${name}" is not an ISO file name kvmctl accepts`, 'letters, digits, "_", ".", "+" and "-", starting with a letter or digit, ending in .iso (no folders)', [{ path: 'file', message: 'a plain file name ending in .iso' }]);
  }
}

export type IsoEntry = { name: string; path: string; sizeBytes: number; modified: string };

export function listIsos(paths: Paths): IsoEntry[] {
  const dir = isoDir(paths);
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return ents
    .filter((e) => e.isFile() && ISO_NAME_RE.test(e.name))
    .map((e) => {
      const st = fs.statSync(path.join(dir, e.name));
      return { name: e.name, path: path.join(dir, e.name), sizeBytes: st.size, modified: st.mtime.toISOString() };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export type ReceiveOptions = {
  /** The Content-Length the client announced (refused at once when over the limit or the free space). */
  expectedBytes?: number;
  maxBytes?: number;
  replace?: boolean;
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
};

/** Receive one ISO from a stream into the ISO folder. */
export async function receiveIso(paths: Paths, name: string, body: Readable, o: ReceiveOptions = {}): Promise<IsoEntry> {
  checkIsoName(name);
  const max = o.maxBytes ?? DEFAULT_MAX_ISO_BYTES;
  const tooLarge = (n: number) =>
    new KvmError('UPLOAD_TOO_LARGE', `${name}: ${n} bytes is over the upload limit of ${max} bytes`, { hint: 'copy it into the ISO folder on the host instead, or raise the limit (kvmctl serve --max-upload SIZE)' });
  if (o.expectedBytes !== undefined && o.expectedBytes > max) throw tooLarge(o.expectedBytes);
  const dir = ensureIsoDir(paths);
  const final = path.join(dir, name);
  if (!o.replace && fs.existsSync(final)) throw new KvmError('ISO_EXISTS', `${final} exists`, { hint: 'pick another name, or replace it (?replace=true)' });
  if (o.expectedBytes !== undefined) {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    if (o.expectedBytes + KEEP_FREE > free) throw new KvmError('NO_SPACE', `${name}: ${o.expectedBytes} bytes do not fit in ${dir} (${free} bytes free)`, { hint: 'free space in the images dir first' });
  }
  const partial = path.join(dir, `.${name}.partial`);
  let fd: number;
  try {
    fd = fs.openSync(partial, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KvmError('ISO_BUSY', `${name} is being uploaded already`, { hint: 'wait for that upload to end' });
    throw e;
  }
  let n = 0;
  let lastReport = 0;
  // A cancel ends a stalled upload too: the stream is destroyed, the loop below throws.
  const onAbort = () => body.destroy(new KvmError('UPLOAD_CANCELLED', `${name}: upload cancelled`, { hint: 'nothing was kept' }));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (o.signal?.aborted) throw new KvmError('UPLOAD_CANCELLED', `${name}: upload cancelled`, { hint: 'nothing was kept' });
      n += chunk.length;
      if (n > max) throw tooLarge(n);
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      if (o.onProgress && n - lastReport >= 4 * 1024 * 1024) {
        lastReport = n;
        o.onProgress(n);
      }
    }
    if (o.expectedBytes !== undefined && n !== o.expectedBytes) throw badInput('UPLOAD_INCOMPLETE', `${name}: got ${n} of ${o.expectedBytes} bytes`, 'upload it again');
    if (n === 0) throw badInput('UPLOAD_EMPTY', `${name}: the upload was empty`, 'send the ISO as the request body (Content-Type: application/octet-stream)');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(partial, final);
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(partial, { force: true });
    // A client that went away mid-body: the stream errors with ECONNRESET or "aborted".
    if (!(e instanceof KvmError)) throw badInput('UPLOAD_INCOMPLETE', `${name}: the upload stopped after ${n} bytes (${(e as Error).message})`, 'upload it again; nothing was kept');
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  o.onProgress?.(n);
  const st = fs.statSync(final);
  return { name, path: final, sizeBytes: st.size, modified: st.mtime.toISOString() };
}
