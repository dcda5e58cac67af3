/**
 * Parsers against qemu-img output recorded by test/fixtures/qemu-img/record.sh (each fixture is
 * headed by the qemu-img version and command that produced it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { classifyFailure, convertArgv, createArgv, parseCheck, parseInfo, parseInfoChain, parseMeasure } from '../../../src/disk/qemu-img.js';
import { parseQemuImgProgress, qemuImgProgressListener } from '../../../src/disk/progress.js';
import { qemuLocksOn } from '../../../src/disk/safety.js';
import { resolveNewSize } from '../../../src/disk/images.js';

const dir = path.join(import.meta.dirname, '../../fixtures/qemu-img');
/** Fixture body without its '#' header and trailing '# exit N' line. */
function fixture(name: string): { body: string; header: string[]; exit?: number } {
  const lines = fs.readFileSync(path.join(dir, name), 'utf8').split('\n');
  const header: string[] = [];
  while (lines[0]?.startsWith('# ')) header.push(lines.shift()!.slice(2));
  let exit: number | undefined;
  const ei = lines.findIndex((l) => l.startsWith('# exit '));
  if (ei >= 0) {
    exit = Number(lines[ei]!.slice(7));
    lines.splice(ei);
  }
  return { body: lines.join('\n'), header, exit };
}

describe('qemu-img info --output=json', () => {
  it('parses a raw image', () => {
    const f = fixture('info-raw.txt');
    expect(f.header[0]).toMatch(/^qemu-img version \d+\.\d+/);
    const i = parseInfo(f.body);
    expect(i).toMatchObject({ format: 'raw', 'virtual-size': 64 * 1024 ** 2, filename: 'disk.raw' });
    expect(i.snapshots).toBeUndefined();
  });

  it('parses a qcow2 image with a snapshot and keeps unknown fields', () => {
    const i = parseInfo(fixture('info-qcow2-snapshot.txt').body);
    expect(i.format).toBe('qcow2');
    expect(i['cluster-size']).toBe(128 * 1024);
    expect(i.snapshots?.map((s) => s.name)).toEqual(['before-upgrade']);
    expect(i.snapshots?.[0]?.id).toBe('1');
    // passthrough: format-specific data is kept as qemu-img printed it
    expect(i['format-specific']?.data).toMatchObject({ compat: '1.1', 'refcount-bits': 16 });
  });

  it('parses a backing chain, the overlay first', () => {
    const chain = parseInfoChain(fixture('info-chain.txt').body);
    expect(chain.map((c) => c.filename)).toEqual(['overlay.qcow2', 'base.qcow2']);
    expect(chain[0]).toMatchObject({ 'backing-filename': 'base.qcow2', 'backing-filename-format': 'qcow2' });
    expect(chain[1]!['backing-filename']).toBeUndefined();
  });

  it('rejects JSON of the wrong shape with the field path', () => {
    const bad = JSON.stringify({ filename: 'x', format: 'raw', 'virtual-size': 'big' });
    expect(() => parseInfo(bad)).toThrow(/virtual-size/);
    expect(() => parseInfo('qemu-img: oops')).toThrow(KvmError);
    try {
      parseInfo(bad);
    } catch (e) {
      expect((e as KvmError).code).toBe('QEMU_IMG_OUTPUT');
    }
  });
});

describe('qemu-img check and measure', () => {
  it('parses a clean check (exit 0)', () => {
    const f = fixture('check-clean.txt');
    expect(f.exit).toBe(0);
    const c = parseCheck(f.body);
    expect(c['check-errors']).toBe(0);
    expect(c.corruptions).toBeUndefined();
  });

  it('parses a check with corruptions (exit 2)', () => {
    const f = fixture('check-corrupt.txt');
    expect(f.exit).toBe(2);
    expect(parseCheck(f.body).corruptions).toBeGreaterThan(0);
  });

  it('raw images: exit 63, format does not support checks', () => {
    const f = fixture('check-raw.txt');
    expect(f.exit).toBe(63);
    expect(f.body).toMatch(/does not support checks/);
  });

  it('parses measure', () => {
    const m = parseMeasure(fixture('measure.txt').body);
    expect(m['fully-allocated']).toBeGreaterThan(64 * 1024 ** 2);
    expect(m.required).toBeLessThan(m['fully-allocated']);
  });
});

describe('failure classification', () => {
  it('recognises QEMU image lock errors from qemu-img and qemu-io', () => {
    expect(classifyFailure(fixture('lock-info.txt').body)).toBe('locked');
    expect(classifyFailure(fixture('lock-io.txt').body)).toBe('locked');
  });
  it('recognises ENOSPC and missing files', () => {
    expect(classifyFailure("qemu-img: x.raw: Could not preallocate data for the new file: No space left on device")).toBe('no-space');
    expect(classifyFailure("qemu-img: Could not open 'nope': Could not open 'nope': No such file or directory")).toBe('not-found');
    expect(classifyFailure('qemu-img: something else')).toBe('other');
  });
});

describe('progress', () => {
  it('parses every percentage of a recorded convert -p run, increasing to 100', () => {
    const seen: number[] = [];
    const listen = qemuImgProgressListener((p) => seen.push(p));
    const body = fixture('convert-progress.txt').body;
    // feed in odd-sized chunks so records are split across chunks
    for (let i = 0; i < body.length; i += 7) listen(body.slice(i, i + 7));
    expect(seen[0]).toBe(0);
    expect(seen.at(-1)).toBe(100);
    expect(seen.length).toBeGreaterThan(10);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
  });
  it('keeps an incomplete record for the next chunk', () => {
    expect(parseQemuImgProgress('    (12.50/100%)\r    (25.0')).toEqual({ percents: [12.5], rest: '(25.0' });
  });
});

describe('argv builders', () => {
  it('create: options joined, backing with its format, size last', () => {
    expect(createArgv({ path: 'a.qcow2', format: 'qcow2', size: 1024 ** 3, prealloc: 'metadata', clusterSize: 65536 })).toEqual([
      'create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata,cluster_size=65536', 'a.qcow2', String(1024 ** 3),
    ]);
    expect(createArgv({ path: 'o.qcow2', format: 'qcow2', backing: { file: 'b.raw', format: 'raw' } })).toEqual([
      'create', '-q', '-f', 'qcow2', '-b', 'b.raw', '-F', 'raw', 'o.qcow2',
    ]);
    expect(createArgv({ path: 'r', format: 'raw', size: 512, prealloc: 'off' })).toEqual(['create', '-q', '-f', 'raw', 'r', '512']);
  });
  it('convert: -p only with progress, explicit source format', () => {
    expect(convertArgv({ src: 's', srcFormat: 'raw', dst: 'd', dstFormat: 'qcow2' }, true)).toEqual(['convert', '-p', '-f', 'raw', '-O', 'qcow2', 's', 'd']);
  });
});

describe('sizes and locks', () => {
  it('resolves relative and absolute resize targets', () => {
    const G = 1024 ** 3;
    expect(resolveNewSize('+5G', 10 * G)).toBe(15 * G);
    expect(resolveNewSize('-1G', 10 * G)).toBe(9 * G);
    expect(resolveNewSize('20G', 10 * G)).toBe(20 * G);
    expect(() => resolveNewSize('-20G', 10 * G)).toThrow(/at least 512/);
    expect(() => resolveNewSize('lots', 10 * G)).toThrow(/not a size/);
  });

  it('finds QEMU lock bytes for a file in /proc/locks text', () => {
    const st = fs.statSync(path.join(dir, 'info-raw.txt'));
    const major = Math.floor(st.dev / 256) & 0xfff;
    const minor = (st.dev & 0xff) | (Math.floor(st.dev / 4096) & 0xfff00);
    const key = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
    const f = path.join(dir, 'info-raw.txt');
    expect(qemuLocksOn(f, `1: OFDLCK ADVISORY  READ -1 ${key} 100 101\n`)).toEqual({ open: true, writer: true });
    expect(qemuLocksOn(f, `1: OFDLCK ADVISORY  READ -1 ${key} 100 100\n2: OFDLCK ADVISORY  READ -1 ${key} 201 201\n`)).toEqual({ open: true, writer: false });
    expect(qemuLocksOn(f, `1: POSIX  ADVISORY  WRITE 42 ${key} 0 EOF\n`)).toEqual({ open: false, writer: false });
    expect(qemuLocksOn(f, `1: OFDLCK ADVISORY  READ -1 ${key}9 100 101\n`)).toEqual({ open: false, writer: false });
  });
});
