/**
 * `kvmctl start A B C` / `kvmctl stop A B C` with real QEMU (TCG) and the real test guest, three
 * fast-profile guests from one kvmctl process: all ready and answering on their serial consoles,
 * all stopped, no QEMU left; an undefined name refuses the lot (exit 2, nothing started); a VM
 * that fails its preflight (disk file missing) fails alone (exit 1), the others stay running.
 * Every QEMU seen is remembered by PID and SIGKILLed in afterAll if still there.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { isAlive } from '../../src/vm/proc.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const fast = (name: string, extra = '') => `name: ${name}
profile: fast
memory: 256M
kernel: { builtin: test-guest }
stopTimeout: 30
${extra}`;

let h: Home;
const seen = new Set<number>(); // every QEMU pid this file saw, killed in afterAll if alive
beforeAll(async () => {
  h = makeHome();
  for (const n of ['ma', 'mb', 'mc']) await h.apply(fast(n));
  await h.apply(fast('mbroken', 'disks: [{ file: does-not-exist.img, format: raw }]\n'));
  await ensureTestGuest(resolvePaths(h.env)); // outside the timed parts
}, 320_000);
afterAll(async () => {
  for (const p of h?.pids() ?? []) seen.add(p);
  for (const p of seen) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await h?.cleanup();
});

const json = <T = any>(s: string): T => JSON.parse(s) as T;
const state = async (name: string) => json((await h.cli(['status', name, '--json'])).stdout).state as string;
const alive = () => h.pids().filter((p) => isAlive(p));

describe('start / stop of several VMs in one process', () => {
  it('starts three guests at once, all ready and answering; stops all three; no QEMU left', async () => {
    const s = await h.cli(['start', 'ma', 'mb', 'mc', '--wait-for-guest', '--json', '--timeout', '200'], { timeoutMs: 240_000 });
    const started = json<any[]>(s.stdout);
    for (const r of started) if (r.pid) seen.add(r.pid);
    expect(s.code, s.stderr).toBe(0);
    expect(started.map((r) => [r.name, r.result])).toEqual([['ma', 'started'], ['mb', 'started'], ['mc', 'started']]);
    expect(new Set(started.map((r) => r.pid)).size).toBe(3);
    for (const r of started) {
      expect(r.guestReadyMs).toBeGreaterThan(r.qmpReadyMs);
      expect(fs.readFileSync(`/proc/${r.pid}/cmdline`, 'utf8')).toContain('qemu-system');
    }
    // The warnings all three share are printed once, not three times.
    expect(s.stderr.match(/KVM is not usable here/g)?.length ?? 0).toBeLessThanOrEqual(1);

    const paths = resolvePaths(h.env);
    for (const r of started) {
      expect(await state(r.name)).toBe('running');
      expect(await serialExec(paths, r.name, 'cat /proc/sys/kernel/hostname; echo ok')).toMatchObject({ status: 0, output: expect.stringContaining('ok') });
    }

    const t = await h.cli(['stop', 'ma', 'mb', 'mc'], { timeoutMs: 120_000 });
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.trim().split('\n').sort()).toEqual([expect.stringMatching(/^stopped ma by /), expect.stringMatching(/^stopped mb by /), expect.stringMatching(/^stopped mc by /)]);
    for (const n of ['ma', 'mb', 'mc']) expect(await state(n)).toBe('stopped');
    expect(started.filter((r) => isAlive(r.pid))).toEqual([]);
    expect(alive()).toEqual([]);
  }, 300_000);

  it('an undefined name refuses the lot: exit 2, nothing started', async () => {
    const r = await h.cli(['start', 'ma', 'nosuch', 'mc', '--wait-for-guest']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/VM_NOT_FOUND: no VM named "nosuch"/);
    expect(r.stdout).toBe('');
    for (const n of ['ma', 'mc']) expect(await state(n)).toBe('stopped');
    expect(alive()).toEqual([]);
    // Several problems at once: each listed, still nothing started.
    const r2 = await h.cli(['start', 'ma', 'nosuch', 'ma', 'other']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/VMS_INVALID: 3 of the 4 VMs/);
    expect(r2.stderr).toMatch(/nosuch: VM_NOT_FOUND/);
    expect(r2.stderr).toMatch(/ma: named more than once/);
    expect(alive()).toEqual([]);
  }, 60_000);

  it('one VM failing its preflight fails alone: the others start and stay running, exit 1, the failed one named', async () => {
    const s = await h.cli(['start', 'ma', 'mbroken', 'mc'], { timeoutMs: 120_000 });
    for (const p of h.pids()) seen.add(p);
    expect(s.code, s.stderr).toBe(1);
    expect(s.stderr).toMatch(/^error: mbroken: PREFLIGHT_FAILED: .*\n.*disks\[0\]\.file: .*does-not-exist\.img does not exist/m);
    expect(s.stderr).toMatch(/1 of 3 VMs failed to start: mbroken; ma, mc started and stay running \(kvmctl stop ma mc to undo\)/);
    expect(s.stdout).toMatch(/^started ma \(pid \d+/m);
    expect(s.stdout).toMatch(/^started mc \(pid \d+/m);
    expect(await state('ma')).toBe('running');
    expect(await state('mc')).toBe('running');
    expect(await state('mbroken')).toBe('stopped');
    expect(alive()).toHaveLength(2);

    // stop --json: an array; stopping a VM that is not running fails alone too.
    const t = await h.cli(['stop', 'ma', 'mbroken', 'mc', '--force', '--json'], { timeoutMs: 60_000 });
    expect(t.code).toBe(1);
    const stopped = json<any[]>(t.stdout);
    expect(stopped.map((r) => [r.name, r.result])).toEqual([['ma', 'stopped'], ['mbroken', 'failed'], ['mc', 'stopped']]);
    expect(stopped[1].error.code).toBe('VM_NOT_RUNNING');
    expect(t.stderr).toMatch(/error: mbroken: VM_NOT_RUNNING/);
    expect(alive()).toEqual([]);
  }, 180_000);
});
