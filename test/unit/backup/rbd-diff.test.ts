/** The pure parts of RBD incrementals across QEMU restarts (#21): extents → bitmap marks, when the anchor makes a missing bitmap no reason for a full backup. */
import { describe, expect, it } from 'vitest';
import { fullReason, type BackupState } from '../../../src/backup/create.js';
import { coalesceExtents, markScript } from '../../../src/backup/rbd-diff.js';
import type { Manifest } from '../../../src/backup/repo.js';
import { anchorName, isAnchor, refuseAnchorName } from '../../../src/storage/anchors.js';

const K = 65536;

describe('coalesceExtents', () => {
  it('rounds each extent out to the granularity, sorts, merges touching ones and clips to the size', () => {
    expect(coalesceExtents([{ offset: 3 * K + 10, length: 5 }, { offset: 0, length: 1 }, { offset: K, length: K }, { offset: 2 * K - 1, length: 2 }], K, 10 * K)).toEqual([{ offset: 0, length: 4 * K }]);
    expect(coalesceExtents([{ offset: 5 * K, length: 1 }, { offset: 0, length: 1 }], K, 10 * K)).toEqual([
      { offset: 0, length: K },
      { offset: 5 * K, length: K },
    ]);
    // rbd diff's extent of a new object runs from its start to its end; an extent past the end (a shrunk image) is cut.
    expect(coalesceExtents([{ offset: 9 * K + 1, length: 4 * K }, { offset: 12 * K, length: K }], K, 10 * K)).toEqual([{ offset: 9 * K, length: K }]);
    expect(coalesceExtents([{ offset: 5, length: 0 }], K, 10 * K)).toEqual([]);
  });
  it('the qemu-io script zero-writes each extent (metadata only in the scratch qcow2, which marks its bitmap)', () => {
    expect(markScript([{ offset: 0, length: K }, { offset: 4 * K, length: 2 * K }])).toBe(`write -z 0 ${K}\nwrite -z ${4 * K} ${2 * K}\n`);
  });
});

describe('anchor names', () => {
  it('are kvmctl-bk-BACKUPID and reserved', () => {
    expect(anchorName('20261207T065338Z-2')).toBe('kvmctl-bk-20261207T065338Z-2');
    expect(isAnchor('kvmctl-bk-x')).toBe(true);
    expect(isAnchor('nightly')).toBe(false);
    expect(() => refuseAnchorName('kvmctl-bk-mine')).toThrow(/SNAPSHOT_NAME_RESERVED|backup anchors/);
    expect(() => refuseAnchorName('mine')).not.toThrow();
  });
});

describe('fullReason with an RBD anchor', () => {
  const state: BackupState = { format: 1, repo: '/r', last: 'P', generation: 'g1' };
  const prev = { id: 'P', generation: 'g1', disks: [{ id: 'd' }] } as unknown as Manifest;
  const rbd = (anchor?: string, bitmaps: { name: string }[] = []) => [{ id: 'd', format: 'rbd', node: { node: 'd', virtualSize: 1, bitmaps: bitmaps as never }, ...(anchor ? { anchor } : {}) }];
  it('a missing in-memory bitmap is no reason when the volume still has the previous backup anchor', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, rbd('kvmctl-bk-P'))).toBeUndefined();
  });
  it('without the anchor it is full, naming the missing snapshot', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, rbd())).toMatch(/QEMU running now has none.*no longer has the snapshot kvmctl-bk-P/);
  });
  it('the anchor never overrides the other rules (another repository, an unfinished backup)', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state: { ...state, inProgress: 'X' }, prev }, rbd('kvmctl-bk-P'))).toMatch(/did not finish/);
    expect(fullReason({ mode: 'auto', repo: '/r', state: { ...state, repo: '/o' }, prev }, rbd('kvmctl-bk-P'))).toMatch(/\/o/);
  });
});
