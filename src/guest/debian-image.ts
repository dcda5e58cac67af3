/**
 * kvmctl's Debian 12 guest image: a real Debian (systemd, udev, the cloud kernel, qemu-guest-agent,
 * openssh) on a GPT disk that boots through UEFI with Secure Boot (Debian's Microsoft-signed shim,
 * its signed GRUB and signed kernel). Built with mmdebstrap from Debian's archive, no loop devices
 * and no mounts: the root is an ext4 made by `mkfs.ext4 -d`, the ESP a FAT made with mtools, the
 * partition table written by sfdisk into a plain file, the result converted to qcow2.
 *
 * Cached at `<guest cache root>/debian-12/<key>/disk.qcow2` (a storage root), keyed by everything
 * it is built from (debian-layout.ts). VMs never write to it: they boot an overlay
 * (`kvmctl image debian-12 --disk FILE`), so a cached base is never changed and never deleted by
 * kvmctl (overlays depend on it). The build happens in a private dir under a lock and is renamed
 * into place whole; a failed build leaves nothing.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import { guestCacheRoot, type Paths } from '../host/paths.js';
import * as L from './debian-layout.js';

export type DebianImage = {
  format: 1;
  name: typeof L.DEBIAN_IMAGE;
  key: string;
  dir: string;
  disk: string;
  kernelVersion: string;
  rootUuid: string;
  espUuid: string;
  virtualSize: number;
  packages: Record<string, string>;
  builtAt: string;
  buildSeconds: number;
};

type Log = (m: string) => void;
const TOOLS = ['mmdebstrap', 'mkfs.ext4', 'mkfs.fat', 'mmd', 'mcopy', 'sfdisk', 'qemu-img'];
const NOTED = ['linux-image-cloud-amd64', 'qemu-guest-agent', 'shim-signed', 'grub-efi-amd64-signed', 'systemd'];

export const debianImageBase = (paths: Paths, env?: NodeJS.ProcessEnv) => path.join(guestCacheRoot(paths, env), L.DEBIAN_IMAGE);

/** The cached image for the current recipe, or undefined. Never builds. */
export function findDebianImage(paths: Paths, env?: NodeJS.ProcessEnv): DebianImage | undefined {
  const dir = path.join(debianImageBase(paths, env), L.imageKey());
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as DebianImage;
    const disk = path.join(dir, 'disk.qcow2');
    if (m.format !== 1 || m.key !== L.imageKey() || !fs.existsSync(disk)) return undefined;
    return { ...m, dir, disk };
  } catch {
    return undefined;
  }
}

/** The cached image, building it first when there is none (≈2 min and ≈150 MB of downloads here). */
export async function ensureDebianImage(paths: Paths, opts: { log?: Log; env?: NodeJS.ProcessEnv } = {}): Promise<DebianImage> {
  const have = findDebianImage(paths, opts.env);
  if (have) return have;
  const log = opts.log ?? (() => {});
  if (process.getuid?.() !== 0)
    throw new KvmError('IMAGE_NEEDS_ROOT', 'building the Debian image needs root (mmdebstrap --mode=root keeps file owners for mkfs.ext4 -d)', { exit: 2, hint: 'run kvmctl image debian-12 as root once; the image is cached for everyone' });
  for (const t of TOOLS) {
    if (!onPath(t))
      throw new KvmError('IMAGE_TOOL_MISSING', `building the Debian image needs ${t}`, { exit: 2, hint: 'apt-get install mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-utils' });
  }
  const base = debianImageBase(paths, opts.env);
  fs.mkdirSync(base, { recursive: true });
  let release: (() => Promise<void>) | undefined;
  try {
    release = await lockfile.lock(base, { lockfilePath: path.join(base, '.build.lock'), stale: 60_000, update: 10_000, retries: { retries: 1200, minTimeout: 1000, maxTimeout: 1000, factor: 1 }, onCompromised: (e) => log(`build lock lost (${e.message}); continuing`) });
  } catch (e) {
    throw new KvmError('IMAGE_LOCKED', `another kvmctl is building the Debian image in ${base}`, { hint: `wait for it, or remove ${path.join(base, '.build.lock')} if no build runs`, cause: e });
  }
  try {
    return findDebianImage(paths, opts.env) ?? (await build(base, log, opts.env));
  } finally {
    await release().catch(() => undefined);
  }
}

async function build(base: string, log: Log, env?: NodeJS.ProcessEnv): Promise<DebianImage> {
  const t0 = Date.now();
  const key = L.imageKey();
  const tmp = path.join(base, `.build-${process.pid}-${randomBytes(3).toString('hex')}`);
  const step = (m: string) => log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}`);
  const tool = (argv: string[], o: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}) =>
    run(argv, { timeoutMs: 600_000, errorCode: 'IMAGE_BUILD_FAILED', hint: 'the build dir is removed; run again (downloads are retried)', ...o });
  fs.mkdirSync(tmp);
  try {
    const root = path.join(tmp, 'root');
    const mirror = (env ?? process.env).KVMCTL_DEBIAN_MIRROR;
    step(`mmdebstrap ${L.SUITE} (${L.PACKAGES.join(' ')})`);
    await tool(['mmdebstrap', '--variant=minbase', '--mode=root', `--include=${L.PACKAGES.join(',')}`, '--aptopt=Acquire::Retries "3"', L.SUITE, root, ...L.MIRRORS(mirror)], { timeoutMs: 1_800_000 });
    const kernelVersion = fs.readdirSync(path.join(root, 'boot')).map((f) => /^vmlinuz-(.+)$/.exec(f)?.[1]).find(Boolean);
    if (!kernelVersion) throw new KvmError('IMAGE_BUILD_FAILED', 'mmdebstrap finished but the root has no /boot/vmlinuz-*');
    const ids: L.Ids = { rootUuid: randomUUID(), espVolid: randomBytes(4).toString('hex') };
    for (const [rel, text] of Object.entries(L.rootFiles(ids))) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    }
    for (const [rel, target] of Object.entries(L.ROOT_LINKS)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.rmSync(path.join(root, rel), { force: true });
      fs.symlinkSync(target, path.join(root, rel));
    }
    const packages = installedVersions(root, NOTED);

    step(`ext4 root (${L.ROOT_MIB} MiB, mkfs.ext4 -d)`);
    const rootImg = path.join(tmp, 'root.img');
    sparseFile(rootImg, L.LAYOUT.rootSize);
    await tool(['mkfs.ext4', '-q', '-F', '-L', 'debian-root', '-U', ids.rootUuid, '-O', L.EXT4_FEATURES, '-d', root, rootImg]);

    step('EFI system partition (shim, signed GRUB, MokManager, grub.cfg)');
    const esp = path.join(tmp, 'esp.img');
    await tool(['mkfs.fat', '-F', '32', '-n', 'ESP', '-i', ids.espVolid, '-C', esp, String(L.LAYOUT.espSize / 1024)]);
    const mt = { env: { MTOOLS_SKIP_CHECK: '1' } };
    await tool(['mmd', '-i', esp, '::/EFI', '::/EFI/BOOT', '::/EFI/debian'], mt);
    const cfg = path.join(tmp, 'grub.cfg');
    fs.writeFileSync(cfg, L.grubCfg(ids, kernelVersion));
    const put: [string, string][] = [
      [path.join(root, 'usr/lib/shim/shimx64.efi.signed'), '::/EFI/BOOT/BOOTX64.EFI'],
      [path.join(root, 'usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed'), '::/EFI/BOOT/grubx64.efi'],
      [path.join(root, 'usr/lib/shim/mmx64.efi.signed'), '::/EFI/BOOT/mmx64.efi'],
      [cfg, '::/EFI/debian/grub.cfg'],
      [cfg, '::/EFI/BOOT/grub.cfg'],
    ];
    for (const [src, dst] of put) await tool(['mcopy', '-i', esp, src, dst], mt);

    step('GPT disk (sfdisk) and qcow2');
    const raw = path.join(tmp, 'disk.raw');
    sparseFile(raw, L.LAYOUT.diskSize);
    await tool(['sfdisk', '--quiet', raw], { input: L.sfdiskScript() });
    copyInto(esp, raw, L.LAYOUT.espStart);
    copyInto(rootImg, raw, L.LAYOUT.rootStart);
    for (const f of [rootImg, esp]) fs.rmSync(f);
    fs.rmSync(root, { recursive: true, force: true });
    await tool(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, path.join(tmp, 'disk.qcow2')]);
    fs.rmSync(raw);

    const dir = path.join(base, key);
    const m: DebianImage = {
      format: 1, name: L.DEBIAN_IMAGE, key, dir, disk: path.join(dir, 'disk.qcow2'), kernelVersion, rootUuid: ids.rootUuid, espUuid: L.espUuid(ids.espVolid),
      virtualSize: L.LAYOUT.diskSize, packages, builtAt: new Date().toISOString(), buildSeconds: Math.round((Date.now() - t0) / 100) / 10,
    };
    fs.writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(m, null, 2)}\n`);
    fs.chmodSync(path.join(tmp, 'disk.qcow2'), 0o444); // a base image: overlays only
    fs.renameSync(tmp, dir);
    step(`done: ${m.disk}`);
    return m;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

const onPath = (t: string) =>
  [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'].some((d) => d && fs.existsSync(path.join(d, t)));

function sparseFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.ftruncateSync(fd, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Copy `src` into `dst` at `offset`, skipping all-zero MiB blocks (dst is sparse and zero already). */
function copyInto(src: string, dst: string, offset: number): void {
  const a = fs.openSync(src, 'r');
  const b = fs.openSync(dst, 'r+');
  const buf = Buffer.alloc(L.MIB);
  const zero = Buffer.alloc(L.MIB);
  try {
    for (let pos = 0; ; pos += L.MIB) {
      const n = fs.readSync(a, buf, 0, L.MIB, pos);
      if (n <= 0) break;
      if (!(n === L.MIB && buf.equals(zero))) fs.writeSync(b, buf, 0, n, offset + pos);
    }
  } finally {
    fs.closeSync(a);
    fs.closeSync(b);
  }
}

/** Versions of some packages, from the root's dpkg status. */
function installedVersions(root: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const status = fs.readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8');
  for (const block of status.split('\n\n')) {
    const name = /^Package: (.+)$/m.exec(block)?.[1];
    const ver = /^Version: (.+)$/m.exec(block)?.[1];
    if (name && ver && names.includes(name)) out[name] = ver;
  }
  return out;
}
