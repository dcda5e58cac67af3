/** #14 item 7: progress of long disk work — `progress: NN%` lines when stderr is not a terminal, a bar on one; never `warning:`. */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressRenderer } from '../../src/disk/progress.js';
import { run } from '../../src/host/exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
beforeAll(() => {
  h = makeHome();
});
afterAll(async () => {
  await h?.cleanup();
});

describe('disk convert progress', () => {
  it('non-TTY: a real qemu-img convert through the CLI prints progress lines, no warning lines', async () => {
    const src = path.join(h.dir, 'src.raw');
    await run(['qemu-img', 'create', '-f', 'raw', src, '48M']);
    // Data spread over the image, so qemu-img reports progress in steps.
    const fd = fs.openSync(src, 'r+');
    for (let mib = 0; mib < 48; mib += 3) fs.writeSync(fd, Buffer.alloc(256 * 1024, mib + 1), 0, 256 * 1024, mib * 1024 * 1024);
    fs.closeSync(fd);
    const r = await h.cli(['disk', 'convert', src, path.join(h.dir, 'dst.qcow2')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(l).toMatch(/^progress: \d{1,3}% converting src\.raw$/);
    expect(lines.at(-1)).toBe('progress: 100% converting src.raw');
    expect(r.stderr).not.toMatch(/warning:/);
    const { stdout } = await run(['qemu-img', 'compare', '-f', 'raw', '-F', 'qcow2', src, path.join(h.dir, 'dst.qcow2')]);
    expect(stdout).toMatch(/identical/i);
  }, 120_000);

  it('TTY: a redrawn bar (carriage returns), finished with a newline, no progress: or warning: lines', () => {
    let out = '';
    const stream = Object.assign(new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }), { isTTY: true }) as unknown as NodeJS.WriteStream;
    const bar = progressRenderer('converting x', { stream });
    for (const p of [0, 12.5, 50, 100]) bar.update(p);
    bar.done();
    expect(out.split('\r').filter(Boolean)).toHaveLength(4);
    expect(out).toContain('\rconverting x [###############...............]  50.0%');
    expect(out.endsWith(' 100.0%\n')).toBe(true);
    expect(out).not.toMatch(/progress:|warning:/);
  });
});
