import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { meanRows, RingFile, RingPair } from '../../../src/metrics/ring.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ring-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 11, 7, 9, 0, 0);

describe('RingFile', () => {
  it('keeps the last `slots` samples when it wraps around, oldest first', () => {
    const r = RingFile.open(path.join(dir, 'a.ring'), { stepMs: 10_000, slots: 10, fields: ['x', 'y'] });
    for (let i = 0; i < 25; i++) r.write(T0 + i * 10_000, [i, i * 2]);
    const rows = r.read(T0, T0 + 24 * 10_000);
    expect(rows.map((x) => x.v[0])).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    expect(rows[0]!.t).toBe(T0 + 15 * 10_000);
    expect(rows.every((x) => x.v[1] === x.v[0]! * 2)).toBe(true);
    // A range starting mid-ring that wraps past the file's end is read in two pieces.
    expect(r.read(T0 + 18 * 10_000, T0 + 22 * 10_000).map((x) => x.v[0])).toEqual([18, 19, 20, 21, 22]);
    r.close();
  });

  it('does not read a slot of an earlier lap as a current one, and keeps gaps as gaps', () => {
    const r = RingFile.open(path.join(dir, 'b.ring'), { stepMs: 1000, slots: 5, fields: ['x'] });
    r.write(T0, [1]);
    r.write(T0 + 1000, [2]);
    // 7 s later: slot of T0+2000 … T0+6000 in between were never written; T0+7000 reuses T0+2000's slot.
    r.write(T0 + 8000, [9]);
    const rows = r.read(T0 + 4000, T0 + 8000);
    expect(rows.map((x) => [x.t - T0, x.v[0]])).toEqual([[8000, 9]]);
    // T0+1000's slot index equals T0+6000's: reading 6000 must not return the 1000 sample.
    expect(r.read(T0 + 6000, T0 + 6000)).toEqual([]);
    r.close();
  });

  it('stores NaN for missing values and replaces a sample written twice in one bucket', () => {
    const r = RingFile.open(path.join(dir, 'c.ring'), { stepMs: 10_000, slots: 100, fields: ['x', 'y'] });
    r.write(T0 + 1, [null, 5]);
    r.write(T0 + 3000, [undefined, 6]);
    const rows = r.read(T0, T0 + 9999);
    expect(rows).toHaveLength(1);
    expect(Number.isNaN(rows[0]!.v[0])).toBe(true);
    expect(rows[0]!.v[1]).toBe(6);
    r.close();
  });

  it('survives a restart: a reopened file has every sample; a different shape starts afresh', () => {
    const file = path.join(dir, 'd.ring');
    const spec = { stepMs: 10_000, slots: 8640, fields: ['cpu', 'mem'] };
    const r = RingFile.open(file, spec);
    for (let i = 0; i < 100; i++) r.write(T0 + i * 10_000, [i / 10, 1e9 + i]);
    r.close();
    expect(fs.statSync(file).size).toBe(64 + 2 * 32 + 8640 * (8 + 8));
    const again = RingFile.open(file, spec);
    const rows = again.read(T0, T0 + 99 * 10_000);
    expect(rows).toHaveLength(100);
    expect(rows[42]!.v[0]).toBeCloseTo(4.2, 5);
    expect(rows[42]!.v[1]).toBe(Math.fround(1e9 + 42));
    again.close();
    const other = RingFile.open(file, { ...spec, stepMs: 1000 });
    expect(other.read(T0, T0 + 99 * 10_000)).toEqual([]);
    other.close();
  });
});

describe('RingPair (downsampling)', () => {
  it('keeps the mean of each 5-minute bucket in the coarse ring, also across a restart mid-bucket', () => {
    const base = path.join(dir, 'vm');
    let p = new RingPair(base, ['cpu', 'balloon']);
    // 15 minutes of 10 s samples: cpu = minute index (0..14), balloon missing in the first 5 min.
    for (let i = 0; i < 90; i++) {
      if (i === 45) {
        p.close();
        p = new RingPair(base, ['cpu', 'balloon']); // restart in the middle of the second bucket
      }
      p.write(T0 + i * 10_000, [Math.floor(i / 6), i < 30 ? null : 100]);
    }
    const coarse = p.coarse.read(T0, T0 + 15 * 60_000);
    expect(coarse.map((r) => r.t - T0)).toEqual([0, 300_000, 600_000]);
    expect(coarse.map((r) => r.v[0])).toEqual([2, 7, 12]); // means of 0..4, 5..9, 10..14 (each ×6)
    expect(Number.isNaN(coarse[0]!.v[1])).toBe(true);
    expect(coarse[1]!.v[1]).toBe(100);
    expect(p.fine.read(T0, T0 + 15 * 60_000)).toHaveLength(90);
    p.close();
  });

  it('meanRows ignores NaN per field', () => {
    expect(meanRows([{ t: 0, v: [1, NaN] }, { t: 1, v: [3, 4] }], 2)).toEqual([2, 4]);
  });
});
