/**
 * The memory balloon with a guest that has the driver: kvmctl's Debian 12 image (cloud kernel, its
 * virtio_balloon module loads by itself) on UEFI with the guest agent, under TCG, through the CLI.
 * The test guest cannot do this (no virtio_balloon in its initramfs; test/integration/hotplug.test.ts
 * checks the device and the QMP side there).
 *  - `kvmctl memory set` 768M → 384M: QMP query-balloon's `actual` falls to the target and the
 *    guest's MemAvailable drops by it (MemTotal stays: with deflate-on-oom the guest keeps counting
 *    the ballooned pages); set back to 768M, `actual` rises again;
 *  - free page reporting: the guest fills 256 MiB of tmpfs and removes it; QEMU's RSS
 *    (/proc/PID/status VmRSS) falls again by most of it, without any balloon target.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canBootGuest } from '../helpers/guest-vm.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const can = canBootGuest() && process.getuid?.() === 0 && ['/usr/bin/mmdebstrap', '/usr/share/OVMF/OVMF_CODE_4M.fd'].every((f) => fs.existsSync(f));
const MiB = 2 ** 20;
let h: Home;
let pid = 0;
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const exec = (...argv: string[]) => h.cli(['guest', 'exec', 'bal', '--timeout', '120', '--', ...argv], { timeoutMs: 150_000 });
const meminfo = async () => {
  const t = (await exec('/bin/cat', '/proc/meminfo')).stdout;
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)![1]) / 1024;
  return { total: kb('MemTotal'), available: kb('MemAvailable') };
};
async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = await f();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    v = await f();
  }
  return v;
}

beforeAll(async () => {
  if (!can) return;
  h = makeHome();
}, 60_000);
afterAll(async () => h?.cleanup(), 120_000);

describe.skipIf(!can)('the balloon in a Debian 12 guest (virtio_balloon)', () => {
  it('boots with a balloon that reports free pages', async () => {
    const img = await h.cli(['image', 'debian-12', '--disk', 'bal.qcow2', '--json'], { timeoutMs: 1_500_000 });
    expect(img.code, img.stderr).toBe(0);
    await h.apply(`name: bal
firmware: uefi
agent: true
memory: { size: 768M, balloon: { freePageReporting: true, deflateOnOom: true } }
cpu: 2
disks: [{ file: bal.qcow2 }]
stopTimeout: 60
`);
    const s = await h.cli(['start', 'bal', '--json'], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    pid = json(s.stdout).pid;
    const p = await h.cli(['guest', 'ping', 'bal', '--wait', '400', '--json'], { timeoutMs: 420_000 });
    expect(p.code, p.stderr).toBe(0);
    console.log(`Debian agent up ${json(p.stdout).waitedMs} ms after start`);
    const mods = await exec('/bin/cat', '/proc/modules');
    expect(mods.stdout).toMatch(/^virtio_balloon /m);
  }, 500_000);

  it('memory set shrinks and grows the guest', async () => {
    const full = await meminfo();
    let t0 = Date.now();
    expect((await h.cli(['memory', 'set', 'bal', '384M'])).code).toBe(0);
    const down = await until(async () => json((await h.cli(['memory', 'show', 'bal', '--json'])).stdout).actual as number, (a) => a <= 384 * MiB, 120_000);
    const small = await meminfo();
    console.log(`balloon 768M → 384M: actual ${down / MiB} MiB after ${Date.now() - t0} ms; guest MemAvailable ${Math.round(full.available)} → ${Math.round(small.available)} MiB, MemTotal ${Math.round(full.total)} → ${Math.round(small.total)} MiB`);
    expect(down).toBe(384 * MiB);
    // The balloon holds ~384 MiB of the guest's pages. With deflate-on-oom Linux does not take them
    // off MemTotal (virtio_balloon skips adjust_managed_page_count then): they show as used.
    expect(full.available - small.available).toBeGreaterThan(300);
    expect(Math.round(small.total)).toBe(Math.round(full.total));
    t0 = Date.now();
    expect((await h.cli(['memory', 'set', 'bal', '768M'])).code).toBe(0);
    const up = await until(async () => json((await h.cli(['memory', 'show', 'bal', '--json'])).stdout).actual as number, (a) => a >= 768 * MiB, 120_000);
    console.log(`balloon back to 768M after ${Date.now() - t0} ms`);
    expect(up).toBe(768 * MiB);
  }, 300_000);

  it('free page reporting: memory the guest frees leaves QEMU', async () => {
    const before = rssMiB();
    const w = await exec('/bin/dd', 'if=/dev/zero', 'of=/dev/shm/fill', 'bs=1M', 'count=256');
    expect(w.code, w.stderr).toBe(0);
    const full = rssMiB();
    expect((await exec('/bin/rm', '/dev/shm/fill')).code).toBe(0);
    const t0 = Date.now();
    const after = await until(async () => rssMiB(), (r) => r < full - 128, 60_000);
    console.log(`QEMU RSS: ${Math.round(before)} MiB → ${Math.round(full)} MiB filled → ${Math.round(after)} MiB ${Date.now() - t0} ms after the guest freed 256 MiB`);
    expect(full - before).toBeGreaterThan(128);
    expect(full - after).toBeGreaterThan(128);
    expect((await h.cli(['stop', 'bal'], { timeoutMs: 120_000 })).code).toBe(0);
  }, 200_000);
});
