/**
 * SHA-256 of a disk's content as a restore writes it: the backup chain flattened to raw by
 * `qemu-img convert` (into a sparse scratch file next to the backup, removed afterwards), then
 * hashed. The same number `qemu-img convert -O raw FILE x.raw && sha256sum x.raw` gives by hand.
 */
import fs from 'node:fs';
import path from 'node:path';
import { qemuImg } from '../disk/qemu-img.js';
import { fileSha256 } from './repo.js';

export async function contentSha256(image: string, scratchDir: string, o: { format?: string; forceShare?: boolean } = {}): Promise<string> {
  const tmp = path.join(scratchDir, `.sum-${process.pid}-${Date.now()}-${path.basename(image)}.raw`);
  try {
    await qemuImg(['convert', ...(o.forceShare ? ['-U'] : []), ...(o.format ? ['-f', o.format] : []), '-O', 'raw', image, tmp], image);
    return await fileSha256(tmp);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
