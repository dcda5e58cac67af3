/**
 * Cancelling a running backup from the task list (POST /api/tasks/ID/cancel → QMP
 * block-job-cancel through src/backup/jobs.ts), against the real server and a real running test
 * guest with a data disk: the task turns cancellable once the block jobs run (an event says so),
 * the cancel stops QEMU's job, the task ends `cancelled` with BACKUP_CANCELLED, no backup is
 * listed and no partial directory is left, QEMU has no job or target node left over, and the next
 * backup works. (Migration cancel needs a cluster: test/integration/web-ui-cluster.test.ts.)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import type { KvmEvent } from '../../src/api/contract.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths, vmRuntimeFiles, type Paths } from '../../src/host/paths.js';
import { qmpOnce } from '../../src/vm/qmp-once.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const VM = 'bkc';
let home: Home;
let paths: Paths;
let s: KvmServer;

describe.skipIf(!canBootGuest())('cancel a running backup from the task list', () => {
  beforeAll(async () => {
    home = makeHome();
    paths = resolvePaths(home.env);
    // 16 MiB of data to copy (a sparse disk is copied in milliseconds).
    const raw = path.join(home.images, 'bkc-data.raw');
    fs.writeFileSync(raw, crypto.randomBytes(16 * 1024 * 1024));
    await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, path.join(home.images, 'bkc-data.qcow2')]);
    fs.rmSync(raw);
    await home.apply(`name: ${VM}\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: bkc-data.qcow2 }]\nstopTimeout: 5\n`);
    const st = await home.cli(['start', VM]);
    expect(st.code, st.stderr).toBe(0);
    s = await buildServer({ paths, watch: false });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await home?.cleanup();
  });

  it('stops the block jobs, ends the task cancelled, keeps nothing; the next backup works', async () => {
    const events: KvmEvent[] = [];
    const unsub = s.ctx.bus.subscribe((e) => events.push(e));
    // The second QMP socket (the one serve's watcher uses; this server does not watch): the backup holds qmp.sock.
    const qmp = (cmd: string, args?: Record<string, unknown>) => qmpOnce(path.join(vmRuntimeFiles(paths, VM).dir, 'qmp-events.sock'), cmd, args, 10_000);
    // 1 MiB/s (bwlimit: QEMU's job speed): 16 s of copying, long enough to cancel half-way.
    expect((await s.app.inject({ method: 'POST', url: `/api/vms/${VM}/backups`, payload: { bwlimit: 'lots' } })).statusCode).toBe(400);
    const backup = s.app.inject({ method: 'POST', url: `/api/vms/${VM}/backups`, payload: { mode: 'full', bwlimit: '1M' } });
    let id = '';
    await expect
      .poll(
        async () => {
          const mine = ((await s.app.inject({ url: '/api/tasks?state=running' })).json() as { id: string; kind: string; cancellable: boolean }[]).find((x) => x.kind === 'createBackup');
          return (id = mine?.cancellable ? mine.id : '');
        },
        { timeout: 60_000, interval: 100 },
      )
      .not.toBe('');
    const jobs = (await qmp('query-jobs')) as { id: string; status: string }[];
    expect(jobs.map((j) => j.id)).toEqual(['kvbk-data']);
    // The UI learns it from the event stream: a progress event with cancellable: true.
    expect(events.some((e) => e.kind === 'task' && e.task.id === id && e.task.cancellable)).toBe(true);
    const c = await s.app.inject({ method: 'POST', url: `/api/tasks/${id}/cancel` });
    expect(c.statusCode, c.body).toBe(200);
    const r = await backup;
    expect(r.statusCode).toBe(422);
    expect(r.json()).toMatchObject({ code: 'BACKUP_CANCELLED' });
    const task = (await s.app.inject({ url: `/api/tasks/${id}` })).json() as { state: string; log: { line: string }[] };
    expect(task.state).toBe('cancelled');
    expect(task.log.map((l) => l.line).join('\n')).toMatch(/cancel requested[\s\S]*BACKUP_CANCELLED/);
    unsub();
    // Nothing kept: no backup listed, no partial dir, no job or target node left in QEMU.
    expect((await s.app.inject({ url: `/api/vms/${VM}/backups` })).json()).toEqual([]);
    const repo = path.join(paths.data, 'backups', VM);
    if (fs.existsSync(repo)) expect(fs.readdirSync(repo).filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(await qmp('query-jobs')).toEqual([]);
    const nodes = (await qmp('query-named-block-nodes', { flat: true })) as { 'node-name': string }[];
    expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('kvbk-'))).toEqual([]);
    // The next backup runs through.
    const again = await s.app.inject({ method: 'POST', url: `/api/vms/${VM}/backups`, payload: {} });
    expect(again.statusCode, again.body).toBe(200);
    expect(((await s.app.inject({ url: `/api/vms/${VM}/backups` })).json() as unknown[]).length).toBe(1);
  }, 180_000);
});
