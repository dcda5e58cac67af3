/**
 * kvmctl's test guest: Debian's generic kernel (the cloud kernel has no 9p) plus a busybox-static
 * initramfs, built once per machine and cached under `<cache root>/test-guest/<kernel version>/`
 * with a manifest.json.
 *
 * Cache root: $KVMCTL_GUEST_CACHE when set (tests share one build across runs and KVMCTL_HOMEs),
 * else `<paths.data>/guest`. Debian packages are fetched with `apt-get download` into
 * `<cache root>/debs/` and unpacked with `dpkg-deb -x` (never installed). A build happens in a
 * private temp dir under a lock and is renamed into place, so concurrent builders never see a
 * half-written guest.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import lockfile from 'proper-lockfile';
import { KvmError } from '../errors.js';
import { run } from '../host/exec.js';
import { guestCacheRoot, type Paths } from '../host/paths.js';
import { MODULE_DIR, initScript, powerButtonScript, profileScript, udhcpcScript } from './init-script.js';
import { buildInitramfs, modKey, moduleDepends, orderModules, readModinfo, withParentDirs, type CpioEntry } from './initramfs.js';

export type TestGuest = {
  /** bzImage (boots everywhere). */
  kernel: string;
  initrd: string;
  /** Uncompressed ELF kernel, PVH-bootable with QEMU -kernel: boots about twice as fast under TCG. */
  vmlinux?: string;
  kernelVersion: string;
  /** Kernel command line to start from; add kvt.* options (see init-script.ts). */
  appendDefault: string;
};

export type TestGuestManifest = TestGuest & {
  format: 1;
  /** Hash of what goes into the build (init scripts, module list, defaults): a different one is stale. */
  recipe: string;
  dir: string;
  builtAt: string;
  kernelPackage: string;
  kernelPackageVersion: string;
  busyboxVersion: string;
  /** Module files in the initramfs, in the order /init loads them. */
  modules: string[];
  /** Wanted modules that this kernel has built in (nothing to load). */
  modulesBuiltin: string[];
  /** Wanted modules this kernel has neither as a module nor built in. */
  modulesMissing: string[];
  /** Why there is no vmlinux, when there is none. */
  vmlinuxNote?: string;
};

export const APPEND_DEFAULT = 'console=ttyS0 panic=-1 quiet lpj=4000000 no_timer_check mitigations=off';

/** Loaded in this order (dependencies of each are pulled in first when the kernel says so). */
export const GUEST_MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci',
  'virtio_mmio', // the fast profile's microvm machine (virtio-mmio devices, found through ACPI)
  'failover', 'net_failover', 'virtio_net', 'virtio_blk', 'virtio-rng', 'virtio_console',
  '9pnet', '9pnet_virtio', 'netfs', 'fscache', '9p', 'button', 'evdev',
  // cheap extras: CD-ROMs on virtio-scsi, and the KVM PTP clock for time sync
  'virtio_scsi', 'sr_mod', 'isofs', 'ptp_kvm',
  // virtiofs shares (vhost-user-fs-pci)
  'fuse', 'virtiofs',
] as const;

/**
 * The virtio device (the id in its sysfs "device" file under /sys/bus/virtio/devices) a module is for: /init loads these
 * before the ready marker only when the VM has such a device, and the rest just after it, in the
 * background (a hot-plugged disk, NIC or share still finds its driver). Loading every driver up
 * front cost ≈ 0.4 s of a 1.9 s boot under TCG (issue #19, docs/fast-boot.md). Modules not listed
 * (the virtio core and transports, button, evdev) always load first; a dependency takes the device
 * of the modules that need it when they agree.
 */
export const MODULE_DEVICE: Record<string, string> = {
  // NIC, block, console and rng drivers always load (cheap, and a device that registers late
  // must still get its driver before /init configures it).
  virtio_scsi: '0x0008', // sr_mod and isofs always load: CD-ROMs are IDE/AHCI devices too
  '9pnet': '0x0009', '9pnet_virtio': '0x0009', netfs: '0x0009', fscache: '0x0009', '9p': '0x0009',
  fuse: '0x001a', virtiofs: '0x001a',
  ptp_kvm: 'later',
};

/** Modules that may refuse to load (ptp_kvm needs KVM's paravirtual clock: not under TCG). */
const OPTIONAL_MODULES = ['ptp_kvm'];

const KERNEL_META = 'linux-image-amd64';
const BUSYBOX = 'busybox-static';

type Log = (msg: string) => void;

const ACPID_CONF = 'PWRF PWRF/00000080\nPWRB PWRF/00000080\n';
/** Bump when build() changes what it produces in a way the hashed texts below do not show. */
const BUILD_REVISION = 3; // 2: drivers load only for devices present (MODULE_DEVICE); 3: NIC/block always, 9p when kvt.9p= asks

let recipeHash: string | undefined;
/** Identifies the recipe: cached builds made from another recipe are rebuilt, never booted. */
export function guestRecipe(): string {
  recipeHash ??= createHash('sha256')
    .update(JSON.stringify([
      BUILD_REVISION, GUEST_MODULES, OPTIONAL_MODULES, APPEND_DEFAULT, ACPID_CONF,
      initScript({ modules: ['m.ko'], optional: ['o.ko'], kernelVersion: 'v' }), powerButtonScript(), udhcpcScript(), profileScript(),
    ]))
    .digest('hex')
    .slice(0, 16);
  return recipeHash;
}

export { guestCacheRoot } from '../host/paths.js';

/** The built guest, building it first when this machine has none (or `rebuild`). */
export async function ensureTestGuest(paths: Paths, opts: { log?: Log; rebuild?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<TestGuestManifest> {
  const base = path.join(guestCacheRoot(paths, opts.env), 'test-guest');
  if (!opts.rebuild) {
    const have = await findBuilt(base);
    if (have) return have;
  }
  await fsp.mkdir(base, { recursive: true });
  let release: (() => Promise<void>) | undefined;
  try {
    release = await lockfile.lock(base, {
      lockfilePath: path.join(base, '.build.lock'),
      stale: 30_000,
      update: 5_000,
      retries: { retries: 400, minTimeout: 500, maxTimeout: 1_000, factor: 1 },
      // The default throws asynchronously (an uncaught exception); the temp-dir + rename keeps the
      // cache consistent even if another builder took the lock over.
      onCompromised: (e) => opts.log?.(`build lock lost (${e.message}); continuing`),
    });
  } catch (e) {
    throw new KvmError('GUEST_LOCKED', `another kvmctl is building the test guest in ${base} and did not finish`, {
      hint: `wait for it, or remove ${path.join(base, '.build.lock')} if no build is running`,
      cause: e,
    });
  }
  try {
    if (!opts.rebuild) {
      const have = await findBuilt(base); // someone else built it while we waited
      if (have) return have;
    }
    return await build(base, path.join(guestCacheRoot(paths, opts.env), 'debs'), opts.log ?? (() => {}));
  } finally {
    await release().catch(() => {});
  }
}

/** The newest complete build in the cache, or undefined. Never builds. */
export async function findTestGuest(paths: Paths, env?: NodeJS.ProcessEnv): Promise<TestGuestManifest | undefined> {
  return findBuilt(path.join(guestCacheRoot(paths, env), 'test-guest'));
}

async function findBuilt(base: string): Promise<TestGuestManifest | undefined> {
  let names: string[];
  try {
    names = await fsp.readdir(base);
  } catch {
    return undefined;
  }
  const found: TestGuestManifest[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    const m = await readManifest(path.join(base, n));
    if (m) found.push(m);
  }
  found.sort((a, b) => b.builtAt.localeCompare(a.builtAt));
  return found[0];
}

/** A manifest whose files all exist; paths are re-resolved against the directory it sits in. */
async function readManifest(dir: string): Promise<TestGuestManifest | undefined> {
  let m: TestGuestManifest;
  try {
    m = JSON.parse(await fsp.readFile(path.join(dir, 'manifest.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (m?.format !== 1 || m.recipe !== guestRecipe() || !m.kernel || !m.initrd || !m.kernelVersion) return undefined;
  const at = (p: string | undefined) => (p ? path.join(dir, path.basename(p)) : undefined);
  const out: TestGuestManifest = { ...m, dir, kernel: at(m.kernel)!, initrd: at(m.initrd)!, vmlinux: at(m.vmlinux) };
  for (const f of [out.kernel, out.initrd, out.vmlinux]) if (f && !fs.existsSync(f)) return undefined;
  return out;
}

/* ------------------------------------------------------------------------- packages ---- */

/** Field `name` of `apt-cache show --no-all-versions PKG` (the candidate), or undefined. */
async function aptField(pkg: string, name: string): Promise<string | undefined> {
  const r = await run(['apt-cache', 'show', '--no-all-versions', pkg], { allowFailure: true, timeoutMs: 60_000 });
  if (r.exitCode !== 0) return undefined;
  const m = new RegExp(`^${name}: (.*)$`, 'm').exec(r.stdout);
  return m?.[1]?.trim();
}

async function candidate(pkg: string): Promise<string | undefined> {
  const r = await run(['apt-cache', 'policy', pkg], { allowFailure: true, timeoutMs: 60_000 });
  const m = /^\s*Candidate: (\S+)/m.exec(r.stdout);
  return m && m[1] !== '(none)' ? m[1] : undefined;
}

async function resolvePackages(log: Log): Promise<{ kernelPkg: string; kernelVer: string; busyboxVer: string }> {
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb']) {
    const r = await run([tool, '--version'], { allowFailure: true, timeoutMs: 30_000 });
    if (r.exitCode !== 0)
      throw new KvmError('GUEST_NEEDS_DEBIAN', `building the test guest needs ${tool} (it fetches Debian's kernel and busybox packages)`, {
        hint: 'build it on a Debian host (kvmctl image test-guest) and point KVMCTL_GUEST_CACHE at a copy of that cache dir',
      });
  }
  if (!(await candidate(KERNEL_META)) || !(await candidate(BUSYBOX))) {
    log('apt knows no candidate for the kernel or busybox: running apt-get update');
    await run(['apt-get', 'update'], { timeoutMs: 300_000, errorCode: 'GUEST_APT_FAILED', hint: 'check that the Debian archive is reachable (apt sources)' });
  }
  const depends = await aptField(KERNEL_META, 'Depends');
  const kernelPkg = /\b(linux-image-[0-9][^\s,|]*-amd64)\b/.exec(depends ?? '')?.[1];
  const kernelVer = kernelPkg ? await candidate(kernelPkg) : undefined;
  const busyboxVer = await candidate(BUSYBOX);
  if (!kernelPkg || !kernelVer || !busyboxVer) {
    throw new KvmError('GUEST_PACKAGES', `apt cannot find ${!kernelPkg ? `the kernel package behind ${KERNEL_META}` : !kernelVer ? kernelPkg : BUSYBOX}`, {
      hint: 'this needs a Debian (amd64) host with the main archive in its apt sources; try apt-get update',
    });
  }
  return { kernelPkg, kernelVer, busyboxVer };
}

/** A .deb from the cache dir, else `apt-get download` (in a private dir, then renamed in). */
async function fetchDeb(pkg: string, version: string, debs: string, tmp: string, log: Log): Promise<string> {
  const file = `${pkg}_${version.replace(/:/g, '%3a')}_amd64.deb`;
  const cached = path.join(debs, file);
  if (fs.existsSync(cached)) return cached;
  log(`downloading ${pkg} ${version}`);
  const dl = path.join(tmp, 'dl');
  await fsp.mkdir(dl, { recursive: true });
  // As root, apt drops to _apt, which cannot write our dir: say it may stay root.
  const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
  await run(['apt-get', 'download', ...sandbox, `${pkg}=${version}`], {
    cwd: dl,
    timeoutMs: 600_000,
    errorCode: 'GUEST_APT_FAILED',
    hint: 'check that the Debian archive is reachable',
  });
  const got = (await fsp.readdir(dl)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!got) throw new KvmError('GUEST_APT_FAILED', `apt-get download ${pkg}=${version} left no .deb in ${dl}`);
  await fsp.mkdir(debs, { recursive: true });
  await fsp.rename(path.join(dl, got), cached);
  return cached;
}

/* ---------------------------------------------------------------------------- kernel ---- */

const MAGICS: [string, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18])],
  ['bzip2', Buffer.from('BZh')],
  ['lzma', Buffer.from([0x5d, 0x00, 0x00])],
];

/**
 * Where the compressed kernel sits in an x86 bzImage: the setup header (boot protocol ≥ 2.08)
 * gives payload_offset/length relative to the protected-mode code, which starts after
 * (setup_sects + 1) × 512 bytes.
 */
export function bzImagePayload(img: Buffer): { format: string; payload: Buffer } {
  if (img.length < 0x260 || img.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new RangeError('not a bzImage (no HdrS setup header)');
  if (img.readUInt16LE(0x206) < 0x208) throw new RangeError(`boot protocol ${img.readUInt16LE(0x206).toString(16)} is too old to locate the payload`);
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const len = img.readUInt32LE(0x24c);
  if (start + len > img.length) throw new RangeError('bzImage payload runs past the end of the file');
  const payload = img.subarray(start, start + len);
  const format = MAGICS.find(([, m]) => payload.subarray(0, m.length).equals(m))?.[0] ?? 'unknown';
  return { format, payload };
}

/** Decompress the bzImage payload into `out` (an ELF vmlinux). Returns a note when it cannot. */
async function extractVmlinux(bzImage: string, out: string, tmp: string): Promise<string | undefined> {
  let p: { format: string; payload: Buffer };
  try {
    p = bzImagePayload(await fsp.readFile(bzImage));
  } catch (e) {
    return `no vmlinux: ${(e as Error).message}`;
  }
  // The kernel build appends the uncompressed size (4 bytes) after the stream.
  const stream = p.payload.subarray(0, p.payload.length - 4);
  const tools: Record<string, string[] | undefined> = {
    xz: ['xz', '--decompress', '--single-stream', '--keep', '--force'],
    zstd: ['zstd', '--decompress', '--quiet', '--force'],
  };
  if (p.format === 'gzip') {
    await fsp.writeFile(out, gunzipSync(stream));
  } else if (tools[p.format]) {
    const packed = path.join(tmp, `vmlinux.${p.format === 'xz' ? 'xz' : 'zst'}`);
    await fsp.writeFile(packed, stream);
    const r = await run([...tools[p.format]!, packed], { allowFailure: true, timeoutMs: 300_000 });
    if (r.exitCode !== 0) return `no vmlinux: ${tools[p.format]![0]} could not decompress the ${p.format} payload (${r.stderr.trim() || `exit ${r.exitCode}`})`;
    await fsp.rename(packed.replace(/\.(xz|zst)$/, ''), out);
    await fsp.rm(packed, { force: true });
  } else {
    return `no vmlinux: the kernel payload is ${p.format}, which kvmctl does not decompress`;
  }
  const head = Buffer.alloc(4);
  const fh = await fsp.open(out, 'r');
  await fh.read(head, 0, 4, 0).finally(() => fh.close());
  if (head.readUInt32BE(0) !== 0x7f454c46) {
    await fsp.rm(out, { force: true });
    return 'no vmlinux: the decompressed payload is not an ELF file';
  }
  return undefined;
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Each module's device (MODULE_DEVICE); a dependency inherits it when every module needing it has the same one. Pure. */
export function moduleDevices(order: readonly string[], depsOf: (k: string) => readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of order) if (MODULE_DEVICE[modKey(k)]) out.set(k, MODULE_DEVICE[modKey(k)]!);
  // Walk from the end (dependents come after their dependencies in load order).
  for (const k of [...order].reverse()) {
    if (out.has(k)) continue;
    const users = order.filter((u) => depsOf(u).includes(k));
    const ds = new Set(users.map((u) => out.get(u)));
    if (users.length && ds.size === 1 && [...ds][0]) out.set(k, [...ds][0]!);
  }
  return out;
}

/** Modules in load order, as uncompressed .ko files ready for busybox insmod. */
async function pickModules(modRoot: string, tmp: string, log: Log): Promise<{ files: { name: string; path: string; device?: string }[]; builtin: string[]; missing: string[] }> {
  const index = new Map<string, string>();
  for (const f of await walk(path.join(modRoot, 'kernel'))) {
    const m = /\/([^/]+)\.ko(\.(xz|zst|gz))?$/.exec(f);
    if (m) index.set(modKey(m[1]!), f);
  }
  const builtinSet = new Set<string>();
  try {
    for (const line of (await fsp.readFile(path.join(modRoot, 'modules.builtin'), 'utf8')).split('\n')) {
      const m = /\/([^/]+)\.ko$/.exec(line.trim());
      if (m) builtinSet.add(modKey(m[1]!));
    }
  } catch {
    /* no list: every missing module counts as missing */
  }
  const plain = new Map<string, string>();
  const deps = new Map<string, string[]>();
  const uncompress = async (key: string, file: string): Promise<string> => {
    if (file.endsWith('.ko')) return file;
    const dst = path.join(tmp, 'ko', path.basename(file).replace(/\.(xz|zst|gz)$/, ''));
    await fsp.mkdir(path.dirname(dst), { recursive: true });
    if (file.endsWith('.gz')) await fsp.writeFile(dst, gunzipSync(await fsp.readFile(file)));
    else {
      // run() captures text, not bytes: let the tool write the file next to a copy.
      const tool = file.endsWith('.xz') ? 'xz' : 'zstd';
      const packed = path.join(tmp, 'ko', path.basename(file));
      await fsp.copyFile(file, packed);
      await run([tool, '--decompress', '--force', ...(tool === 'zstd' ? ['--quiet', '--rm'] : []), packed], {
        errorCode: 'GUEST_BUILD_FAILED',
        hint: `install ${tool} (kernel module ${key} is compressed)`,
      });
    }
    return dst;
  };
  // depsOf must be synchronous: resolve the whole closure first.
  const pending = GUEST_MODULES.map(modKey);
  while (pending.length) {
    const k = pending.shift()!;
    if (plain.has(k) || !index.has(k)) continue;
    const ko = await uncompress(k, index.get(k)!);
    plain.set(k, ko);
    const d = moduleDepends(readModinfo(await fsp.readFile(ko))).map(modKey);
    deps.set(k, d);
    pending.push(...d);
  }
  const { order, missing } = orderModules(GUEST_MODULES, (k) => deps.get(k));
  const builtin = missing.filter((m) => builtinSet.has(modKey(m)));
  const absent = missing.filter((m) => !builtinSet.has(modKey(m)));
  if (builtin.length) log(`built into this kernel (nothing to load): ${builtin.join(', ')}`);
  if (absent.length) log(`not in this kernel, skipped: ${absent.join(', ')}`);
  const device = moduleDevices(order, (k) => deps.get(k) ?? []);
  return { files: order.map((k) => ({ name: path.basename(plain.get(k)!), path: plain.get(k)!, ...(device.get(k) ? { device: device.get(k) } : {}) })), builtin, missing: absent };
}

/* ----------------------------------------------------------------------------- build ---- */

async function build(base: string, debs: string, log: Log): Promise<TestGuestManifest> {
  const t0 = Date.now();
  const { kernelPkg, kernelVer, busyboxVer } = await resolvePackages(log);
  const kernelVersion = kernelPkg.replace(/^linux-image-/, '');
  const tmp = await fsp.mkdtemp(path.join(base, `.build-${process.pid}-`));
  try {
    const kdeb = await fetchDeb(kernelPkg, kernelVer, debs, tmp, log);
    const bdeb = await fetchDeb(BUSYBOX, busyboxVer, debs, tmp, log);
    log(`unpacking ${path.basename(kdeb)} and ${path.basename(bdeb)}`);
    const kdir = path.join(tmp, 'kernel');
    const bdir = path.join(tmp, 'busybox');
    await run(['dpkg-deb', '-x', kdeb, kdir], { timeoutMs: 300_000, errorCode: 'GUEST_BUILD_FAILED' });
    await run(['dpkg-deb', '-x', bdeb, bdir], { timeoutMs: 60_000, errorCode: 'GUEST_BUILD_FAILED' });
    const modRoot = path.join(kdir, 'lib/modules', kernelVersion);
    const vmlinuz = path.join(kdir, 'boot', `vmlinuz-${kernelVersion}`);
    const busybox = path.join(bdir, 'bin/busybox');
    for (const f of [modRoot, vmlinuz, busybox])
      if (!fs.existsSync(f)) throw new KvmError('GUEST_BUILD_FAILED', `${path.relative(tmp, f)} is missing from the unpacked packages`, { hint: 'the package layout changed; report this' });

    const mods = await pickModules(modRoot, tmp, log);
    const out = path.join(tmp, 'out');
    const final = path.join(base, kernelVersion);
    await fsp.mkdir(out);
    const entries: CpioEntry[] = [
      ...['dev', 'proc', 'sys', 'tmp', 'run', 'mnt', 'root', 'sbin', 'usr/bin', 'usr/sbin', 'var'].map((name) => ({ type: 'dir' as const, name })),
      { type: 'char', name: 'dev/console', major: 5, minor: 1, mode: 0o600 },
      { type: 'char', name: 'dev/null', major: 1, minor: 3, mode: 0o666 },
      { type: 'file', name: 'bin/busybox', data: await fsp.readFile(busybox), mode: 0o755 },
      { type: 'symlink', name: 'bin/sh', target: 'busybox' },
      { type: 'file', name: 'init', data: initScript({ modules: mods.files.map((f) => f.name), devices: Object.fromEntries(mods.files.filter((f) => f.device).map((f) => [f.name, f.device!])), optional: OPTIONAL_MODULES.map((m) => `${m}.ko`), kernelVersion }), mode: 0o755 },
      { type: 'file', name: 'etc/acpid.conf', data: ACPID_CONF },
      { type: 'file', name: 'etc/acpi/PWRF/00000080', data: powerButtonScript(), mode: 0o755 },
      { type: 'file', name: 'etc/udhcpc.script', data: udhcpcScript(), mode: 0o755 },
      { type: 'file', name: 'etc/profile', data: profileScript() },
      { type: 'file', name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n' },
      { type: 'file', name: 'etc/group', data: 'root:x:0:\n' },
      { type: 'file', name: 'etc/hostname', data: 'kvt-guest\n' },
      ...(await Promise.all(mods.files.map(async (f) => ({ type: 'file' as const, name: `${MODULE_DIR.slice(1)}/${f.name}`, data: await fsp.readFile(f.path) })))),
    ];
    await fsp.writeFile(path.join(out, 'initrd.img'), buildInitramfs(withParentDirs(entries), { mtime: Math.floor(t0 / 1000) }));
    await fsp.copyFile(vmlinuz, path.join(out, 'vmlinuz'));
    await fsp.copyFile(path.join(kdir, 'boot', `config-${kernelVersion}`), path.join(out, 'config')).catch(() => {});
    log('extracting the uncompressed kernel (vmlinux) from the bzImage');
    const vmlinuxNote = await extractVmlinux(vmlinuz, path.join(out, 'vmlinux'), tmp);
    if (vmlinuxNote) log(vmlinuxNote);

    const manifest: TestGuestManifest = {
      format: 1,
      recipe: guestRecipe(),
      dir: final,
      kernel: path.join(final, 'vmlinuz'),
      initrd: path.join(final, 'initrd.img'),
      ...(vmlinuxNote ? { vmlinuxNote } : { vmlinux: path.join(final, 'vmlinux') }),
      kernelVersion,
      appendDefault: APPEND_DEFAULT,
      builtAt: new Date().toISOString(),
      kernelPackage: kernelPkg,
      kernelPackageVersion: kernelVer,
      busyboxVersion: busyboxVer,
      modules: mods.files.map((f) => f.name),
      modulesBuiltin: mods.builtin,
      modulesMissing: mods.missing,
    };
    await fsp.writeFile(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await install(out, final, tmp);
    await pruneStale(base, final);
    log(`built the test guest in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${final}`);
    const m = await readManifest(final);
    if (!m) throw new KvmError('GUEST_BUILD_FAILED', `the test guest in ${final} is incomplete after the build`);
    return m;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Rename the finished build into place. We hold the build lock and found no current build, so
 * whatever sits at `final` is stale (another recipe) or being rebuilt on request: move it aside
 * (into our temp dir, removed afterwards). QEMUs already running from it keep their copy in memory.
 */
async function install(out: string, final: string, tmp: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fsp.rename(out, final);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 3)
        throw new KvmError('GUEST_BUILD_FAILED', `cannot move the built test guest to ${final}: ${(e as Error).message}`, { cause: e });
      await fsp.rename(final, path.join(tmp, `old-${attempt}`)).catch(() => {});
    }
  }
}

/** Remove builds of other kernel versions made from another recipe (each holds a ~65 MB vmlinux). */
async function pruneStale(base: string, keep: string): Promise<void> {
  for (const n of await fsp.readdir(base)) {
    const dir = path.join(base, n);
    if (n.startsWith('.') || dir === keep || !fs.existsSync(path.join(dir, 'manifest.json'))) continue;
    if (!(await readManifest(dir))) await fsp.rm(dir, { recursive: true, force: true });
  }
}
