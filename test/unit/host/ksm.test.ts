/** KSM against a temp dir laid out like /sys/kernel/mm/ksm (the real one: test/integration/ksm.test.ts). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { formatBytes, formatKsm, readKsm, systemPageSize, writeKsm } from '../../../src/host/ksm.js';

let root: string;
const FILES = { run: '0', pages_to_scan: '100', sleep_millisecs: '20', merge_across_nodes: '1', pages_shared: '1200', pages_sharing: '42700', pages_unshared: '310', pages_volatile: '5', full_scans: '7' };
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-ksm-'));
  for (const [f, v] of Object.entries(FILES)) fs.writeFileSync(path.join(root, f), `${v}\n`);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));
const file = (f: string) => fs.readFileSync(path.join(root, f), 'utf8').trim();

describe('readKsm', () => {
  it('reads the state and counters; saved = pages_sharing × page size', () => {
    expect(readKsm(root, 4096)).toEqual({
      root, run: 0, pagesToScan: 100, sleepMillisecs: 20, mergeAcrossNodes: 1, pagesShared: 1200, pagesSharing: 42700, pagesUnshared: 310, pagesVolatile: 5, fullScans: 7, pageSize: 4096, savedBytes: 42700 * 4096,
    });
  });
  it('works without the NUMA-only file', () => {
    fs.rmSync(path.join(root, 'merge_across_nodes'));
    expect(readKsm(root, 4096).mergeAcrossNodes).toBeUndefined();
  });
  it('no KSM directory → KSM_UNAVAILABLE naming the path and the kernel option', () => {
    const e = (() => { try { readKsm(path.join(root, 'nope')); } catch (x) { return x as KvmError; } })();
    expect(e).toBeInstanceOf(KvmError);
    expect(e!.code).toBe('KSM_UNAVAILABLE');
    expect(e!.message).toContain(path.join(root, 'nope'));
    expect(e!.hint).toContain('CONFIG_KSM');
  });
  // Other architectures may use 16 or 64 KiB pages.
  it.skipIf(os.arch() !== 'x64')('systemPageSize reads the kernel page size (4 KiB on x86_64)', () => {
    expect(systemPageSize()).toBe(4096);
  });
});

describe('writeKsm', () => {
  it('on with tuning writes every file and returns the new state', () => {
    const s = writeKsm({ run: 1, pagesToScan: 5000, sleepMillisecs: 10, mergeAcrossNodes: 0 }, root, 4096);
    expect([file('run'), file('pages_to_scan'), file('sleep_millisecs'), file('merge_across_nodes')]).toEqual(['1', '5000', '10', '0']);
    expect(s).toMatchObject({ run: 1, pagesToScan: 5000, sleepMillisecs: 10, mergeAcrossNodes: 0 });
  });
  it('off writes run=0, unmerge writes run=2, and nothing else changes', () => {
    writeKsm({ run: 0 }, root);
    expect(file('run')).toBe('0');
    writeKsm({ run: 2 }, root);
    expect(file('run')).toBe('2');
    expect(file('pages_to_scan')).toBe('100');
  });
  it('bad values are bad input (exit 2) and nothing is written', () => {
    for (const bad of [{ pagesToScan: 0 }, { pagesToScan: 1.5 }, { sleepMillisecs: -1 }, { mergeAcrossNodes: 2 as 0 }, { run: 3 as 0 }, { pagesToScan: 2 ** 32 }]) {
      const e = (() => { try { writeKsm({ run: 1, ...bad }, root); } catch (x) { return x as KvmError; } })();
      expect(e, JSON.stringify(bad)).toBeInstanceOf(KvmError);
      expect(e!.exit).toBe(2);
    }
    expect([file('run'), file('pages_to_scan'), file('sleep_millisecs'), file('merge_across_nodes')]).toEqual(['0', '100', '20', '1']);
  });
  it('--merge-across-nodes on a kernel without NUMA is refused by name', () => {
    fs.rmSync(path.join(root, 'merge_across_nodes'));
    expect(() => writeKsm({ mergeAcrossNodes: 0 }, root)).toThrow(/merge_across_nodes does not exist/);
  });
  it('a write the kernel refuses keeps the file name and errno', () => {
    fs.rmSync(path.join(root, 'pages_to_scan'));
    fs.mkdirSync(path.join(root, 'pages_to_scan'));
    expect(() => writeKsm({ pagesToScan: 10 }, root)).toThrow(/pages_to_scan: cannot write 10 \(EISDIR\)/);
  });
});

describe('formatKsm', () => {
  it('says the state, the tuning, the counters and the memory saved', () => {
    const t = formatKsm(readKsm(root, 4096));
    expect(t).toContain('KSM: stopped (run=0)');
    expect(t).toContain('pages_to_scan=100 sleep_millisecs=20 merge_across_nodes=1');
    expect(t).toContain('pages_sharing=42700');
    expect(t).toContain('memory saved: 166.8 MiB (pages_sharing 42700 × 4096 B pages)');
    expect(formatBytes(512)).toBe('512 B');
  });
});
