/** The pinning read back (src/vm/hardware.ts pinningRows): wanted from cpu.pin against /proc's Cpus_allowed_list. */
import { describe, expect, it } from 'vitest';
import { pinningRows } from '../../../src/vm/hardware.js';

describe('pinning read back (pure part)', () => {
  const vcpus = [{ index: 1, tid: 11 }, { index: 0, tid: 10 }];
  const iots = [{ id: 'io0', tid: 20 }];
  const threads = [1, 10, 11, 20, 30];
  it('each thread: what cpu.pin wants and what it has; a mismatch is marked', () => {
    const have: Record<number, string> = { 1: '0', 10: '1', 11: '0,1', 20: '1', 30: '0-1' };
    const rows = pinningRows({ vcpus: [[1], [0]], emulator: [0], iothreads: [1] } as never, vcpus, iots, threads, (t) => have[t]);
    expect(rows).toEqual([
      { tid: 10, what: 'vCPU 0', wanted: '1', actual: '1', matches: true },
      { tid: 11, what: 'vCPU 1', wanted: '0', actual: '0-1', matches: false },
      { tid: 20, what: 'iothread io0', wanted: '1', actual: '1', matches: true },
      { tid: 1, what: 'emulator', wanted: '0', actual: '0', matches: true },
      { tid: 30, what: 'emulator', wanted: '0', actual: '0-1', matches: false },
    ]);
  });
  it('without cpu.pin nothing is wanted and everything matches; an ended thread has no actual', () => {
    const rows = pinningRows(undefined, vcpus, [], [1, 10], (t) => (t === 1 ? '0-1' : undefined));
    expect(rows).toEqual([
      { tid: 10, what: 'vCPU 0', matches: true },
      { tid: 11, what: 'vCPU 1', matches: true },
      { tid: 1, what: 'emulator', actual: '0-1', matches: true },
    ]);
  });
});
