/**
 * VM-level storage with real QEMU (TCG) and real guests, through the CLI:
 * - a running VM's external snapshot (QMP blockdev-snapshot-sync): the VM keeps running, the guest
 *   keeps answering, the next start opens the top of the chain, revert goes back;
 * - the cloud-init seed: the guest sees its virtio disk and a disk labelled cidata with the files;
 * - `install`: boots once from the CD-ROM, then from disk after a reset (two 512-byte boot
 *   sectors that print to the serial port tell which one SeaBIOS booted); cdrom eject/insert.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { run } from '../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { isoTool } from '../../src/disk/cloud-init.js';
import { qmpOnce } from '../../src/vm/qmp-once.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let paths: Paths;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const hasIso = !!isoTool();

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  await ensureTestGuest(paths);
}, 320_000);
afterAll(async () => {
  await h?.cleanup();
});

const SECTOR = 100;
/** The guest fills sector 100 of /dev/vda with one letter. */
const writeSector = (vm: string, ch: string) =>
  serialExec(paths, vm, `dd if=/dev/zero bs=512 count=1 2>/dev/null | tr '\\0' '${ch}' | dd of=/dev/vda bs=512 seek=${SECTOR} conv=fsync 2>/dev/null`);
const readSectorInGuest = async (vm: string) => (await serialExec(paths, vm, `dd if=/dev/vda bs=1 skip=${SECTOR * 512} count=4 2>/dev/null`)).output.trim();

/** Sector 100 of an image, read on the host through qemu-img (follows the backing chain). */
async function readSectorOnHost(file: string): Promise<string> {
  const out = path.join(h.dir, `sector-${Date.now()}.raw`);
  // qemu-img 7.2's dd counts the skipped blocks in count=.
  await run(['qemu-img', 'dd', '-f', 'qcow2', '-O', 'raw', `if=${file}`, `of=${out}`, 'bs=512', `skip=${SECTOR}`, `count=${SECTOR + 1}`]);
  const b = fs.readFileSync(out);
  fs.rmSync(out);
  return b.subarray(0, 4).toString('latin1');
}

describe('a running VM: external snapshots and the cloud-init seed', () => {
  let base: string;
  beforeAll(async () => {
    base = path.join(h.images, 'snap.qcow2');
    await h.apply(`name: snap
memory: 256M
kernel: { builtin: test-guest }
disks:
  - file: ${base}
    create: { size: 64M }
cloudInit:
  userData: { hostname: snap-guest, packages: [htop] }
stopTimeout: 20
`);
  });

  it.skipIf(!hasIso)('the guest sees its virtio disk and the cidata seed (a read-only virtio disk)', async () => {
    const s = await h.cli(['start', 'snap', '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect((await serialExec(paths, 'snap', 'cat /sys/block/vda/size')).output.trim()).toBe(String((64 * 1024 * 1024) / 512));
    // The ISO9660 volume id: primary volume descriptor at 32768, id at +40.
    const label = await serialExec(paths, 'snap', 'dd if=/dev/vdb bs=1 skip=32808 count=32 2>/dev/null');
    expect(label.output.trim()).toBe('cidata');
    expect((await serialExec(paths, 'snap', 'cat /sys/block/vdb/ro')).output.trim()).toBe('1');
    const files = await serialExec(paths, 'snap', 'mkdir -p /mnt/ci && mount -t iso9660 -o ro /dev/vdb /mnt/ci && ls /mnt/ci && cat /mnt/ci/meta-data /mnt/ci/user-data');
    expect(files.status, files.output).toBe(0);
    expect(files.output).toMatch(/meta-data/);
    expect(files.output).toMatch(/instance-id: iid-snap/);
    expect(files.output).toMatch(/hostname: snap-guest/);
    expect(files.output).toMatch(/#cloud-config/);
  }, 120_000);

  it.skipIf(!hasIso)('takes external snapshots of the running VM; it keeps running and the guest keeps answering', async () => {
    expect((await writeSector('snap', 'A')).status).toBe(0);
    const status0 = json((await h.cli(['status', 'snap', '--json'])).stdout);
    const t0 = Date.now();
    const r = await h.cli(['snapshot', 'snap', 's1', '--json']);
    const tookMs = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    const snap = json(r.stdout);
    expect(snap).toMatchObject({ mode: 'external', name: 's1', disks: [{ id: 'disk0', file: `${base}.s1.qcow2`, backing: base }] });
    console.log(`external snapshot via CLI: ${tookMs} ms`);
    // Same QEMU, still running, now writing to the overlay.
    const st = json((await h.cli(['status', 'snap', '--json'])).stdout);
    expect(st).toMatchObject({ state: 'running', qemuStatus: 'running', pid: status0.pid });
    const blocks = (await qmpOnce(`${h.dir}/run/vms/snap/qmp.sock`, 'query-block')) as { device: string; inserted?: { file: string; backing_file?: string } }[];
    expect(blocks.find((b) => b.device === 'disk0')?.inserted).toMatchObject({ file: `${base}.s1.qcow2`, backing_file: base });
    expect(await readSectorInGuest('snap')).toBe('AAAA');
    expect((await writeSector('snap', 'B')).status).toBe(0);
    expect(await readSectorInGuest('snap')).toBe('BBBB');
    // The base holds the state at the snapshot (QEMU keeps it open read-only: a shared read works).
    const info = json((await h.cli(['disk', 'info', `${base}.s1.qcow2`, '--chain', '--json'])).stdout) as { filename: string }[];
    expect(info.map((i) => i.filename)).toEqual([`${base}.s1.qcow2`, base]);

    // `disk snapshot create` on the running VM's active image takes an external one too.
    const d = await h.cli(['disk', 'snapshot', 'create', `${base}.s1.qcow2`, 's2', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(json(d.stdout)).toMatchObject({ mode: 'external', disks: [{ file: `${base}.s2.qcow2`, backing: `${base}.s1.qcow2` }] });
    expect((await writeSector('snap', 'C')).status).toBe(0);
    // Refusals: a frozen layer, a duplicate name, deleting the base of a running VM.
    const frozen = await h.cli(['disk', 'snapshot', 'create', base, 's3']);
    expect(frozen.code).toBe(2);
    expect(frozen.stderr).toMatch(/SNAPSHOT_NOT_TOP|frozen layer/);
    const dup = await h.cli(['snapshot', 'snap', 's1']);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already has a snapshot "s1"/);
    const rm = await h.cli(['disk', 'rm', base, '--force']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toMatch(/VM "snap"/);
    expect((await serialExec(paths, 'snap', 'echo alive')).output.trim()).toBe('alive');
    expect((await h.cli(['stop', 'snap'])).code).toBe(0);
  }, 120_000);

  it.skipIf(!hasIso)('the next start opens the top of the chain; revert goes back to the snapshot', async () => {
    const list = json((await h.cli(['snapshot', 'snap', '--list', '--json'])).stdout);
    expect(list.disks[0].external.map((x: { name: string }) => x.name)).toEqual(['s1', 's2']);
    expect(list.disks[0].top).toBe(`${base}.s2.qcow2`);
    const s = await h.cli(['start', 'snap', '--wait-for-guest', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(json(s.stdout).argv.join(' ')).toContain(`file=${base}.s2.qcow2,format=qcow2`);
    expect(await readSectorInGuest('snap')).toBe('CCCC');
    const refused = await h.cli(['snapshot', 'snap', 's1', '--revert']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/stop/);
    expect((await h.cli(['stop', 'snap'])).code).toBe(0);

    const r = await h.cli(['snapshot', 'snap', 's1', '--revert', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r.stdout)).toMatchObject({ mode: 'external', disks: ['disk0'] });
    expect(fs.existsSync(`${base}.s2.qcow2`)).toBe(false);
    expect(await readSectorOnHost(`${base}.s1.qcow2`)).toBe('AAAA');
    // A stopped VM's snapshot is internal (qemu-img), on the active layer.
    const internal = await h.cli(['snapshot', 'snap', 'cold', '--json']);
    expect(internal.code, internal.stderr).toBe(0);
    expect(json(internal.stdout)).toMatchObject({ mode: 'internal', disks: [{ file: `${base}.s1.qcow2` }] });
  }, 120_000);
});

/** A 512-byte boot sector that prints `msg` on COM1 (0x3f8) and halts. */
function bootSector(msg: string): Buffer {
  const b = Buffer.alloc(512);
  // cld; xor ax,ax; mov ds,ax; mov si,0x7c17; mov dx,0x3f8; l: lodsb; test al,al; jz h; out dx,al; jmp l; h: cli; hlt; jmp h
  Buffer.from([0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x17, 0x7c, 0xba, 0xf8, 0x03, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xfa, 0xf4, 0xeb, 0xfc]).copy(b, 0);
  Buffer.from(`${msg}\r\n\0`, 'latin1').copy(b, 23);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

async function waitForLog(file: string, text: string, count = 1, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const t = fs.existsSync(file) ? fs.readFileSync(file, 'latin1') : '';
    if (t.split(text).length - 1 >= count) return;
    if (Date.now() > end) throw new Error(`"${text}" ×${count} not in ${file} within ${ms} ms: ${JSON.stringify(t.slice(-300))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!hasIso)('install from an ISO, CD-ROM eject/insert', () => {
  let iso: string;
  let iso2: string;
  let log: string;
  beforeAll(async () => {
    const dir = path.join(h.dir, 'iso');
    fs.mkdirSync(dir);
    const disk = Buffer.alloc(1024 * 1024);
    bootSector('KVT-DISK-BOOT').copy(disk, 0);
    fs.writeFileSync(path.join(h.images, 'inst.raw'), disk);
    const boot = Buffer.alloc(2048);
    bootSector('KVT-CD-BOOT').copy(boot, 0);
    fs.writeFileSync(path.join(dir, 'boot.bin'), boot);
    iso = path.join(h.images, 'install.iso');
    iso2 = path.join(h.images, 'drivers.iso');
    await run(['genisoimage', '-quiet', '-o', iso, '-V', 'KVTINST', '-b', 'boot.bin', '-c', 'boot.cat', '-no-emul-boot', '-boot-load-size', '4', dir]);
    await run(['genisoimage', '-quiet', '-o', iso2, '-V', 'DRIVERS', path.join(dir, 'boot.bin')]);
    await h.apply(`name: inst
memory: 64M
disks: [{ file: ${path.join(h.images, 'inst.raw')}, format: raw }]
boot: disk
stopTimeout: 2
`);
    log = path.join(h.dir, 'run/vms/inst/serial.log');
  });

  it('boots once from the CD-ROM (-boot once=d), then from disk after a reset', async () => {
    const r = await h.cli(['install', 'inst', '--iso', iso, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const argv = json(r.stdout).argv.join(' ');
    expect(argv).toContain(`file=${iso},if=ide,media=cdrom,readonly=on,id=cd0`);
    expect(argv).toMatch(/-boot order=c,once=d/);
    await waitForLog(log, 'KVT-CD-BOOT');
    expect(fs.readFileSync(log, 'latin1')).not.toContain('KVT-DISK-BOOT');
    await qmpOnce(`${h.dir}/run/vms/inst/qmp.sock`, 'system_reset');
    await waitForLog(log, 'KVT-DISK-BOOT');
    expect(fs.readFileSync(log, 'latin1').split('KVT-CD-BOOT').length - 1).toBe(1);
  }, 90_000);

  it('ejects and inserts media on the running VM over QMP', async () => {
    const e = await h.cli(['cdrom', 'inst', 'eject', '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect(json(e.stdout)).toEqual({ id: 'cd0', trayOpen: true });
    const i = await h.cli(['cdrom', 'inst', 'insert', iso2, '--json']);
    expect(i.code, i.stderr).toBe(0);
    expect(json(i.stdout)).toEqual({ id: 'cd0', inserted: iso2, trayOpen: false });
    const bad = await h.cli(['cdrom', 'inst', 'insert', iso2, '--id', 'disk0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no CD-ROM drive "disk0".*\n.*cd0/);
    const missing = await h.cli(['cdrom', 'inst', 'insert', path.join(h.images, 'nope.iso')]);
    expect(missing.code).toBe(2);
    expect((await h.cli(['kill', 'inst'])).code).toBe(0);
  }, 60_000);

  it('a plain start afterwards boots from disk and has no CD-ROM (the definition was not changed)', async () => {
    const r = await h.cli(['start', 'inst', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r.stdout).argv.join(' ')).not.toContain('media=cdrom');
    await waitForLog(log, 'KVT-DISK-BOOT');
    expect(fs.readFileSync(log, 'latin1')).not.toContain('KVT-CD-BOOT');
    const c = await h.cli(['cdrom', 'inst', 'insert', iso2]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/kvmctl install inst --iso/);
    expect((await h.cli(['kill', 'inst'])).code).toBe(0);
  }, 60_000);
});
