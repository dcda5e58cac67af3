/**
 * Shared folders over virtio-9p with the real test guest, one guest with a share per security
 * model plus a read-only one: the guest writes a file and sets its owner and mode, the host reads
 * what each model promises (QEMU runs as root here):
 * - mapped-xattr: the host file belongs to QEMU's user, mode 0600; the guest's owner and mode are
 *   in user.virtfs.{uid,gid,mode} xattrs;
 * - mapped-file: the same, kept in .virtfs_metadata/NAME files next to it;
 * - passthrough: the guest's owner and mode are the host file's real ones;
 * - none: like passthrough, ownership changes that fail are ignored;
 * - readOnly: the guest cannot write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let paths: Paths;
let dir: string;
const MODELS = ['mapped-xattr', 'mapped-file', 'passthrough', 'none'] as const;
const tag = (m: string) => m.replace('-', '');
const hasGetfattr = fs.existsSync('/usr/bin/getfattr');
const isRoot = process.getuid?.() === 0;

/** Every xattr of a file as name → hex value (getfattr from Debian's attr package). */
async function xattrs(file: string): Promise<Record<string, string>> {
  const r = await run(['getfattr', '--absolute-names', '-d', '-m', '-', '-e', 'hex', file]);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]+)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
/** A little-endian 32-bit xattr value as a number. */
const le32 = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0);

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  dir = path.join(h.dir, 'data/shares');
  for (const m of [...MODELS, 'ro']) fs.mkdirSync(path.join(dir, m), { recursive: true });
  await h.addRoot(dir);
  fs.writeFileSync(path.join(dir, 'ro', 'from-host.txt'), 'host data\n');
  const shares = [...MODELS.map((m) => `  - { path: ${path.join(dir, m)}, tag: ${tag(m)}, securityModel: ${m} }`), `  - { path: ${path.join(dir, 'ro')}, tag: ro, readOnly: true }`];
  const mounts = [...MODELS.map((m) => `${tag(m)}:/mnt/${tag(m)}`), 'ro:/mnt/ro'].join(',');
  await h.apply(`name: shares
memory: 256M
kernel: { builtin: test-guest, append: "kvt.9p=${mounts}" }
shares:
${shares.join('\n')}
stopTimeout: 20
`);
  await ensureTestGuest(paths);
  const s = await h.cli(['start', 'shares', '--wait-for-guest']);
  if (s.code !== 0) throw new Error(`start failed: ${s.stderr}`);
  // The guest writes the same file into every writable share, owned 1234:2345, mode 0640.
  for (const m of MODELS) {
    const w = await serialExec(paths, 'shares', `cd /mnt/${tag(m)} && echo "from guest" > f.txt && chown 1234:2345 f.txt && chmod 640 f.txt && mkdir d && stat -c '%u:%g %a' f.txt`);
    if (w.status !== 0) throw new Error(`${m}: guest write failed: ${w.output}`);
  }
}, 320_000);
afterAll(async () => {
  if (h) await h.cli(['kill', 'shares']).catch(() => undefined);
  await h?.cleanup();
});

describe.skipIf(!isRoot)('9p shares, every security model, with the real guest', () => {
  it('the argv has one -fsdev per share with its model (and readonly=on)', () => {
    const argv = (JSON.parse(fs.readFileSync(path.join(h.dir, 'run/vms/shares/argv.json'), 'utf8')) as string[]).join(' ');
    for (const m of MODELS) expect(argv).toContain(`-fsdev local,id=fs${MODELS.indexOf(m)},path=${path.join(dir, m)},security_model=${m}`);
    expect(argv).toContain(`path=${path.join(dir, 'ro')},security_model=mapped-xattr,readonly=on`);
  });

  it('the guest sees its own owner and mode on every writable share', async () => {
    for (const m of MODELS) {
      const r = await serialExec(paths, 'shares', `stat -c '%u:%g %a' /mnt/${tag(m)}/f.txt; cat /mnt/${tag(m)}/f.txt`);
      expect(r.output.trim(), m).toBe('1234:2345 640\nfrom guest');
    }
  });

  it.skipIf(!hasGetfattr)('mapped-xattr: host file owned by QEMU (root), mode 0600; the guest view in user.virtfs.* xattrs', async () => {
    const f = path.join(dir, 'mapped-xattr', 'f.txt');
    const st = fs.statSync(f);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o600]);
    expect(fs.readFileSync(f, 'utf8')).toBe('from guest\n');
    const x = await xattrs(f);
    expect(le32(x['user.virtfs.uid']!)).toBe(1234);
    expect(le32(x['user.virtfs.gid']!)).toBe(2345);
    expect(le32(x['user.virtfs.mode']!)).toBe(0o100640); // S_IFREG | 0640
    expect(le32((await xattrs(path.join(dir, 'mapped-xattr', 'd')))['user.virtfs.mode']!) & 0o170000).toBe(0o040000); // a directory
  });

  it('mapped-file: host file owned by QEMU, mode 0600; the guest view in .virtfs_metadata/', () => {
    const f = path.join(dir, 'mapped-file', 'f.txt');
    const st = fs.statSync(f);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o600]);
    const meta = fs.readFileSync(path.join(dir, 'mapped-file', '.virtfs_metadata', 'f.txt'), 'utf8');
    expect(meta).toMatch(/virtfs\.uid=1234/);
    expect(meta).toMatch(/virtfs\.gid=2345/);
    expect(meta).toMatch(new RegExp(`virtfs\\.mode=${0o100640}`));
  });

  it('passthrough and none: the host file has the real owner and mode the guest set', () => {
    for (const m of ['passthrough', 'none']) {
      const st = fs.statSync(path.join(dir, m, 'f.txt'));
      expect([st.uid, st.gid, st.mode & 0o777], m).toEqual([1234, 2345, 0o640]);
    }
  });

  it('a read-only share refuses writes; the host file is readable', async () => {
    const w = await serialExec(paths, 'shares', 'touch /mnt/ro/x 2>&1; echo rc=$?');
    expect(w.output).toMatch(/Read-only file system/);
    expect(w.output).toMatch(/rc=1/);
    expect(fs.existsSync(path.join(dir, 'ro', 'x'))).toBe(false);
    expect((await serialExec(paths, 'shares', 'cat /mnt/ro/from-host.txt')).output.trim()).toBe('host data');
    // The host's own changes show up in the guest.
    fs.writeFileSync(path.join(dir, 'ro', 'later.txt'), 'later\n');
    expect((await serialExec(paths, 'shares', 'cat /mnt/ro/later.txt')).output.trim()).toBe('later');
  });
});

/** virtiofs: kvmctl runs virtiofsd per share; it goes away with QEMU. */
const virtiofsd = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/virtiofsd'].find((p) => fs.existsSync(p));
const virtiofsdPids = (sock: string) =>
  fs.readdirSync('/proc').filter((d) => {
    if (!/^\d+$/.test(d)) return false;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(sock) && st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  });

describe.skipIf(!isRoot || !virtiofsd)('virtiofs share with the real guest', () => {
  let vdir: string;
  let sock: string;
  beforeAll(async () => {
    vdir = path.join(h.dir, 'data/shares/vfs'); // inside the storage root added in beforeAll
    fs.mkdirSync(vdir);
    fs.writeFileSync(path.join(vdir, 'host.txt'), 'over virtiofs\n');
    await h.apply(`name: vfs
memory: 256M
kernel: { builtin: test-guest }
shares:
  - { path: ${vdir}, tag: hostfs, driver: virtiofs }
stopTimeout: 20
`);
    sock = path.join(h.dir, 'run/vms/vfs/vfs-fs0.sock');
  });

  it('virtiofsd runs for the share, the guest mounts it, reads and writes with real ownership; virtiofsd ends when QEMU crashes', async () => {
    const s = await h.cli(['start', 'vfs', '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    const argv = JSON.parse(s.stdout).argv.join(' ');
    expect(argv).toContain('-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem');
    expect(argv).toContain(`-chardev socket,id=fs0-vfs,path=${sock} -device vhost-user-fs-pci,chardev=fs0-vfs,tag=hostfs`);
    expect(virtiofsdPids(sock).length).toBeGreaterThan(0);
    const m = await serialExec(paths, 'vfs', 'mkdir -p /mnt/vfs && mount -t virtiofs hostfs /mnt/vfs && cat /mnt/vfs/host.txt && echo guest > /mnt/vfs/g.txt && chown 1234:2345 /mnt/vfs/g.txt');
    expect(m.status, m.output).toBe(0);
    expect(m.output).toContain('over virtiofs');
    const st = fs.statSync(path.join(vdir, 'g.txt'));
    expect([st.uid, st.gid, fs.readFileSync(path.join(vdir, 'g.txt'), 'utf8')]).toEqual([1234, 2345, 'guest\n']);
    // A crash (QEMU killed by SIGKILL) closes the vhost-user connection: virtiofsd ends by itself.
    process.kill(JSON.parse(s.stdout).pid, 'SIGKILL');
    const end = Date.now() + 5000;
    while (virtiofsdPids(sock).length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(virtiofsdPids(sock)).toEqual([]);
    expect(JSON.parse((await h.cli(['status', 'vfs', '--json'])).stdout).state).toBe('crashed');
  }, 180_000);

  it('a read-only virtiofs share is refused before anything starts (this virtiofsd has no read-only mode)', async () => {
    await h.apply(`name: vfsro
memory: 256M
kernel: { builtin: test-guest }
shares: [{ path: ${vdir}, tag: hostfs, driver: virtiofs, readOnly: true }]
`);
    const r = await h.cli(['start', 'vfsro']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no read-only mode/);
    expect(virtiofsdPids(path.join(h.dir, 'run/vms/vfsro/'))).toEqual([]);
  }, 60_000);
});
