/** Disk routes: images under the images dir only (list, info, create) — through src/disk/images.ts. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { badInput } from '../../errors.js';
import type { Paths } from '../../host/paths.js';
import { storageRoots } from '../../host/storage-roots.js';
import { parseSize } from '../../definition/units.js';
import { pathProblem } from '../../vm/path-check.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

/** A path given to the API → an absolute path inside a storage root (symlinks resolved; relative: the images dir), or 400. */
export function imagePath(paths: Paths, p: string): string {
  const abs = path.resolve(paths.images, p);
  const why = pathProblem(p, 'image', storageRoots(paths), paths, { base: paths.images });
  if (why) throw badInput('DISK_OUTSIDE_ROOTS', why, 'the API works on images inside the storage roots only (kvmctl storage list on the host)');
  if (abs === path.resolve(paths.images)) throw badInput('DISK_OUTSIDE_ROOTS', `"${p}" is the images dir itself`, 'name an image file in it');
  return abs;
}

export function diskRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const images = () => import('../../disk/images.js');

  bind(app, R.listDisks, async () => {
    const root = path.resolve(paths.images);
    const out: { path: string; file: string; sizeBytes: number; modified: string }[] = [];
    const walk = (dir: string, depth: number) => {
      let ents: fs.Dirent[];
      try {
        ents = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        const full = path.join(dir, e.name);
        if (e.isDirectory() && depth < 2) walk(full, depth + 1);
        else if (e.isFile() && !e.name.startsWith('.')) {
          const st = fs.statSync(full);
          out.push({ path: path.relative(root, full), file: full, sizeBytes: st.blocks * 512, modified: st.mtime.toISOString() });
        }
      }
    };
    walk(root, 0);
    return out.sort((a, b) => a.path.localeCompare(b.path));
  });

  bind(app, R.diskInfo, async ({ query }) => {
    const file = imagePath(paths, query.path);
    const r = await (await images()).inspectImage(file);
    return { path: file, info: r.info as Record<string, unknown>, inUse: r.inUse };
  });

  bind(app, R.createDisk, async ({ body }) => {
    const file = imagePath(paths, body.path);
    const size = parseSize(body.size);
    if (size === undefined) throw badInput('DISK_BAD_SIZE', `${JSON.stringify(body.size)} is not a size`, 'e.g. 20G', [{ path: 'size', message: 'must be a size such as 20G' }]);
    const backing = body.backing !== undefined ? imagePath(paths, body.backing) : undefined;
    const r = await (await images()).createImage({ path: file, size, format: body.format, prealloc: body.prealloc, backing, mkdirs: true });
    return { path: r.path, info: r.info as Record<string, unknown> };
  });
}
