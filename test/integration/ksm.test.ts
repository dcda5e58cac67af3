/**
 * KSM for real against /sys/kernel/mm/ksm: status, on (with tuning), off, off --unmerge, tune,
 * with two paused QEMUs: the one with mem-merge=on has mergeable memory and gets pages merged,
 * the one with mem-merge=off (the per-VM opt-out) has none.
 * Measured here (Linux 6.18, THP=madvise): QEMU's guest RAM sits in transparent huge pages, which
 * KSM did not merge at all (64 MiB of zero pages: 0 merged after 100+ full scans); the pages KSM
 * does merge in a paused QEMU are its small RAM blocks (firmware, option ROMs): ~80 pages.
 * The old KSM settings are restored afterwards (finally + afterAll).
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDetached } from '../../src/host/exec.js';
import { KSM_ROOT, readKsm, writeKsm, type KsmSettings, type KsmStatus } from '../../src/host/ksm.js';
import { findQemu } from '../../src/host/probe.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const writable = (() => {
  try {
    fs.accessSync(`${KSM_ROOT}/run`, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
})();

let old: KsmStatus | undefined;
let h: Home;
const restore = () => {
  if (!old) return;
  // Stopped before: unmerge what was merged meanwhile (run=2), then stop (run=0).
  if (old.run === 0 && sys('run') !== '0') writeKsm({ run: 2 });
  const back: KsmSettings = { pagesToScan: old.pagesToScan, sleepMillisecs: old.sleepMillisecs, run: old.run as 0 | 1 | 2 };
  writeKsm(back);
};
beforeAll(() => {
  if (writable) old = readKsm();
  h = makeHome();
});
afterAll(async () => {
  restore();
  await h?.cleanup();
});

const sys = (f: string) => fs.readFileSync(`${KSM_ROOT}/${f}`, 'utf8').trim();
/** Pages of one process that KSM has merged (Linux ≥ 6.1). */
const merged = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/ksm_merging_pages`, 'utf8').trim());

async function pausedQemu(memMerge: 'on' | 'off') {
  const argv = [findQemu(), '-machine', `q35,mem-merge=${memMerge}`, '-accel', 'tcg', '-m', '64M', '-mem-prealloc', '-S', '-display', 'none', '-nodefaults', '-no-user-config', '-monitor', 'none', '-serial', 'none'];
  return spawnDetached(argv, { stdio: ['ignore', 'ignore', 'ignore'] });
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return cond();
}

// Needs root (sysfs writes) and a KSM kernel; /proc/PID/ksm_merging_pages needs Linux ≥ 6.1.
describe.skipIf(!writable)('KSM on /sys/kernel/mm/ksm', () => {
  it('status (CLI) shows what sysfs holds and memory saved = pages_sharing × 4096', async () => {
    const r = await h.cli(['host', 'ksm', 'status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as KsmStatus;
    expect(s.run).toBe(Number(sys('run')));
    expect(s.pagesToScan).toBe(Number(sys('pages_to_scan')));
    expect(s.sleepMillisecs).toBe(Number(sys('sleep_millisecs')));
    expect(s.savedBytes).toBe(s.pagesSharing * s.pageSize);
    const t = await h.cli(['host', 'ksm', 'status']);
    expect(t.stdout).toMatch(/^KSM: (running|stopped)/);
    expect(t.stdout).toContain('memory saved:');
  });

  it('on merges a mem-merge=on guest and not a mem-merge=off one; off keeps, --unmerge splits', async () => {
    const on = await pausedQemu('on');
    const off = await pausedQemu('off');
    try {
      const r = await h.cli(['host', 'ksm', 'on', '--pages-to-scan', '5000', '--sleep-ms', '10', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect([sys('run'), sys('pages_to_scan'), sys('sleep_millisecs')]).toEqual(['1', '5000', '10']);
      const stat = (pid: number) => fs.readFileSync(`/proc/${pid}/ksm_stat`, 'utf8');
      expect(stat(on.pid)).toContain('ksm_mergeable: yes');
      expect(stat(off.pid)).toContain('ksm_mergeable: no');
      const fullScans = Number(sys('full_scans'));
      expect(await waitFor(() => Number(sys('full_scans')) >= fullScans + 3 && merged(on.pid) > 0, 45_000), `merged ${merged(on.pid)} pages`).toBe(true);
      expect(merged(off.pid)).toBe(0);
      const s = readKsm();
      expect(s.pagesShared + s.pagesSharing).toBeGreaterThanOrEqual(merged(on.pid));
      expect(s.savedBytes).toBe(s.pagesSharing * 4096);
      expect(s.savedBytes).toBeGreaterThan(0);
      const mergedOn = merged(on.pid);
      console.log(`KSM: ${mergedOn} pages of the mem-merge=on QEMU merged, 0 of the mem-merge=off one; host pages_shared=${s.pagesShared} pages_sharing=${s.pagesSharing} saved=${(s.savedBytes / 2 ** 20).toFixed(1)} MiB full_scans=${s.fullScans}`);

      const stop = await h.cli(['host', 'ksm', 'off']);
      expect(stop.code, stop.stderr).toBe(0);
      expect(sys('run')).toBe('0');
      expect(merged(on.pid)).toBeGreaterThanOrEqual(mergedOn); // stopping keeps what is merged

      const un = await h.cli(['host', 'ksm', 'off', '--unmerge']);
      expect(un.code, un.stderr).toBe(0);
      expect(sys('run')).toBe('2');
      expect(merged(on.pid)).toBe(0);
    } finally {
      for (const q of [on, off]) {
        try {
          process.kill(q.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await q.exited;
      }
      restore();
    }
  }, 120_000);

  it('tune changes only the scanner settings; bad values change nothing (exit 2)', async () => {
    try {
      const runBefore = sys('run');
      const mergeNow = fs.existsSync(`${KSM_ROOT}/merge_across_nodes`) ? sys('merge_across_nodes') : undefined;
      const r = await h.cli(['host', 'ksm', 'tune', '--pages-to-scan', '321', '--sleep-ms', '33', ...(mergeNow ? ['--merge-across-nodes', mergeNow] : [])]);
      expect(r.code, r.stderr).toBe(0);
      expect([sys('pages_to_scan'), sys('sleep_millisecs'), sys('run')]).toEqual(['321', '33', runBefore]);
      for (const bad of [['--pages-to-scan', 'abc'], ['--pages-to-scan', '0'], ['--merge-across-nodes', '2'], []]) {
        const b = await h.cli(['host', 'ksm', 'tune', ...bad]);
        expect(b.code, bad.join(' ')).toBe(2);
      }
      expect([sys('pages_to_scan'), sys('sleep_millisecs')]).toEqual(['321', '33']);
    } finally {
      restore();
    }
    expect(Number(sys('pages_to_scan'))).toBe(old!.pagesToScan);
  });
});
