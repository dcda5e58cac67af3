/**
 * ISO upload and the create wizard's real-guest fields in a real browser (Debian's Chromium via
 * playwright-core) against the real `kvmctl serve --listen` (upload limit 32M) and a real QEMU
 * test guest with a CD-ROM drive: an ISO chosen in the Disks page's file input is uploaded with a
 * progress bar, arrives byte for byte in <images>/iso/ and is listed; one over the limit is refused
 * in the page before it is sent (the server refuses it too: test/integration/iso-upload.test.ts); the uploaded ISO goes into the running VM's CD-ROM from its Hardware tab and
 * out again. The wizard sends firmware, TPM, agent and cloud-init (user, SSH key, host name): bad
 * values come back from the server's schema and are shown at their fields; good ones are stored.
 * Screenshots: test-output/web-ui-media/.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-media');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const VM = 'cdui';
const MiB = 1024 * 1024;

describe.skipIf(!hasChromium() || !WEB_BUILT)('web UI: ISO upload, CD-ROM, create wizard (Chromium, kvmctl serve, real QEMU)', () => {
  let home: Home;
  let srv: Served;
  let b: TestBrowser;
  const token = crypto.randomBytes(16).toString('hex');
  const pageErrors: string[] = [];
  const api = async (url: string) => (await fetch(`${srv.base}${url}`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<any>;

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    fs.mkdirSync(path.join(home.images, 'iso'), { recursive: true });
    fs.writeFileSync(path.join(home.images, 'iso', 'empty.iso'), Buffer.alloc(64 * 1024));
    await home.apply(`name: ${VM}\nmemory: 128M\nkernel: { builtin: test-guest }\ncdroms: [iso/empty.iso]\nstopTimeout: 5\n`);
    const st = await home.cli(['start', VM]);
    expect(st.code, st.stderr).toBe(0);
    srv = await startServe(home, token, 30_000, {}, ['--max-upload', '32M']);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.setDefaultTimeout(30_000);
  }, 120_000);
  afterAll(async () => {
    await b?.close();
    await srv?.stop();
    await home?.cleanup();
  });

  it('uploads an ISO from the Disks page with a progress bar; it arrives whole and is listed', async () => {
    const data = crypto.randomBytes(24 * MiB);
    await b.page.goto(`${srv.base}/?token=${token}#/disks`);
    await b.page.getByRole('heading', { name: 'ISO images' }).waitFor();
    await b.page.getByLabel('ISO file').setInputFiles({ name: 'my installer (v2).iso', mimeType: 'application/x-iso9660-image', buffer: data });
    // The name is made safe from the file's own.
    expect(await b.page.getByLabel('Save as').inputValue()).toBe('my_installer__v2_.iso');
    await b.page.getByLabel('Save as').fill('installer.iso');
    // Throttle the page's network so the progress bar is seen moving.
    const cdp = await b.context.newCDPSession(b.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 8 * MiB });
    await b.page.getByRole('button', { name: 'Upload', exact: true }).click();
    const bar = b.page.getByTestId('iso-progress');
    await bar.waitFor();
    await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 30_000 }).toBeGreaterThan(0);
    await b.shot('iso-uploading');
    await b.page.getByText(/installer\.iso uploaded \(24 MiB\)/).waitFor({ timeout: 60_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await b.page.locator('tr[data-iso="installer.iso"]').waitFor();
    const got = fs.readFileSync(path.join(home.images, 'iso', 'installer.iso'));
    expect(crypto.createHash('sha256').update(got).digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    await b.shot('iso-uploaded');
    // Over the server's limit (32M here): refused in the page before anything is sent.
    await b.page.getByLabel('ISO file').setInputFiles({ name: 'big.iso', mimeType: 'application/octet-stream', buffer: Buffer.alloc(40 * MiB) });
    await b.page.getByText(/40 MiB is over the server's limit of 32 MiB/).waitFor();
    expect(await b.page.getByRole('button', { name: 'Upload', exact: true }).isDisabled()).toBe(true);
    // A bad name is caught in the form (and by the server, which checks it again).
    await b.page.getByLabel('ISO file').setInputFiles({ name: 'x.iso', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1000) });
    await b.page.getByLabel('Save as').fill('../x.iso');
    expect(await b.page.getByRole('button', { name: 'Upload', exact: true }).isDisabled()).toBe(true);
    expect(await b.page.getByLabel('Save as').getAttribute('aria-invalid')).toBe('true');
    const listed = await api('/api/isos');
    expect(listed.isos.map((i: { name: string }) => i.name).sort()).toEqual(['empty.iso', 'installer.iso']);
  }, 120_000);

  it("puts the uploaded ISO into the running VM's CD-ROM from the Hardware tab, and ejects it", async () => {
    await b.page.goto(`${srv.base}/?token=${token}#/vms/${VM}/hardware`);
    const medium = b.page.getByTestId('medium-cd0');
    await medium.filter({ hasText: 'empty.iso' }).waitFor();
    await b.page.getByLabel('ISO for cd0').selectOption('iso/installer.iso');
    await b.page.getByRole('button', { name: 'Insert into cd0' }).click();
    await medium.filter({ hasText: 'installer.iso' }).waitFor();
    await b.shot('cdrom-inserted');
    const st = await api(`/api/vms/${VM}/cdrom`);
    expect(st.drives[0]).toMatchObject({ id: 'cd0', inserted: path.join(home.images, 'iso', 'installer.iso') });
    await b.page.getByRole('button', { name: 'Eject cd0' }).click();
    await medium.filter({ hasText: /^empty$/ }).waitFor();
  });

  it('the wizard sends firmware, TPM, agent and cloud-init; the schema’s errors appear at their fields; good values are stored', async () => {
    await b.page.goto(`${srv.base}/?token=${token}#/create`);
    await b.page.getByLabel('Name', { exact: true }).fill('wiz1');
    await b.page.getByLabel('Firmware').selectOption('uefi-secure');
    await b.page.getByLabel('TPM').check();
    await b.page.getByLabel('Guest agent').check();
    await b.page.getByTestId('ci-toggle').check();
    await b.page.getByLabel('User', { exact: true }).fill('Bad User');
    await b.page.getByLabel('SSH public keys').fill('not-a-key');
    await b.page.getByLabel('Host name').fill('-bad-');
    await b.page.getByRole('button', { name: 'Create VM' }).click();
    for (const [k, re] of [
      ['ciUser', /cloudInit\.userData\.users\[0\]\.name: .*Unix user name/],
      ['ciKeys', /cloudInit\.userData\.users\[0\]\.sshAuthorizedKeys\[0\]: .*OpenSSH public key/],
      ['ciHostname', /cloudInit\.userData\.hostname: .*host name/],
    ] as const) {
      const err = b.page.locator(`[data-field-error=${k}]`);
      await err.waitFor();
      expect(await err.textContent()).toMatch(re);
    }
    // Focus went to the first field in error.
    expect(await b.page.evaluate(() => (document.activeElement as HTMLElement | null)?.getAttribute('aria-invalid'))).toBe('true');
    await b.shot('create-cloudinit-errors');
    expect((await api('/api/vms')).map((v: { name: string }) => v.name)).not.toContain('wiz1');

    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0T6p1Hxm6v0xmZr0wq0vYv9n4S0xYz1b2c3d4e5f6 tester@host';
    await b.page.getByLabel('User', { exact: true }).fill('admin');
    await b.page.getByLabel('SSH public keys').fill(key);
    await b.page.getByLabel('Host name').fill('web1');
    await b.page.getByRole('button', { name: 'Create VM' }).click();
    await b.page.waitForURL(/#\/vms\/wiz1$/);
    const vm = await api('/api/vms/wiz1');
    expect(vm.spec).toMatchObject({
      firmware: { type: 'uefi-secure' },
      tpm: { version: '2.0' },
      agent: true,
      cloudInit: { userData: { hostname: 'web1', users: [{ name: 'admin', sshAuthorizedKeys: [key], sudo: true }] } },
    });
    await b.shot('create-done');
    expect(pageErrors).toEqual([]);
  });
});
