import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { backingDependents, checkResize } from '../../../src/disk/resize.js';
import { nodeForFile } from '../../../src/disk/live-resize.js';

const M = 1024 ** 2;
function err(f: () => unknown): KvmError {
  try {
    f();
  } catch (e) {
    return e as KvmError;
  }
  throw new Error('did not throw');
}

describe('resize refusals', () => {
  it('refuses a backing file, naming the overlay, exit 2', () => {
    const e = err(() => checkResize('/d/base.qcow2', 64 * M, 128 * M, { dependents: ['/d/vm1.qcow2'], format: 'qcow2' }));
    expect(e.code).toBe('DISK_IS_BACKING');
    expect(e.exit).toBe(2);
    expect(e.message).toContain('/d/vm1.qcow2');
    expect(e.hint).toBeTruthy();
  });
  it('shrink without the flag names both sizes and the bytes lost; growing needs no flag', () => {
    const e = err(() => checkResize('/d/a.raw', 64 * M, 32 * M, { dependents: [], format: 'raw' }));
    expect(e.code).toBe('DISK_SHRINK_REFUSED');
    expect(e.exit).toBe(2);
    expect(e.message).toContain(String(64 * M));
    expect(e.message).toContain(`(${32 * M} bytes) would be lost`);
    expect(checkResize('/d/a.raw', 64 * M, 128 * M, { dependents: [], format: 'raw' })).toEqual([]);
    expect(checkResize('/d/a.raw', 64 * M, 32 * M, { shrink: true, dependents: [], format: 'raw' })[0]).toContain(`${32 * M} bytes`);
  });
  it('finds dependents at any depth of a backing chain', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kvr-'));
    try {
      const qcow = (n: string) => { const f = path.join(d, n); fs.writeFileSync(f, Buffer.from([0x51, 0x46, 0x49, 0xfb])); return f; };
      const base = qcow('base.qcow2');
      const mid = qcow('mid.qcow2');
      const top = qcow('top.qcow2');
      const other = qcow('other.qcow2');
      const chains: Record<string, string[]> = { [mid]: [mid, 'base.qcow2'], [top]: [top, mid, base], [other]: [other] };
      const got = await backingDependents(base, [base, mid, top, other], async (f) => chains[f]!);
      expect(got.sort()).toEqual([mid, top].sort());
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  it('picks the format node for a file, not its protocol child', () => {
    const nodes = [
      { 'node-name': 'p0', drv: 'file', file: '/d/a.qcow2', ro: false },
      { 'node-name': 'f0', drv: 'qcow2', file: '/d/a.qcow2', ro: false },
      { 'node-name': 'f1', drv: 'qcow2', file: '/d/b.qcow2', ro: true },
    ];
    expect(nodeForFile(nodes, '/d/a.qcow2', () => false)?.['node-name']).toBe('f0');
    expect(nodeForFile(nodes, '/d/b.qcow2', () => false)?.ro).toBe(true);
  });
});
