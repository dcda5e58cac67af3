/**
 * Users, management and polish of the web UI in a real browser (Debian's Chromium through
 * playwright-core) against the real `kvmctl serve` on loopback TCP and a real QEMU test guest
 * with a qcow2 disk: a viewer token sees the VM but gets 403 for start and for the serial
 * console; a snapshot taken in the UI is listed by the CLI; a disk and a NIC attached in the UI are
 * hotplugged into the running guest, which sees them; an operator starts the VM from the
 * UI; the audit log names both; two serial viewers both see the guest; unsaved YAML asks before
 * it is lost; security headers and compression are there, with no CSP violation in the page;
 * at 390 px no page scrolls sideways; the first load is timed. Screenshots: test-output/web-ui-manage/.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { resolvePaths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-manage');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const VM = 'mg';

/** The raw (still compressed) size of a response for one Accept-Encoding. */
function rawGet(url: string, enc: string): Promise<{ status: number; encoding?: string; bytes: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'accept-encoding': enc } }, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, encoding: res.headers['content-encoding'], bytes, headers: res.headers }));
      })
      .on('error', reject);
  });
}

const terminalText = (page: TestBrowser['page']) =>
  page.evaluate(() => {
    const el = document.querySelector('[data-testid=serial-terminal]') as (HTMLElement & { term?: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } }) | null;
    const buf = el?.term?.buffer.active;
    if (!buf) return '';
    const out: string[] = [];
    for (let i = 0; i < buf.length; i++) out.push(buf.getLine(i)?.translateToString(true) ?? '');
    return out.join('\n');
  });

describe.skipIf(!hasChromium() || !WEB_BUILT)('web UI: users, management, polish (Chromium, kvmctl serve, real QEMU)', () => {
  let home: Home;
  let srv: Served;
  let b: TestBrowser;
  const admin = randomBytes(16).toString('hex');
  let viewer = '';
  let operator = '';
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];
  const api = (token: string, method: string, url: string, body?: unknown) =>
    fetch(`${srv.base}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const signInAs = async (token: string, hash: string) => {
    await b.page.evaluate(() => sessionStorage.clear()).catch(() => undefined);
    await b.page.goto(`${srv.base}/?token=${token}${hash}`);
  };
  const noSideScroll = (p: TestBrowser['page']) => p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    const mk = await home.cli(['disk', 'create', path.join(home.images, `${VM}.qcow2`), '64M', '--format', 'qcow2']);
    expect(mk.code, mk.stderr).toBe(0);
    await home.apply(`name: ${VM}\nmemory: 256M\nkernel: { builtin: test-guest }\ndisks:\n  - file: ${VM}.qcow2\nstopTimeout: 5\n`);
    const tok = async (name: string, role: string) => {
      const r = await home.cli(['serve', 'token', 'add', name, '--role', role]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').pop()!;
    };
    viewer = await tok('vera', 'viewer');
    operator = await tok('otto', 'operator');
    srv = await startServe(home, admin);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 768 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.on('console', (m) => /Content.Security.Policy/i.test(m.text()) && cspViolations.push(m.text()));
    b.page.setDefaultTimeout(30_000);
  });

  afterAll(async () => {
    if (srv) await api(admin, 'POST', `/api/vms/${VM}/kill`).catch(() => undefined);
    await b?.close();
    await srv?.stop();
    await home?.cleanup();
  });

  it('loads the first page in under a second, compressed, with the security headers', async () => {
    // A cold load (a new browser profile: nothing cached) of the VM list, three times: the machine is
    // shared (2 cores, other test runs), so the best of three is the page's own cost.
    const loads: number[] = [];
    for (let i = 0; i < 3; i++) {
      const fresh = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 768 });
      const p = fresh.page;
      await p.goto('about:blank');
      const t0 = Date.now();
      await p.goto(`${srv.base}/?token=${admin}#/vms`);
      await p.locator(`tr[data-vm=${VM}]`).waitFor();
      loads.push(Date.now() - t0);
      const nav = await p.evaluate(() => {
        const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
        return { dcl: Math.round(n.domContentLoadedEventEnd), bytes: performance.getEntriesByType('resource').reduce((s, r) => s + (r as PerformanceResourceTiming).transferSize, n.transferSize) };
      });
      console.log(`cold load ${i + 1}: ${loads.at(-1)} ms to the VM list rendered (DOMContentLoaded ${nav.dcl} ms, ${nav.bytes} bytes over the wire)`);
      await fresh.close();
    }
    expect(Math.min(...loads)).toBeLessThan(1000);
    await b.page.goto(`${srv.base}/?token=${admin}#/vms`);
    await b.page.locator(`tr[data-vm=${VM}]`).waitFor();

    const html = await fetch(`${srv.base}/`);
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(html.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html.headers.get('referrer-policy')).toBe('no-referrer');
    expect(html.headers.get('cache-control')).toBe('no-cache');
    const js = /src="\.\/(assets\/index-[^"]+\.js)"/.exec(await html.text())![1]!;
    const plain = await rawGet(`${srv.base}/${js}`, 'identity');
    const br = await rawGet(`${srv.base}/${js}`, 'br');
    const gz = await rawGet(`${srv.base}/${js}`, 'gzip');
    console.log(`${js}: ${plain.bytes} bytes, brotli ${br.bytes}, gzip ${gz.bytes}`);
    expect(br.encoding).toBe('br');
    expect(gz.encoding).toBe('gzip');
    expect(br.bytes).toBeLessThan(plain.bytes / 2.5);
    expect(br.headers['cache-control']).toContain('immutable');
    const apiList = await rawGet(`${srv.base}/api/vms`, 'gzip');
    expect(apiList.status).toBe(401); // no token: the API still answers with its headers
    expect(apiList.headers['x-content-type-options']).toBe('nosniff');
    await b.shot('list-admin');
  });

  it('a viewer sees the VM but cannot start it or open its console (403 from the server)', async () => {
    await signInAs(viewer, `#/vms/${VM}`);
    await b.page.locator('[data-testid=who]').filter({ hasText: 'vera · viewer' }).waitFor();
    await b.page.locator('[data-testid=vm-state][data-state=stopped]').waitFor();
    expect(await b.page.getByRole('button', { name: 'Start', exact: true }).isDisabled()).toBe(true);
    expect(await b.page.getByRole('tab', { name: 'Serial console' }).count()).toBe(0);
    expect(await b.page.getByRole('link', { name: 'Users' }).count()).toBe(0);
    await b.shot('detail-viewer');
    // The server decides, whatever the page shows.
    const start = await api(viewer, 'POST', `/api/vms/${VM}/start`, {});
    expect(start.status).toBe(403);
    expect(await start.json()).toMatchObject({ code: 'FORBIDDEN' });
    const wsStatus = await new Promise<number>((resolve) => {
      const req = http.get(`${srv.base}/api/vms/${VM}/serial?token=${viewer}`, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') } });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('upgrade', () => resolve(101));
      req.on('error', () => resolve(-1));
    });
    expect(wsStatus).toBe(403);
    // …and in the browser's own WebSocket, too.
    const opened = await b.page.evaluate(
      (u) => new Promise<string>((resolve) => {
        const ws = new WebSocket(u);
        ws.onopen = () => resolve('open');
        ws.onerror = () => resolve('refused');
      }),
      `${srv.base.replace('http', 'ws')}/api/vms/${VM}/serial?token=${viewer}`,
    );
    expect(opened).toBe('refused');
  });

  it('an admin takes a snapshot in the UI and the CLI lists it', async () => {
    await signInAs(admin, `#/vms/${VM}/snapshots`);
    await b.page.getByLabel('Snapshot name').fill('ui-snap');
    await b.page.getByRole('button', { name: 'Take snapshot' }).click();
    await b.page.locator('tr[data-snapshot=ui-snap]').waitFor();
    expect(await b.page.locator('tr[data-snapshot=ui-snap]').textContent()).toContain('internal');
    await b.shot('snapshots');
    const cli = await home.cli(['--json', 'snapshot', VM, '--list']);
    expect(cli.code, cli.stderr).toBe(0);
    const listed = JSON.parse(cli.stdout) as { disks: { internal: string[] }[] };
    expect(listed.disks[0]!.internal).toContain('ui-snap');
  });

  it('keeps unsaved YAML: leaving asks first, and "stay" keeps the text', async () => {
    await b.page.getByRole('tab', { name: 'Definition' }).click();
    const ta = b.page.getByLabel(`Definition of ${VM} (YAML)`);
    const edited = `${(await ta.inputValue()).trimEnd()}\ndescription: edited in the browser\n`;
    await ta.fill(edited);
    const dialogs: string[] = [];
    b.page.once('dialog', (d) => (dialogs.push(d.message()), void d.dismiss()));
    await b.page.getByRole('link', { name: 'VMs', exact: true }).click();
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs[0]).toMatch(/unsaved changes/);
    expect(b.page.url()).toMatch(new RegExp(`#/vms/${VM}/definition$`));
    expect(await ta.inputValue()).toBe(edited);
    await b.shot('definition-unsaved');
    b.page.once('dialog', (d) => void d.accept());
    await b.page.getByRole('link', { name: 'VMs', exact: true }).click();
    await b.page.getByRole('heading', { name: 'Virtual machines' }).waitFor();
  });

  it('an operator starts the VM from the UI; two serial viewers both see the guest', async () => {
    await signInAs(operator, `#/vms/${VM}`);
    await b.page.locator('[data-testid=who]').filter({ hasText: 'otto · operator' }).waitFor();
    await b.page.getByRole('button', { name: 'Start', exact: true }).click();
    await b.page.locator('[data-testid=vm-state][data-state=running]').waitFor({ timeout: 90_000 });
    await b.page.getByRole('tab', { name: 'Serial console' }).click();
    await b.page.getByText('Serial console: connected').waitFor();
    const second = await b.context.newPage();
    second.on('pageerror', (e) => pageErrors.push(e.message));
    await second.goto(`${srv.base}/?token=${operator}#/vms/${VM}/serial`);
    await second.getByText('Serial console: connected').waitFor();
    // Typed in the second viewer; the answer ("sv42", not the typed "sv$((6*7))") must reach both.
    await second.locator('[data-testid=serial-terminal]').click();
    const t0 = Date.now();
    while (!/^sv42$/m.test(await terminalText(second))) {
      expect(Date.now() - t0, `no sv42 in the second viewer:\n${await terminalText(second)}`).toBeLessThan(90_000);
      await second.keyboard.type('echo sv$((6*7))\n', { delay: 5 });
      await second.waitForTimeout(3000);
    }
    await expect.poll(() => terminalText(b.page), { timeout: 10_000 }).toMatch(/^sv42$/m);
    await b.shot('serial-first-viewer');
    await second.close();
    await b.page.getByRole('tab', { name: 'Logs' }).click();
    await b.page.locator('[data-testid=log-serial]').waitFor();
    expect(await b.page.locator('[data-testid=log-serial]').textContent()).toMatch(/sv42/);
    await b.shot('logs');
  }, 180_000);

  it('editing the running VM shows what is pending until restart; the autostart switch keeps the YAML comments', async () => {
    await signInAs(admin, `#/vms/${VM}`);
    await b.page.locator('[data-testid=vm-state][data-state=running]').waitFor();
    await b.page.getByText('The running VM matches its stored definition.').waitFor();
    const cur = (await (await api(admin, 'GET', `/api/vms/${VM}`)).json()) as { yaml: string };
    const put = await api(admin, 'PUT', `/api/vms/${VM}`, { yaml: `# kept comment\n${cur.yaml.replace('memory: 256M', 'memory: 384M')}` });
    expect(put.status, await put.clone().text()).toBe(200);
    const pending = b.page.locator('[data-testid=pending]');
    await pending.waitFor();
    expect(await pending.textContent()).toMatch(/\+ -m .*384/);
    expect(await pending.textContent()).toMatch(/− -m .*256/);
    await b.page.getByTestId('autostart').click();
    await expect.poll(async () => ((await (await api(admin, 'GET', `/api/vms/${VM}`)).json()) as { yaml: string }).yaml).toMatch(/^# kept comment[\s\S]*autostart: true/);
    await expect.poll(() => b.page.getByTestId('autostart').isChecked()).toBe(true);
    await b.shot('overview-pending');
    // A viewer may not flip it.
    expect((await api(viewer, 'POST', `/api/vms/${VM}/autostart`, { enabled: false })).status).toBe(403);
  });

  it('reverting the snapshot in the UI changes what the guest reads', async () => {
    // ui-snap was taken with the disk blank; the guest now writes XXXX into sector 100.
    const paths = resolvePaths({ KVMCTL_HOME: home.dir });
    const sector = `dd if=/dev/vda bs=1 skip=${100 * 512} count=4 2>/dev/null | tr '\\0' 0`;
    await serialExec(paths, VM, `printf XXXX | dd of=/dev/vda bs=512 seek=100 conv=fsync 2>/dev/null`);
    expect((await serialExec(paths, VM, sector)).output.trim()).toBe('XXXX');
    await b.page.getByRole('button', { name: 'Stop', exact: true }).click();
    await b.page.locator('[data-testid=vm-state][data-state=stopped]').waitFor({ timeout: 60_000 });
    await b.page.getByRole('tab', { name: 'Snapshots' }).click();
    b.page.once('dialog', (d) => void d.accept());
    await b.page.getByRole('button', { name: 'Revert to ui-snap' }).click();
    await b.page.getByText('Reverted disk0 to "ui-snap".').waitFor();
    await b.shot('snapshot-reverted');
    await b.page.getByRole('button', { name: 'Start', exact: true }).click();
    await b.page.locator('[data-testid=vm-state][data-state=running]').waitFor({ timeout: 90_000 });
    const t0 = Date.now();
    let got = '';
    for (;;) {
      got = await serialExec(paths, VM, sector).then((r) => r.output.trim(), (e: Error) => `(${e.message})`);
      if (got === '0000' || Date.now() - t0 > 90_000) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    expect(got).toBe('0000');
  }, 240_000);

  it('hardware: a live resize reaches the guest; a disk attached and a NIC added in the UI are hotplugged (the guest sees them), and unplugged again', async () => {
    const paths = resolvePaths({ KVMCTL_HOME: home.dir });
    await b.page.getByRole('tab', { name: 'Hardware' }).click();
    await b.page.locator('[data-testid=size-disk0]').filter({ hasText: '64 MiB' }).waitFor();
    b.page.once('dialog', (d) => void d.accept('+16M'));
    await b.page.getByRole('button', { name: 'Resize disk0' }).click();
    await b.page.getByText(/Disk disk0: 64 MiB → 80 MiB \(live/).waitFor();
    await b.page.locator('[data-testid=size-disk0]').filter({ hasText: '80 MiB' }).waitFor();
    const t0 = Date.now();
    let sectors = '';
    while ((sectors = (await serialExec(paths, VM, 'cat /sys/block/vda/size')).output.trim()) !== String((80 * 1024 * 1024) / 512)) {
      expect(Date.now() - t0, `guest sees ${sectors} sectors`).toBeLessThan(30_000);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect((await api(admin, 'POST', '/api/disks', { path: 'extra.qcow2', size: '32M', format: 'qcow2' })).status).toBe(200);
    const guestUntil = async (what: string, cmd: string, want: string) => {
      const t1 = Date.now();
      let got = '';
      while ((got = (await serialExec(paths, VM, cmd)).output.trim()) !== want) {
        expect(Date.now() - t1, `${what}: the guest says ${got}`).toBeLessThan(60_000);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    await b.page.reload();
    // Hotplugged into the running VM: the guest gets /dev/vdb at once.
    await b.page.getByLabel('Attach image').selectOption('extra.qcow2');
    await b.page.getByRole('button', { name: 'Attach', exact: true }).click();
    await b.page.getByText(/extra\.qcow2 attached as disk1\. Live: the running guest has it now \(on kvhp\d\)\./).waitFor();
    await b.page.locator('tr[data-disk=disk1]').waitFor();
    await guestUntil('vdb', 'cat /sys/block/vdb/size 2>/dev/null || echo none', String((32 * 1024 * 1024) / 512));
    // A user-mode NIC, hotplugged: the guest's eth0 has the MAC the page shows.
    await b.page.getByRole('button', { name: 'Add NIC' }).click();
    await b.page.getByText(/NIC net0 added\. Live/).waitFor();
    const nic = b.page.locator('tr[data-nic=net0]');
    await nic.waitFor();
    const row = (await nic.textContent()) ?? '';
    expect(row).toMatch(/user-mode.*virtio.*52:54:00(:[0-9a-f]{2}){3}/);
    const mac = /52:54:00(:[0-9a-f]{2}){3}/.exec(row)![0];
    await guestUntil('eth0', 'cat /sys/class/net/eth0/address 2>/dev/null || echo none', mac);
    await b.shot('hardware');
    // What is live is not pending until restart (the VM was restarted since the memory edit above).
    const pending = (await (await api(admin, 'GET', `/api/vms/${VM}/pending`)).json()) as { pending: boolean; added: string[]; removed: string[] };
    expect(pending).toMatchObject({ pending: false, added: [], removed: [] });
    // Remove both again, live; detaching a disk of a running VM keeps its image.
    b.page.on('dialog', (d) => void d.accept());
    await b.page.getByRole('button', { name: 'Remove net0' }).click();
    await b.page.locator('tr[data-nic=net0]').waitFor({ state: 'detached' });
    await guestUntil('eth0 gone', 'ls /sys/class/net | grep -c eth || true', '0');
    await b.page.getByRole('button', { name: 'Detach disk1' }).click();
    await b.page.locator('tr[data-disk=disk1]').waitFor({ state: 'detached' });
    await guestUntil('vdb gone', 'ls /sys/block | grep -c vdb || true', '0');
    b.page.removeAllListeners('dialog');
    expect(fs.existsSync(path.join(home.images, 'extra.qcow2'))).toBe(true);
    const after = (await (await api(admin, 'GET', `/api/vms/${VM}/pending`)).json()) as { added: string[]; removed: string[] };
    expect([...after.added, ...after.removed].join(' ')).not.toMatch(/extra\.qcow2|net0/);
  }, 180_000);

  it('the audit log names who did what; the Users page shows it to an admin', async () => {
    const log = (await (await api(admin, 'GET', '/api/audit')).json()) as { user: string; method: string; route: string; target?: string; status: number }[];
    expect(log).toContainEqual(expect.objectContaining({ user: 'vera', route: '/api/vms/:name/start', target: VM, status: 403 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'vera', route: '/api/vms/:name/serial', status: 403 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'otto', route: '/api/vms/:name/start', target: VM, status: 200 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'otto', route: '/api/vms/:name/serial', status: 101 }));
    expect(log).toContainEqual(expect.objectContaining({ user: 'token', route: '/api/vms/:name/snapshots', target: VM, status: 200 }));
    const cli = await home.cli(['serve', 'audit', '--user', 'otto']);
    expect(cli.stdout).toMatch(/otto\s+200\s+POST\s+\/api\/vms\/:name\/start mg/);
    await signInAs(admin, '#/users');
    await b.page.locator('tr[data-token=otto]').waitFor();
    await b.page.locator('[data-testid=audit] td', { hasText: 'otto' }).first().waitFor();
    await b.shot('users');
  });

  it('at 390 px wide no page scrolls sideways', async () => {
    const m = await openBrowser({ shotsDir: SHOTS, width: 390, height: 844 });
    try {
      m.page.on('pageerror', (e) => pageErrors.push(e.message));
      await m.page.goto(`${srv.base}/?token=${admin}#/vms`);
      await m.page.locator(`tr[data-vm=${VM}]`).waitFor();
      for (const [hash, ready] of [
        ['#/vms', `tr[data-vm=${VM}]`],
        [`#/vms/${VM}`, '[data-testid=vm-state]'],
        [`#/vms/${VM}/definition`, 'textarea'],
        [`#/vms/${VM}/snapshots`, 'tr[data-snapshot=ui-snap]'],
        [`#/vms/${VM}/hardware`, 'tr[data-disk=disk0]'],
        [`#/vms/${VM}/serial`, '[data-testid=serial-terminal]'],
        [`#/vms/${VM}/logs`, '[data-testid=log-serial]'],
        ['#/create', 'form'],
        ['#/networks', 'h1'],
        ['#/disks', 'h1'],
        ['#/users', 'tr[data-token=otto]'],
        [`#/vms/${VM}/graphs`, '[data-testid=metric-graphs]'],
        ['#/graphs', '[data-testid=metric-graphs]'],
        ['#/cluster', 'h1'],
      ] as const) {
        await m.page.evaluate((h) => (location.hash = h), hash);
        await m.page.locator(ready).first().waitFor();
        await m.page.waitForTimeout(200);
        const w = await noSideScroll(m.page);
        await m.shot(`mobile-${hash.replace(/[#/]+/g, '-').replace(/^-|-$/g, '') || 'vms'}`);
        // What sticks out, to say so when it fails.
        const wide = await m.page.evaluate(() =>
          [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
        );
        expect(w.scroll, `${hash} is ${w.scroll} px wide in a ${w.inner} px window: ${wide.join(', ')}`).toBeLessThanOrEqual(w.inner);
      }
    } finally {
      await m.close();
    }
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  }, 120_000);
});
