/** The pure parts of backups: PBS keep rules, when an incremental is unsafe, the QMP transaction, the daemon argv. */
import { describe, expect, it } from 'vitest';
import { fullReason, type BackupState } from '../../../src/backup/create.js';
import { backupActions } from '../../../src/backup/jobs.js';
import { isoWeek, planPrune } from '../../../src/backup/prune-plan.js';
import { compareIds, type Manifest } from '../../../src/backup/repo.js';
import { storageDaemonArgv } from '../../../src/backup/storage-daemon.js';

const at = (iso: string, id = iso) => ({ id, createdAt: iso });

describe('planPrune (Proxmox Backup Server semantics)', () => {
  // Two backups a day for 10 days, 2026-11-01 … 11-10, at 06:00 and 18:00.
  const items = Array.from({ length: 20 }, (_, i) => {
    const day = String(1 + Math.floor(i / 2)).padStart(2, '0');
    return at(`2026-11-${day}T${i % 2 ? '18' : '06'}:00:00.000Z`, `b${String(i).padStart(2, '0')}`);
  });

  it('keeps everything when no rule is given', () => {
    expect(planPrune(items, {}).remove).toEqual([]);
  });

  it('keep-last N keeps the N newest', () => {
    const p = planPrune(items, { last: 3 });
    expect(p.keep.map((k) => k.id)).toEqual(['b19', 'b18', 'b17']);
    expect(p.remove).toHaveLength(17);
  });

  it('keep-daily keeps the newest of each day, and the older one of a day is out for later rules too', () => {
    const p = planPrune(items, { daily: 3, weekly: 2 });
    // days 10, 9, 8 → b19, b17, b15; weekly: 2026-11-08 is Sunday of W45, so W45 (days 2–8) is already covered by b15;
    // the next weeks are W44 (day 1: b01) — b14 (day 8 06:00) was dropped by the daily rule, not kept by the weekly one.
    expect(p.keep).toEqual([
      { id: 'b19', by: 'keep-daily' },
      { id: 'b17', by: 'keep-daily' },
      { id: 'b15', by: 'keep-daily' },
      { id: 'b01', by: 'keep-weekly' },
    ]);
    expect(p.remove).toContain('b14');
    expect(p.remove).toContain('b18');
  });

  it('keep-last then keep-monthly: a period an earlier rule covers is not counted again', () => {
    const p = planPrune([...items, at('2026-10-15T12:00:00.000Z', 'oct'), at('2026-09-15T12:00:00.000Z', 'sep')], { last: 1, monthly: 2 });
    expect(p.keep.map((k) => `${k.id}:${k.by}`)).toEqual(['b19:keep-last', 'oct:keep-monthly', 'sep:keep-monthly']);
  });

  it('ISO weeks: 2026-01-01 is in 2026-W01, 2027-01-01 in 2026-W53', () => {
    expect(isoWeek(new Date('2026-01-01T00:00:00Z'))).toBe('2026-W01');
    expect(isoWeek(new Date('2027-01-01T00:00:00Z'))).toBe('2026-W53');
  });

  it('orders IDs with a uniqueness suffix by number', () => {
    expect(['20261207T065344Z-10', '20261207T065344Z-2', '20261207T065344Z', '20261207T065343Z'].sort(compareIds)).toEqual([
      '20261207T065343Z',
      '20261207T065344Z',
      '20261207T065344Z-2',
      '20261207T065344Z-10',
    ]);
  });
});

describe('fullReason: an incremental is never built on a bitmap that can be wrong', () => {
  const prev = { id: 'P', generation: 'g1', disks: [{ id: 'vda' }] } as unknown as Manifest;
  const state: BackupState = { format: 1, repo: '/r', last: 'P', generation: 'g1' };
  const disk = (bitmaps: { name: string; inconsistent?: boolean }[], format = 'qcow2') => [{ id: 'vda', format, node: { node: 'n', virtualSize: 1, bitmaps: bitmaps.map((b) => ({ persistent: true, recording: true, busy: false, count: 0, granularity: 65536, ...b })) } }];
  const ok = disk([{ name: 'kvmctl-g1' }]);

  it('is incremental when everything lines up', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, ok)).toBeUndefined();
  });
  it.each([
    ['asked', { mode: 'full' as const }, ok, /asked/],
    ['no earlier backup', { prev: undefined }, ok, /no earlier backup/],
    ['another repository', { state: { ...state, repo: '/other' } }, ok, /\/other/],
    ['an unfinished backup', { state: { ...state, inProgress: 'X' } }, ok, /X\) did not finish/],
    ['a newer backup than the bitmaps know', { state: { ...state, last: 'OLD' } }, ok, /not the one the bitmaps count from/],
    ['no bitmap', {}, disk([]), /carries no dirty bitmap kvmctl-g1/],
    ['a bitmap of another generation', {}, disk([{ name: 'kvmctl-g0' }]), /carries no dirty bitmap/],
    ['an inconsistent bitmap', {}, disk([{ name: 'kvmctl-g1', inconsistent: true }]), /inconsistent: QEMU did not exit cleanly/],
  ])('is full after %s, and says why', (_, over, disks, re) => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev, ...over }, disks)).toMatch(re);
  });
  it('a raw disk has no bitmap and does not force the others to full', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, disk([], 'raw'))).toBeUndefined();
  });
  it('an RBD volume is incremental on its in-memory bitmap, and full (naming the RBD limit) when this QEMU has none', () => {
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, disk([{ name: 'kvmctl-g1', persistent: false } as { name: string }], 'rbd'))).toBeUndefined();
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, disk([], 'rbd'))).toMatch(/RBD volume: RBD images cannot hold QEMU's persistent dirty bitmaps.*made backup P.*has none/);
    expect(fullReason({ mode: 'auto', repo: '/r', state, prev }, disk([{ name: 'kvmctl-g0' }], 'rbd'))).toMatch(/RBD volume/);
  });
});

describe('the QMP transaction', () => {
  it('a full adds the persistent bitmap in the same transaction as the job; an incremental syncs on the bitmap, cleared only on success', () => {
    const a = backupActions([
      { id: 'vda', node: 'n1', target: 't1', mode: 'full', bitmap: 'kvmctl-g' },
      { id: 'vdb', node: 'n2', target: 't2', mode: 'incremental', bitmap: 'kvmctl-g' },
      { id: 'vdc', node: 'n3', target: 't3', mode: 'full-no-bitmap', bitmap: 'kvmctl-g' },
    ]);
    expect(a.map((x) => x.type)).toEqual(['block-dirty-bitmap-add', 'blockdev-backup', 'blockdev-backup', 'blockdev-backup']);
    expect(a[0]!.data).toEqual({ node: 'n1', name: 'kvmctl-g', persistent: true });
    expect(a[1]!.data).toMatchObject({ device: 'n1', target: 't1', sync: 'full', 'job-id': 'kvbk-vda' });
    expect(a[1]!.data.bitmap).toBeUndefined();
    expect(a[2]!.data).toMatchObject({ device: 'n2', sync: 'bitmap', bitmap: 'kvmctl-g', 'bitmap-mode': 'on-success' });
    expect(a[3]!.data).toMatchObject({ device: 'n3', sync: 'full' });
  });

  it('an RBD volume gets a non-persistent bitmap with its full job (RBD images cannot store one)', () => {
    const a = backupActions([{ id: 'vda', node: 'vda', target: 't1', mode: 'full-volatile', bitmap: 'kvmctl-g' }]);
    expect(a.map((x) => x.type)).toEqual(['block-dirty-bitmap-add', 'blockdev-backup']);
    expect(a[0]!.data).toEqual({ node: 'vda', name: 'kvmctl-g', persistent: false });
    expect(a[1]!.data).toMatchObject({ device: 'vda', sync: 'full' });
  });

  it('the storage daemon opens an RBD volume as QEMU does, in the namespace, with the key in a secret file', () => {
    const vol = { storage: 'ceph1', pool: 'rbd', image: 'web0', servers: [{ host: '10.0.0.1', port: '3300' }], user: 'kvmctl', keyFile: '/run/k/rbd-ceph1.key', cache: 'writeback' as const, discard: 'unmap' as const };
    const argv = storageDaemonArgv({ socket: '/run/s', pidfile: '/run/p', netns: 'ns1', disks: [{ id: 'vda', volume: vol }] });
    expect(argv.slice(0, 5)).toEqual(['ip', 'netns', 'exec', 'ns1', 'qemu-storage-daemon']);
    expect(argv[argv.indexOf('--object') + 1]).toBe('secret,id=sec-ceph1,file=/run/k/rbd-ceph1.key,format=base64');
    const nodes = argv.flatMap((a, i) => (a === '--blockdev' ? [JSON.parse(argv[i + 1]!) as Record<string, unknown>] : []));
    expect(nodes[0]).toMatchObject({ driver: 'rbd', 'node-name': 'vda-rbd', pool: 'rbd', image: 'web0', user: 'kvmctl', 'key-secret': 'sec-ceph1', server: [{ host: '10.0.0.1', port: '3300' }] });
    expect(nodes[1]).toMatchObject({ driver: 'raw', 'node-name': 'vda', file: 'vda-rbd', 'read-only': false });
    expect(argv).not.toContain('-blockdev');
    expect(argv.join(' ')).not.toMatch(/key=/);
  });

  it('qemu-storage-daemon gets JSON blockdevs named by disk id, commas in the socket path doubled', () => {
    const argv = storageDaemonArgv({ socket: '/run/a,b.sock', pidfile: '/run/p', disks: [{ id: 'vda', file: '/img/a,b.qcow2', format: 'qcow2' }] });
    expect(argv).toContain('socket,path=/run/a,,b.sock,server=on,wait=off,id=kvmon');
    expect(JSON.parse(argv[argv.indexOf('--blockdev') + 1]!)).toEqual({ driver: 'qcow2', 'node-name': 'vda', file: { driver: 'file', filename: '/img/a,b.qcow2' } });
    expect(argv.at(-1)).toBe('--daemonize');
  });
});
