/**
 * ISO images and CD-ROM media: the ISO folder's list, an upload streamed from the request body to
 * disk (src/disk/iso-upload.ts: name checked, size limit, free space, nothing kept when it fails;
 * a task with progress that can be cancelled), deleting one, and a running VM's CD-ROM drives
 * (insert / eject through src/vm/storage.ts, as `kvmctl cdrom`).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { badInput, KvmError } from '../../errors.js';
import { readVm } from '../../definition/store.js';
import { taskLog, taskProgress, taskSignal } from '../../tasks/current.js';
import { checkIsoName, DEFAULT_MAX_ISO_BYTES, isoDir, listIsos, receiveIso } from '../../disk/iso-upload.js';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

export function mediaRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const max = ctx.maxUploadBytes ?? DEFAULT_MAX_ISO_BYTES;
  // An upload's body is handed to the route as the request stream, never buffered (bodyLimit does not apply).
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  bind(app, R.listIsos, async () => ({ dir: isoDir(paths), maxUploadBytes: max, isos: listIsos(paths) }));

  bind(app, R.uploadIso, async ({ params, query }, req) => {
    checkIsoName(params.file);
    const body = req.body as Readable | undefined;
    if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function') {
      throw badInput('UPLOAD_NOT_RAW', 'send the ISO itself as the request body with Content-Type: application/octet-stream', 'e.g. curl -T debian.iso -H "Content-Type: application/octet-stream" …/api/isos/debian.iso');
    }
    const len = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const expected = len !== undefined && Number.isFinite(len) ? len : undefined;
    taskLog(`receiving ${params.file}${expected !== undefined ? ` (${expected} bytes)` : ''} into ${isoDir(paths)}`);
    return receiveIso(paths, params.file, body, {
      expectedBytes: expected,
      maxBytes: max,
      replace: query.replace === 'true',
      signal: taskSignal(),
      onProgress: (n) => expected && taskProgress(Math.min(100, Math.round((n / expected) * 100))),
    });
  });

  bind(app, R.deleteIso, async ({ params }) => {
    checkIsoName(params.file);
    const file = path.join(isoDir(paths), params.file);
    if (!fs.existsSync(file)) throw new KvmError('ISO_NOT_FOUND', `no ISO ${params.file} in ${isoDir(paths)}`, { hint: 'GET /api/isos lists them' });
    // In a running VM's CD-ROM drive? (QEMU holds it open; the guest may be reading it.)
    const { cdromStates } = await import('../../vm/storage.js');
    const { listNames } = await import('../../definition/store.js');
    let user: string | undefined;
    for (const n of listNames(paths, 'vm')) {
      const st = await cdromStates(paths, readVm(paths, n)).catch(() => undefined);
      if (st?.running && st.drives.some((d) => d.inserted && path.resolve(d.inserted) === file)) user = n;
    }
    if (user) throw new KvmError('ISO_IN_USE', `${params.file} is in a CD-ROM drive of running VM "${user}"`, { hint: `eject it first (POST /api/vms/${user}/cdrom {op: eject})` });
    fs.rmSync(file);
    return { removed: file };
  });

  bind(app, R.vmCdroms, async ({ params }) => {
    const vm = readVm(paths, params.name);
    const { cdromStates } = await import('../../vm/storage.js');
    return cdromStates(paths, vm);
  });

  bind(app, R.vmCdrom, async ({ params, body }) => {
    const { cdromVm } = await import('../../vm/storage.js');
    const file = body.op === 'insert' ? path.resolve(paths.images, body.file) : undefined;
    const r = await cdromVm(paths, params.name, body.op, { file, id: body.id, force: body.op === 'eject' ? body.force : undefined });
    await ctx.watcher?.reconcile();
    return r;
  });
}
