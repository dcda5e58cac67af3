/**
 * The VM page's Hardware card (web/src/components/VmHardware.tsx) in a real browser (Debian's
 * Chromium through playwright-core) against the real `kvmctl serve` on loopback TCP and a real
 * QEMU test guest under TCG (one host thread per vCPU), with the API routes under it
 * (src/api/routes/tuning.ts):
 *  - the pinning shown is what /proc/PID/task/TID/status says (Cpus_allowed_list) for every
 *    QEMU thread (vCPUs, the disk's I/O thread, the emulator's), next to cpu.pin's wanted lists;
 *  - vCPUs set from the UI (1 → 2): QMP query-cpus-fast lists two, the new thread has its
 *    cpu.pin entry, the table shows the new thread as /proc has it;
 *  - the balloon set from the UI: the target reaches QEMU (the answer carries it, query-balloon
 *    answers); the test guest has no virtio_balloon driver (its initramfs does not carry it), so
 *    `actual` stays — the second block does it with the Debian 12 guest, whose driver inflates,
 *    and asserts query-balloon's `actual` falls to the target;
 *  - USB: there are no USB devices on this machine. The host list comes from a sysfs fixture
 *    (KVMCTL_SYSFS = test/fixtures/sysfs/usb + two-node, copied to a temp dir); attach by
 *    vendor:product from the UI plugs a real usb-host device into QEMU (qom-get vendorid), which
 *    waits for a host device that never comes; detach removes it (qom-list);
 *  - PCI: a stopped VM with pci: lists its device with the fixture's driver and IOMMU group;
 *  - API: user mistakes are 400/404/409 (never 500), an operator may set vCPUs and memory but not
 *    attach USB (403), every change is a task.
 * Screenshots: test-output/web-ui-hardware/.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { qmpOnce } from '../../src/vm/qmp-once.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-hardware');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const CPUS = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
const MiB = 2 ** 20;
const json = <T = any>(s: string): T => JSON.parse(s) as T;
const allowed = (pid: number, tid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1];
type Row = { tid: number; what: string; wanted: string; actual: string };
const pinRows = (page: TestBrowser['page']): Promise<Row[]> =>
  page.$$eval('[data-testid=hw-pinning] tbody tr', (trs) =>
    trs.map((tr) => {
      const td = [...tr.querySelectorAll('td')].map((t) => t.textContent?.trim() ?? '');
      return { tid: Number(tr.getAttribute('data-tid')), what: td[0]!, wanted: td[2]!, actual: td[3]! };
    }),
  );

describe.skipIf(!hasChromium() || !WEB_BUILT || !canBootGuest() || !/^0-[1-9]/.test(CPUS))('web UI: the Hardware card (Chromium, kvmctl serve, real QEMU test guest)', () => {
  let home: Home;
  let srv: Served;
  let b: TestBrowser;
  let pid = 0;
  let qmp = '';
  let sys = '';
  const admin = randomBytes(16).toString('hex');
  let operator = '';
  const pageErrors: string[] = [];
  const api = (token: string, method: string, url: string, body?: unknown) =>
    fetch(`${srv.base}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    const mk = await home.cli(['disk', 'create', path.join(home.images, 'hw.qcow2'), '16M', '--format', 'qcow2']);
    expect(mk.code, mk.stderr).toBe(0);
    await home.apply(`name: hw
cpu: { count: 1, maxCount: 2, pin: { vcpus: [1, 0], emulator: 1, iothreads: 0 } }
memory: { size: 256M, balloon: true }
disks: [{ file: hw.qcow2, iothread: auto }]
usbController: true
kernel: { builtin: test-guest }
stopTimeout: 5
---
name: gpu
memory: 256M
kernel: { builtin: test-guest }
pci: [{ host: "0000:01:00.0" }]
`);
    await ensureTestGuest(resolvePaths(home.env));
    const s = await home.cli(['start', 'hw', '--wait-for-guest', '--json'], { timeoutMs: 240_000 });
    expect(s.code, s.stderr).toBe(0);
    pid = json(s.stdout).pid;
    qmp = path.join(home.dir, 'run/vms/hw/qmp.sock');
    // No USB and no PCI devices here: serve reads a sysfs fixture (copied: nothing writes to test/fixtures).
    sys = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-sys-'));
    fs.cpSync(path.join(ROOT, 'test/fixtures/sysfs/two-node'), sys, { recursive: true, verbatimSymlinks: true });
    fs.cpSync(path.join(ROOT, 'test/fixtures/sysfs/usb/bus/usb'), path.join(sys, 'bus/usb'), { recursive: true, verbatimSymlinks: true });
    const t = await home.cli(['serve', 'token', 'add', 'otto', '--role', 'operator']);
    expect(t.code, t.stderr).toBe(0);
    operator = t.stdout.trim().split('\n').pop()!;
    srv = await startServe(home, admin, 30_000, { KVMCTL_SYSFS: sys });
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.setDefaultTimeout(30_000);
  }, 320_000);

  afterAll(async () => {
    if (srv) await api(admin, 'POST', '/api/vms/hw/kill').catch(() => undefined);
    await b?.close();
    await srv?.stop();
    await home?.cleanup();
    if (sys) fs.rmSync(sys, { recursive: true, force: true });
  });

  it('shows the pinning each QEMU thread has as /proc says, next to cpu.pin', async () => {
    await b.page.goto(`${srv.base}/?token=${admin}#/vms/hw/hardware`);
    await b.page.locator('[data-testid=hw-pinning] tbody tr').first().waitFor();
    const rows = await pinRows(b.page);
    const threads = fs.readdirSync(`/proc/${pid}/task`).map(Number);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const r of rows) if (threads.includes(r.tid)) expect(r.actual, `${r.what} ${r.tid}`).toBe(allowed(pid, r.tid));
    const v0 = ((await qmpOnce(qmp, 'query-cpus-fast')) as { 'thread-id': number }[])[0]!['thread-id'];
    expect(rows.find((r) => r.what === 'vCPU 0')).toEqual({ tid: v0, what: 'vCPU 0', wanted: '1', actual: '1' });
    expect(rows.filter((r) => r.what === 'emulator').every((r) => r.wanted === '1')).toBe(true);
    const io = ((await qmpOnce(qmp, 'query-iothreads')) as { id: string; 'thread-id': number }[])[0]!;
    expect(rows.find((r) => r.tid === io['thread-id'])).toEqual({ tid: io['thread-id'], what: `iothread ${io.id}`, wanted: '0', actual: '0' });
    expect(await b.page.locator('[data-testid=hw-vcpus-now]').textContent()).toBe('1');
    expect(await b.page.locator('[data-testid=hw-vcpus-max]').textContent()).toBe('2');
    await b.shot('pinning');
  }, 60_000);

  it('vCPUs set from the UI: QEMU has two, the new thread is pinned, the table shows /proc', async () => {
    await b.page.fill('[data-testid=hw-vcpus-input]', '2');
    const t0 = Date.now();
    await b.page.click('[data-testid=hw-vcpus-set]');
    await b.page.locator('[data-testid=hw-notice]').filter({ hasText: 'vCPUs 1 → 2' }).waitFor();
    console.log(`vCPU 1 → 2 from the UI: ${Date.now() - t0} ms to the answer shown`);
    const v = (await qmpOnce(qmp, 'query-cpus-fast')) as { 'cpu-index': number; 'thread-id': number }[];
    expect(v.map((c) => c['cpu-index']).sort()).toEqual([0, 1]);
    const v1 = v.find((c) => c['cpu-index'] === 1)!['thread-id'];
    expect(allowed(pid, v1)).toBe('0');
    await b.page.locator(`[data-testid=hw-pinning] tr[data-tid="${v1}"]`).waitFor();
    await b.page.locator('[data-testid=hw-vcpus-now]').filter({ hasText: '2' }).waitFor();
    const rows = await pinRows(b.page);
    expect(rows.find((r) => r.tid === v1)).toEqual({ tid: v1, what: 'vCPU 1', wanted: '0', actual: allowed(pid, v1) });
    for (const r of rows) if (fs.existsSync(`/proc/${pid}/task/${r.tid}`)) expect(r.actual, `${r.what} ${r.tid}`).toBe(allowed(pid, r.tid));
    // The guest's ACPI CPU hotplug made cpu1.
    let seen = '';
    for (let i = 0; i < 30 && !/\bcpu1\b/.test(seen); i++) seen = (await serialExec(resolvePaths(home.env), 'hw', 'ls /sys/devices/system/cpu')).output;
    expect(seen).toMatch(/\bcpu1\b/);
    await b.shot('vcpus-2');
  }, 60_000);

  it('the balloon set from the UI reaches QEMU; a target over memory.size is refused in the card', async () => {
    await b.page.fill('[data-testid=hw-mem-input]', '128M');
    await b.page.click('[data-testid=hw-mem-set]');
    await b.page.locator('[data-testid=hw-notice]').filter({ hasText: 'Balloon target 128 MiB' }).waitFor();
    // The test guest has no virtio_balloon driver: QEMU has the target, the guest does not inflate.
    expect(await qmpOnce(qmp, 'query-balloon')).toEqual({ actual: 256 * MiB });
    await b.page.fill('[data-testid=hw-mem-input]', '1G');
    await b.page.click('[data-testid=hw-mem-set]');
    const alert = b.page.locator('[role=alert]').filter({ hasText: 'BAD_SIZE' });
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/outside 64M–256M/);
    // Only that one: the card's concurrent loads all got their QMP answers (QEMU serves one client at a time).
    expect(await b.page.locator('[role=alert]').count()).toBe(1);
  }, 60_000);

  it('USB: the host list (sysfs fixture), attach by vendor:product from the UI, detach', async () => {
    await b.page.locator('[data-testid=hw-usb-host-count]').filter({ hasText: '3 USB devices on the host' }).waitFor();
    await b.page.fill('[data-testid=hw-usb-input]', '046d:c52b');
    await b.page.click('[data-testid=hw-usb-attach]');
    await b.page.locator('[data-testid=hw-notice]').filter({ hasText: 'attached as usbhot0' }).waitFor();
    await b.page.locator('[data-testid=hw-usb] tr[data-usb=usbhot0]').filter({ hasText: '046d:c52b' }).waitFor();
    expect(await qmpOnce(qmp, 'qom-get', { path: '/machine/peripheral/usbhot0', property: 'vendorid' })).toBe(0x046d);
    await b.shot('usb-attached');
    await b.page.click('button[aria-label="Detach usbhot0"]');
    await b.page.locator('[data-testid=hw-notice]').filter({ hasText: 'usbhot0 detached' }).waitFor();
    let names: string[] = [];
    for (let i = 0; i < 50; i++) {
      names = ((await qmpOnce(qmp, 'qom-list', { path: '/machine/peripheral' })) as { name: string }[]).map((p) => p.name);
      if (!names.includes('usbhot0')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(names).not.toContain('usbhot0');
  }, 60_000);

  it("a VM's PCI passthrough devices are listed with the host driver and IOMMU group (sysfs fixture: no PCI devices here)", async () => {
    await b.page.goto(`${srv.base}/?token=${admin}#/vms/gpu/hardware`);
    const row = b.page.locator('[data-testid=hw-pci] tr').filter({ hasText: '0000:01:00.0' });
    await row.waitFor();
    expect(await row.textContent()).toMatch(/on vfio-pci, IOMMU group 1.*managed/);
    await b.shot('pci');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('API: mistakes are 400/404/409 and change nothing; operator vs admin; every change is a task', async () => {
    const code = async (r: Response) => ({ status: r.status, code: ((await r.json()) as { code: string }).code });
    expect(await code(await api(admin, 'POST', '/api/vms/hw/cpus', { count: 0 }))).toEqual({ status: 400, code: 'BAD_REQUEST' });
    expect(await code(await api(admin, 'POST', '/api/vms/hw/cpus', { count: 3 }))).toEqual({ status: 400, code: 'BAD_CPU_COUNT' });
    expect(await code(await api(admin, 'POST', '/api/vms/hw/memory', { size: 'lots' }))).toEqual({ status: 400, code: 'BAD_SIZE' });
    expect(await code(await api(admin, 'POST', '/api/vms/gpu/memory', { size: '128M' }))).toEqual({ status: 400, code: 'NO_BALLOON' });
    expect(await code(await api(admin, 'POST', '/api/vms/gpu/cpus', { count: 1 }))).toEqual({ status: 409, code: 'VM_NOT_RUNNING' });
    expect(await code(await api(admin, 'GET', '/api/vms/gpu/pinning'))).toEqual({ status: 409, code: 'VM_NOT_RUNNING' });
    expect(await code(await api(admin, 'POST', '/api/vms/hw/usb', { device: 'zz' }))).toEqual({ status: 400, code: 'BAD_USB' });
    expect(await code(await api(admin, 'POST', '/api/vms/gpu/usb', { device: '046d:c52b' }))).toEqual({ status: 400, code: 'NO_USB_CONTROLLER' });
    expect(await code(await api(admin, 'DELETE', '/api/vms/hw/usb/nosuch'))).toEqual({ status: 404, code: 'USB_NOT_FOUND' });
    expect(await code(await api(admin, 'DELETE', '/api/vms/hw/usb/balloon0'))).toEqual({ status: 404, code: 'USB_NOT_FOUND' });
    expect(await code(await api(admin, 'POST', '/api/vms/nope/cpus', { count: 1 }))).toEqual({ status: 404, code: 'VM_NOT_FOUND' });
    expect(((await qmpOnce(qmp, 'query-cpus-fast')) as unknown[]).length).toBe(2);
    // An operator changes vCPUs and memory (lifecycle-like, bounded by the definition) but not which host device a guest gets.
    expect((await api(operator, 'POST', '/api/vms/hw/memory', { size: '256M' })).status).toBe(200);
    expect((await api(operator, 'POST', '/api/vms/hw/cpus', { count: 2 })).status).toBe(200);
    expect(await code(await api(operator, 'POST', '/api/vms/hw/usb', { device: '046d:c52b' }))).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect((await api(operator, 'GET', '/api/host/usb')).status).toBe(200);
    const tasks = (await (await api(admin, 'GET', '/api/tasks?vm=hw&limit=50')).json()) as { kind: string; state: string; owner: string }[];
    const seen = (kind: string, state: string) => tasks.some((t) => t.kind === kind && t.state === state);
    expect(['setVmCpus', 'setVmMemory', 'attachVmUsb', 'detachVmUsb'].map((k) => seen(k, 'ok'))).toEqual([true, true, true, true]);
    expect(seen('setVmCpus', 'failed')).toBe(true);
    expect(tasks.some((t) => t.kind === 'setVmMemory' && t.owner === 'otto')).toBe(true);
  }, 60_000);
});

// The balloon with a guest that has the driver (kvmctl's Debian 12 image: virtio_balloon loads by itself), set from the card.
const CAN_DEBIAN = canBootGuest() && process.getuid?.() === 0 && ['/usr/bin/mmdebstrap', '/usr/share/OVMF/OVMF_CODE_4M.fd'].every((f) => fs.existsSync(f));
describe.skipIf(!hasChromium() || !WEB_BUILT || !CAN_DEBIAN)('web UI: the balloon set from the Hardware card inflates a Debian 12 guest', () => {
  let home: Home;
  let srv: Served;
  let b: TestBrowser;
  const admin = randomBytes(16).toString('hex');

  beforeAll(async () => {
    home = makeHome();
    const img = await home.cli(['image', 'debian-12', '--disk', 'bal.qcow2', '--json'], { timeoutMs: 1_500_000 });
    expect(img.code, img.stderr).toBe(0);
    await home.apply(`name: bal
firmware: uefi
agent: true
memory: { size: 768M, balloon: { freePageReporting: true } }
cpu: 2
disks: [{ file: bal.qcow2 }]
stopTimeout: 60
`);
    const s = await home.cli(['start', 'bal', '--json'], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    const p = await home.cli(['guest', 'ping', 'bal', '--wait', '400', '--json'], { timeoutMs: 420_000 });
    expect(p.code, p.stderr).toBe(0);
    srv = await startServe(home, admin);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.setDefaultTimeout(30_000);
  }, 1_900_000);

  afterAll(async () => {
    if (srv) await fetch(`${srv.base}/api/vms/bal/kill`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' }).catch(() => undefined);
    await b?.close();
    await srv?.stop();
    await home?.cleanup();
  }, 120_000);

  it('768M → 384M from the UI: query-balloon falls to the target and the card follows it', async () => {
    const qmp = path.join(home.dir, 'run/vms/bal/qmp.sock');
    expect(await qmpOnce(qmp, 'query-balloon')).toEqual({ actual: 768 * MiB });
    await b.page.goto(`${srv.base}/?token=${admin}#/vms/bal/hardware`);
    await b.page.locator('[data-testid=hw-mem-actual]').filter({ hasText: '768 MiB' }).waitFor();
    await b.page.fill('[data-testid=hw-mem-input]', '384M');
    const t0 = Date.now();
    await b.page.click('[data-testid=hw-mem-set]');
    await b.page.locator('[data-testid=hw-notice]').filter({ hasText: 'Balloon target 384 MiB' }).waitFor();
    let actual = 0;
    for (let end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) {
      actual = ((await qmpOnce(qmp, 'query-balloon')) as { actual: number }).actual;
      if (actual <= 384 * MiB) break;
    }
    console.log(`balloon 768M → 384M from the UI: query-balloon actual ${actual / MiB} MiB after ${Date.now() - t0} ms`);
    expect(actual).toBe(384 * MiB);
    // The card polls every 3 s.
    await b.page.locator('[data-testid=hw-mem-actual]').filter({ hasText: '384 MiB' }).waitFor({ timeout: 15_000 });
    await b.shot('balloon-debian');
    await b.page.fill('[data-testid=hw-mem-input]', '768M');
    await b.page.click('[data-testid=hw-mem-set]');
    for (let end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) {
      actual = ((await qmpOnce(qmp, 'query-balloon')) as { actual: number }).actual;
      if (actual >= 768 * MiB) break;
    }
    expect(actual).toBe(768 * MiB);
  }, 180_000);
});
