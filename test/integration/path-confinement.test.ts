/**
 * Path confinement through the real CLI (apply, start after a symlink changed, install --iso) and
 * the API: /etc/passwd, ../, a symlink inside a root pointing out, a device node, a 9p share of /
 * → exit 2 / HTTP 422 naming each field; nothing stored.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, type KvmServer } from '../../src/api/server.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let paths: Paths;
let s: KvmServer;
const BAD = (name: string) => `name: ${name}
kernel: { builtin: test-guest }
disks:
  - file: /etc/passwd
  - file: ../../x.img
  - file: escape.raw
  - file: /dev/null
shares:
  - { path: /, tag: root }
`;
const FIELDS = ['disks[0].file', 'disks[1].file', 'disks[2].file', 'disks[3].file', 'shares[0].path'];

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  fs.symlinkSync('/etc/shadow', path.join(h.images, 'escape.raw'));
  s = await buildServer({ paths, watch: false });
});
afterAll(async () => {
  await s?.close();
  await h?.cleanup();
});

describe('paths outside the storage roots', () => {
  it('CLI apply: exit 2, every field named with what it resolves to, nothing stored', async () => {
    fs.writeFileSync(path.join(h.dir, 'bad.yaml'), BAD('bad'));
    const r = await h.cli(['apply', '-f', path.join(h.dir, 'bad.yaml')]);
    expect(r.code).toBe(2);
    for (const f of FIELDS) expect(r.stderr).toContain(`vm/bad: ${f}:`);
    expect(r.stderr).toContain('resolves to /etc/shadow');
    expect(fs.existsSync(path.join(paths.vmDefs, 'bad.yaml'))).toBe(false);
  });

  it('API: 422 with the same issues, nothing stored', async () => {
    const r = await s.app.inject({ method: 'POST', url: '/api/vms', payload: { yaml: BAD('apibad') } });
    expect(r.statusCode).toBe(422);
    const paths_ = (r.json() as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(paths_).toEqual(FIELDS.map((f) => `vm/apibad: ${f}`));
    expect(fs.existsSync(path.join(paths.vmDefs, 'apibad.yaml'))).toBe(false);
  });

  it('start checks again: a disk symlink pointed outside after apply is refused, QEMU never runs', async () => {
    const link = path.join(h.images, 'later.raw');
    fs.writeFileSync(path.join(h.images, 'real.raw'), Buffer.alloc(1024 * 1024));
    fs.symlinkSync(path.join(h.images, 'real.raw'), link);
    await h.apply(`name: later\nkernel: { builtin: test-guest }\nmemory: 64M\ndisks: [{ file: later.raw, format: raw }]\n`);
    fs.rmSync(link);
    fs.symlinkSync('/etc/passwd', link);
    const r = await h.cli(['start', 'later']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/disks\[0\]\.file: "later\.raw" \(resolves to \/etc\/passwd\) is outside the storage roots/);
    expect(h.pids()).toEqual([]);
  });

  it('install --iso outside the roots is refused; storage add makes it work', async () => {
    const outside = fs.mkdtempSync(path.join('/tmp', 'kpc-iso-'));
    try {
      fs.writeFileSync(path.join(outside, 'inst.iso'), Buffer.alloc(64 * 1024));
      await h.apply(`name: inst\nkernel: { builtin: test-guest }\nmemory: 64M\n`);
      const r = await h.cli(['install', 'inst', '--iso', path.join(outside, 'inst.iso')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`kvmctl storage add ${outside}`);
      expect(h.pids()).toEqual([]);
      const add = await h.cli(['storage', 'add', outside]);
      expect(add.code, add.stderr).toBe(0);
      const list = await h.cli(['storage', 'list']);
      expect(list.stdout).toContain(`dir\tadded\t-\t${outside}`);
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});
