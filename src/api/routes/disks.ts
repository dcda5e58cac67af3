/** Disk routes: images under the images dir only (list, info, create) — through src/disk/images.ts. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { badInput } from '../../errors.js';
import type { Paths } from '../../host/paths.js';
import { parseSize } from '../../spec/units.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../server.js';

/** A path given to the API → an absolute path inside the images dir (symlinks resolved), or 400. */
export function imagePath(paths: Paths, p: string): string {
  const root = path.resolve(paths.images);
  const abs = path.resolve(root, p);
  const inside = (x: string, r: string) => {
    const rel = path.relative(r, x);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  let real = abs;
  try {
    real = fs.realpathSync(abs);
  } catch {
    try {
      real = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      /* parent missing too: checked lexically */
    }
  }
  let realRoot = root;
  try {
    realRoot = fs.realpathSync(root);
  } catch {
    /* no images dir yet */
  }
  if (!inside(abs, root) || !inside(real, realRoot)) {
    throw badInput('DISK_OUTSIDE_IMAGES', `"${p}" is outside the images dir ${root}`, 'the API works on images under the images dir only; use the CLI (kvmctl disk) for other paths');
  }
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
