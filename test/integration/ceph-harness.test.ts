/**
 * The Ceph test harness itself (test/helpers/ceph.ts): a real mon + mgr + memstore OSD in a
 * namespace of its own; an RBD image is written and read back through librbd (`rbd import/export`);
 * stop() leaves no daemon, namespace or file behind. Prints the measured start time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';

const can = canRunCeph();
let c: Ceph | undefined;
beforeAll(async () => {
  if (can.ok) c = await startCeph();
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

describe.skipIf(!can.ok)(`Ceph harness${can.ok ? '' : ` (skipped: ${can.why})`}`, () => {
  it('starts a healthy cluster in its own namespace and measures it', async () => {
    const st = JSON.parse(await c!.ceph('status', '--format', 'json')) as { fsid: string; osdmap: { num_up_osds: number }; mgrmap: { available: boolean } };
    expect(st.fsid).toBe(c!.fsid);
    expect(st.osdmap.num_up_osds).toBe(1);
    expect(st.mgrmap.available).toBe(true);
    console.log(`ceph harness start: ${JSON.stringify(c!.timings)} ms`);
    expect(c!.timings.total).toBeGreaterThan(0);
    // Nothing under /etc/ceph or /var/lib/ceph: everything is in the harness's own dir.
    expect(fs.readFileSync(c!.conf, 'utf8')).not.toMatch(/\/etc\/ceph|\/var\/lib\/ceph/);
  });

  it('stores an RBD image: what is imported is exported back byte for byte', async () => {
    const src = path.join(c!.dir, 'in.raw');
    const back = path.join(c!.dir, 'out.raw');
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i * 2654435761 >>> 0, i);
    fs.writeFileSync(src, data);
    await c!.rbd('import', '--image-feature', 'layering,exclusive-lock', src, `${c!.pool}/h1`);
    await c!.rbd('export', `${c!.pool}/h1`, back);
    expect(fs.readFileSync(back).equals(data)).toBe(true);
  });

  it('stop() ends the daemons and removes the namespace and the dir', async () => {
    const { dir, netns } = c!;
    const pids = fs.readdirSync(path.join(dir, 'run')).filter((f) => f.endsWith('.pid')).map((f) => Number(fs.readFileSync(path.join(dir, 'run', f), 'utf8')));
    expect(pids.length).toBe(3);
    await c!.stop();
    c = undefined;
    for (const pid of pids) expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
    expect(fs.existsSync(`/var/run/netns/${netns.name}`)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
