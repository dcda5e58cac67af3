/**
 * The web UI in a real browser (Debian's Chromium through playwright-core) against the real
 * `kvmctl serve` on loopback TCP with a token, and a real QEMU running the test guest:
 * create a VM from the form (a validation error shown at its field first), start it by keyboard,
 * see it running with a CPU sparkline, type in the serial console (xterm.js) and read the guest's
 * answer, open the VNC console (noVNC) and find a non-blank canvas, stop it from the list (its
 * button saying "Stopping…" meanwhile), see it stopped, and get a definition error and a YAML
 * syntax error (after a leading comment and `---`) pointed at their lines. Screenshots: test-output/web-ui/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { BIN, ROOT, makeHome, qemuProcessesMentioning, type Home } from '../helpers/kvmctl.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const VM = 'webui';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitHealthy(base: string, server: ChildProcess, log: () => string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (server.exitCode !== null) throw new Error(`kvmctl serve exited (${server.exitCode}): ${log()}`);
    try {
      const r = await fetch(`${base}/api/health`);
      if (r.ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - t0 > ms) throw new Error(`kvmctl serve not healthy after ${ms} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** The serial terminal's whole buffer (scrollback included) as text. */
const terminalText = (b: TestBrowser) =>
  b.page.evaluate(() => {
    const el = document.querySelector('[data-testid=serial-terminal]') as (HTMLElement & { term?: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } }) | null;
    const buf = el?.term?.buffer.active;
    if (!buf) return '';
    const out: string[] = [];
    for (let i = 0; i < buf.length; i++) out.push(buf.getLine(i)?.translateToString(true) ?? '');
    return out.join('\n');
  });

/** Pixels of the noVNC canvas that are not (near) black, and its size. */
const canvasInk = (b: TestBrowser) =>
  b.page.evaluate(() => {
    const c = document.querySelector('[data-testid=vnc-screen] canvas') as HTMLCanvasElement | null;
    if (!c || c.width === 0 || c.height === 0) return { w: 0, h: 0, lit: 0 };
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i]! + d[i + 1]! + d[i + 2]! > 60) lit++;
    return { w: c.width, h: c.height, lit };
  });

// Needs Chromium (scripts/setup.sh installs it) and the built UI (setup runs vite build).
describe.skipIf(!hasChromium() || !WEB_BUILT)('web UI in Chromium against kvmctl serve and real QEMU', () => {
  let home: Home;
  let server: ChildProcess;
  let b: TestBrowser;
  let base = '';
  let serverLog = '';
  const token = randomBytes(16).toString('hex');
  const pageErrors: string[] = [];
  /** POST to the server's API with the token, as a client script would (JSON body, or none). */
  const post = (url: string, body?: unknown) =>
    fetch(`${base}${url}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  /** Screenshot, after checking the page fits the 1366 px window (no sideways scrolling). */
  const shot = async (name: string) => {
    expect(await b.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `${name}: wider than the window`).toBe(true);
    await b.shot(name);
  };

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`], { env: { ...home.env, KVMCTL_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (serverLog += d));
    server.stderr!.on('data', (d) => (serverLog += d));
    await waitHealthy(base, server, () => serverLog);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 768 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.setDefaultTimeout(30_000);
  });

  afterAll(async () => {
    await b?.close();
    if (server?.pid && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (server.kill('SIGKILL'), r(null)), 5000);
        server.once('exit', () => (clearTimeout(t), r(null)));
      });
    }
    await home?.cleanup();
  });

  it('is served by kvmctl serve and asks for the token (sign-in form, or once in the URL)', async () => {
    const page = b.page;
    // Without a token the API answers 401 and the page asks for one.
    await page.goto(`${base}/#/vms`);
    await page.getByRole('heading', { name: 'kvmctl: sign in' }).waitFor();
    await page.getByLabel('API token').fill('wrong');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: /token/ }).waitFor();
    await shot('sign-in-wrong-token');
    await page.getByLabel('API token').fill(token);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor();
    // A fresh tab gets the token once in the URL instead.
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${base}/?token=${token}#/vms`);
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor();
    // The token left the address bar (kept in sessionStorage for API calls).
    expect(page.url()).not.toContain(token);
    await page.getByText('No VMs are defined yet').waitFor();
    await expect.poll(() => page.locator('header [role=status]').textContent()).toBe('live');
    await shot('empty-list');
  });

  it('creates a VM from the form; a bad field gets its error next to it', async () => {
    const page = b.page;
    // Keyboard: the nav link is a link, reached and followed with the keyboard.
    await page.getByRole('link', { name: 'New VM' }).first().focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'New virtual machine' }).waitFor();
    // Every field is found by its label (labels are tied to their inputs).
    await page.getByLabel('Name', { exact: true }).fill(VM);
    await page.getByLabel('vCPUs').fill('1');
    await page.getByLabel('Memory').fill('12Q');
    await page.getByLabel('Test guest kernel (built in)').check();
    await page.getByLabel('Display').selectOption('vnc');
    await page.getByRole('button', { name: 'Create VM' }).click();
    const memErr = page.locator('[data-field-error=memory]');
    await memErr.waitFor();
    expect(await memErr.textContent()).toContain('12Q');
    expect(await page.getByLabel('Memory').getAttribute('aria-invalid')).toBe('true');
    await shot('create-form-field-error');

    await page.getByLabel('Memory').fill('256M');
    await page.getByRole('button', { name: 'Create VM' }).click();
    await page.waitForURL(new RegExp(`#/vms/${VM}$`));
    await page.locator('[data-testid=vm-state][data-state=stopped]').waitFor();
    // The stored definition is what the form said.
    const def = (await (await fetch(`${base}/api/vms/${VM}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { spec: Record<string, any> };
    expect(def.spec.kernel).toMatchObject({ builtin: 'test-guest' });
    expect(def.spec.display).toMatchObject({ type: 'vnc' });
    expect(def.spec.memory).toBe(256 * 1024 * 1024);
  });

  it('starts it with the keyboard and shows it running, with a CPU sparkline in the list', async () => {
    const page = b.page;
    const start = page.getByRole('button', { name: 'Start', exact: true });
    await start.focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=vm-state][data-state=running]').waitFor({ timeout: 90_000 });
    await shot('detail-running');

    await page.getByRole('link', { name: 'VMs', exact: true }).click();
    const row = page.locator(`tr[data-vm=${VM}]`);
    await row.locator('[data-state=running]').waitFor();
    // Two metrics samples make the first CPU % (the first sample has no previous one).
    await expect.poll(async () => Number(await row.locator('svg.spark').getAttribute('data-points')), { timeout: 20_000, intervals: [500] }).toBeGreaterThanOrEqual(2);
    // The list polls metrics every 2 s, not faster.
    let polls = 0;
    const count = (r: { url(): string }) => void (r.url().includes('/api/metrics') && polls++);
    page.on('request', count);
    await page.waitForTimeout(6000);
    page.off('request', count);
    expect(polls).toBeGreaterThanOrEqual(2);
    expect(polls).toBeLessThanOrEqual(4);
    await shot('list-running-sparkline');
    await row.getByRole('link', { name: VM }).click();
    await page.locator('[data-testid=vm-state][data-state=running]').waitFor();
  }, 150_000);

  it('runs a command in the serial console (xterm.js) and shows the answer', async () => {
    const page = b.page;
    await page.getByRole('tab', { name: 'Serial console' }).click();
    await page.getByText('Serial console: connected').waitFor();
    await page.locator('[data-testid=serial-terminal]').click();
    // The guest may still be booting: type the command again until it answers. The typed line
    // reads "ui$((6*7))", so "ui42" can only come from the guest's shell.
    const t0 = Date.now();
    while (!/^ui42$/m.test(await terminalText(b))) {
      expect(Date.now() - t0, `no ui42 in the terminal:\n${await terminalText(b)}`).toBeLessThan(90_000);
      await page.keyboard.type('echo ui$((6*7))\n', { delay: 5 });
      await page.waitForTimeout(3000);
    }
    await shot('serial-console');
    // Keyboard users leave the terminal (which takes Tab for the guest) with Ctrl+].
    await page.keyboard.press('Control+]');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Focus terminal');
  }, 120_000);

  it('opens the graphical console (noVNC) and gets a non-blank screen', async () => {
    // The VGA screen shows SeaBIOS's banner ("SeaBIOS (version …) Booting from ROM..."): the test
    // guest's kernel is booted through PVH with console=ttyS0 and leaves the VGA text as it is.
    const page = b.page;
    await page.getByRole('tab', { name: 'Graphical console' }).click();
    await page.getByText('VNC: connected').waitFor();
    await expect.poll(async () => (await canvasInk(b)).lit, { timeout: 30_000, intervals: [500] }).toBeGreaterThan(100);
    const ink = await canvasInk(b);
    expect(ink.w).toBeGreaterThanOrEqual(640);
    expect(ink.h).toBeGreaterThanOrEqual(350);
    await shot('vnc-console');
  }, 60_000);

  it('stops it from the list, the Stop button saying "Stopping…" (never "Starting…") while the stop is in flight', async () => {
    const page = b.page;
    await page.getByRole('link', { name: 'VMs', exact: true }).click();
    const row = page.locator(`tr[data-vm=${VM}]`);
    await row.locator('[data-state=running]').waitFor();
    // Every label the row's action button shows from the click until the VM is stopped.
    await row.evaluate((tr) => {
      const cell = tr.lastElementChild!;
      const seen: string[] = [];
      (window as unknown as { seenLabels: string[] }).seenLabels = seen;
      const note = () => cell.querySelectorAll('button').forEach((btn) => seen.at(-1) !== btn.textContent && seen.push(btn.textContent ?? ''));
      new MutationObserver(note).observe(cell, { subtree: true, childList: true, characterData: true });
    });
    await row.getByRole('button', { name: `Stop ${VM}` }).click();
    await row.locator('[data-state=stopped]').waitFor({ timeout: 60_000 });
    await expect.poll(() => row.getByRole('button', { name: `Start ${VM}` }).textContent(), { timeout: 10_000 }).toBe('Start');
    const seen = await page.evaluate(() => (window as unknown as { seenLabels: string[] }).seenLabels);
    expect(seen).toContain('Stopping…');
    expect(seen).not.toContain('Starting…');
    expect(seen.at(-1)).toBe('Start');
    await shot('list-stopped-after-stop');
    expect(qemuProcessesMentioning(home.dir)).toEqual([]);
    await row.getByRole('link', { name: VM }).click();
    await page.locator('[data-testid=vm-state][data-state=stopped]').waitFor();
    await shot('detail-stopped');
  }, 90_000);

  it('points a definition error at its line in the YAML editor', async () => {
    const page = b.page;
    await page.getByRole('tab', { name: 'Definition' }).click();
    const ta = page.getByLabel(`Definition of ${VM} (YAML)`);
    const yaml = await ta.inputValue();
    expect(yaml).toContain(`name: ${VM}`);
    await ta.fill(`${yaml.trimEnd()}\nmemroy: 1G\n`);
    await page.getByRole('button', { name: 'Save' }).click();
    const issue = page.locator('[data-issue-path=memroy]');
    await issue.waitFor();
    expect(await issue.textContent()).toMatch(/line \d+/);
    expect(await ta.getAttribute('aria-invalid')).toBe('true');
    await issue.getByRole('button', { name: /Go to/ }).click();
    expect(await page.evaluate(() => {
      const t = document.activeElement as HTMLTextAreaElement;
      return t.value.slice(t.selectionStart, t.selectionEnd);
    })).toBe('memroy');
    await shot('definition-error');
    await page.getByRole('button', { name: 'Revert' }).click();

    // A YAML syntax error (a duplicate key) in a text that opens with a comment and `---`: the
    // line shown is the line of the error in the text typed, and Go to selects that line.
    const typed = `# webui, edited by hand\n---\n${yaml.trimEnd()}\nname: again\n`;
    const errLine = typed.split('\n').indexOf('name: again') + 1;
    await ta.fill(typed);
    await page.getByRole('button', { name: 'Validate' }).click();
    const syntax = page.locator('[data-issue-path^="request body:"]');
    await syntax.first().waitFor();
    expect(await syntax.first().textContent()).toContain(`(line ${errLine})`);
    expect(await syntax.first().textContent()).toMatch(/unique/);
    await syntax.first().getByRole('button', { name: `Go to line ${errLine} in the definition` }).click();
    expect(await page.evaluate(() => {
      const t = document.activeElement as HTMLTextAreaElement;
      return t.value.slice(t.selectionStart, t.selectionEnd);
    })).toBe('name: again');
    await shot('definition-syntax-error');
    await page.getByRole('button', { name: 'Revert' }).click();

    await page.getByRole('link', { name: 'VMs', exact: true }).click();
    await page.locator(`tr[data-vm=${VM}] [data-state=stopped]`).waitFor();
    await shot('list-stopped');
  });

  it('shows networks, creates a disk image and runs the host check', async () => {
    const page = b.page;
    const r = await post('/api/networks', { yaml: 'kind: network\nname: usernet\ntype: user\n' });
    expect(r.status, await r.clone().text()).toBe(200);

    await page.getByRole('link', { name: 'Networks', exact: true }).click();
    const net = page.getByRole('table', { name: 'Networks' }).getByRole('row').filter({ hasText: 'usernet' });
    await net.waitFor();
    expect(await net.textContent()).toContain('user');
    await shot('networks');

    await page.getByRole('link', { name: 'Disks', exact: true }).click();
    await page.getByLabel('Path').fill('data.qcow2');
    await page.getByLabel('Size').fill('64M');
    await page.getByRole('button', { name: 'Create image' }).click();
    await page.getByRole('button', { name: 'Details of data.qcow2' }).click();
    const info = page.locator('section[aria-labelledby=disk-info] pre');
    await info.waitFor();
    expect(await info.textContent()).toMatch(/"format": "qcow2"/);
    expect(await info.textContent()).toContain(String(64 * 1024 * 1024));
    await shot('disks');

    await page.getByRole('link', { name: 'Host', exact: true }).click();
    const rows = page.getByRole('table', { name: 'Host checks' }).locator('tbody tr');
    await rows.first().waitFor({ timeout: 60_000 });
    expect(await rows.count()).toBeGreaterThan(3);
    expect(await page.getByLabel('Summary').textContent()).toMatch(/accelerator (KVM|TCG)/);
    await shot('host-check');
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('shows a Guest agent card for a running VM with agent: true, saying plainly when no agent answers', async () => {
    const { page } = b;
    const yaml = 'name: withagent\nmemory: 256M\nagent: true\nkernel: { builtin: test-guest }\nstopTimeout: 5\n';
    const cr = await post('/api/vms', { yaml });
    expect(cr.status, await cr.clone().text()).toBe(200);
    const st = await post('/api/vms/withagent/start', { waitForGuest: true });
    expect(st.status, await st.clone().text()).toBe(200);
    await page.goto(`${base}/?token=${token}#/vms/withagent`);
    await page.getByRole('heading', { name: 'Guest agent' }).waitFor();
    // The test guest runs no qemu-ga: the card says so with the API's code, and does not break the page.
    await page.getByTestId('agent-none').waitFor({ timeout: 20_000 });
    expect(await page.getByTestId('agent-none').textContent()).toMatch(/No guest agent answers \(QGA_UNAVAILABLE\)/);
    await shot('agent-card-no-agent');
    const k = await post('/api/vms/withagent/kill');
    expect(k.status, await k.clone().text()).toBe(200);
    expect(pageErrors).toEqual([]);
  }, 90_000);
  it('backs a VM up from its Backups tab (full, then incremental) and verifies a backup', async () => {
    const { page } = b;
    const yaml = 'name: bkui\nmemory: 128M\nkernel: { builtin: test-guest }\ndisks: [{ id: data, file: bkui.qcow2, create: { size: 16M } }]\n';
    const cr = await post('/api/vms', { yaml });
    expect(cr.status, await cr.clone().text()).toBe(200);
    // Start once so the disk exists, then back the stopped VM up (qemu-storage-daemon).
    expect((await post('/api/vms/bkui/start', {})).status).toBe(200);
    expect((await post('/api/vms/bkui/kill')).status).toBe(200);
    await page.goto(`${base}/?token=${token}#/vms/bkui/backups`);
    await page.getByTestId('backups-none').waitFor();
    await page.getByRole('button', { name: 'Back up now' }).click();
    await expect.poll(() => page.getByTestId('backup-notice').textContent(), { timeout: 60_000 }).toMatch(/: full, .* — full because no earlier backup/);
    await page.getByRole('button', { name: 'Back up now' }).click();
    await expect.poll(() => page.getByTestId('backup-notice').textContent(), { timeout: 60_000 }).toMatch(/: incremental, /);
    await expect.poll(() => page.getByTestId('backup-row').count()).toBe(2);
    await page.getByTestId('backup-row').first().getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.getByTestId('backup-notice').textContent(), { timeout: 60_000 }).toMatch(/verified/);
    await shot('backups-tab');
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
