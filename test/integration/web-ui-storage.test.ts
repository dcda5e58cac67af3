/**
 * The Storage page in a real browser (Debian's Chromium via playwright-core) against a real
 * `kvmctl serve --listen` working in the namespace of a real Ceph (test/helpers/ceph.ts: mon, mgr,
 * memstore OSD): the page lists the named storages (an rbd one and a dir one); selecting the rbd
 * storage lists its volumes; a volume created in the page is in the pool with its size (`rbd info`
 * as the cluster's admin, `kvmctl volume list`), resized in the page it has the new size, deleted
 * (after a confirm dialog; dismissing it keeps the volume) it is gone. GET /api/storage never holds
 * the key, the keyring's path or its contents, for any role; the check needs operator. At 390 px
 * the page does not scroll sideways. Screenshots: test-output/web-ui-storage/.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { canRunCeph, startCeph, type Ceph } from '../helpers/ceph.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-storage');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const can = canRunCeph();
const MiB = 2 ** 20;
const why = !can.ok ? can.why : !hasChromium() ? 'no Chromium' : !WEB_BUILT ? 'the web UI is not built (npm run build:web)' : '';

describe.skipIf(!!why)(`web UI: Storage page on a real Ceph (Chromium, kvmctl serve)${why ? ` (skipped: ${why})` : ''}`, () => {
  let c: Ceph | undefined;
  let home: Home | undefined;
  let srv: Served | undefined;
  let b: TestBrowser | undefined;
  let viewer = '';
  const token = crypto.randomBytes(16).toString('hex');
  const pageErrors: string[] = [];
  const api = async (url: string, tok = token) => {
    const r = await fetch(`${srv!.base}${url}`, { headers: { authorization: `Bearer ${tok}` } });
    return { status: r.status, text: await r.text() };
  };
  const ok = async (args: string[]) => {
    const r = await home!.cli(args, { env: { KVMCTL_NETNS: c!.netns.name } });
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const rbdSize = async (image: string) => (JSON.parse(await c!.rbd('info', '--format', 'json', `${c!.pool}/${image}`)) as { size: number }).size;
  const cliVolumes = async () => JSON.parse(await ok(['--json', 'volume', 'list', 'ceph1'])) as { volume: string; size: number; snapshot?: string }[];

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    c = await startCeph();
    home = makeHome();
    const def = path.join(home.dir, 'ceph1.yaml');
    fs.writeFileSync(def, `kind: storage\nname: ceph1\ntype: rbd\npool: ${c.pool}\nmonitors: [${c.monitor}]\nuser: ${c.user}\nkeyring: ${c.keyring}\n`);
    await ok(['storage', 'define', '-f', def]);
    const dirPath = path.join(home.dir, 'local-pool');
    fs.mkdirSync(dirPath);
    fs.writeFileSync(path.join(home.dir, 'local.yaml'), `kind: storage\nname: local\ntype: dir\npath: ${dirPath}\n`);
    await ok(['storage', 'define', '-f', path.join(home.dir, 'local.yaml')]);
    const t = await home.cli(['serve', 'token', 'add', 'vera', '--role', 'viewer']);
    expect(t.code, t.stderr).toBe(0);
    viewer = t.stdout.trim().split('\n').pop()!;
    srv = await startServe(home, token, 30_000, { KVMCTL_NETNS: c.netns.name });
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
    b.page.on('pageerror', (e) => pageErrors.push(e.message));
    b.page.setDefaultTimeout(30_000);
  }, 240_000);
  afterAll(async () => {
    // Each step on its own: one failing does not leave the others running.
    await b?.close().catch(() => {});
    await srv?.stop().catch(() => {});
    await home?.cleanup().catch(() => {});
    await c?.stop();
  }, 60_000);

  it('GET /api/storage lists both storages without any key material, for a viewer too; check needs operator', async () => {
    const key = c!.key;
    const keyringText = fs.readFileSync(c!.keyring, 'utf8');
    for (const tok of [token, viewer]) {
      const r = await api('/api/storage', tok);
      expect(r.status, r.text).toBe(200);
      const list = JSON.parse(r.text) as Record<string, unknown>[];
      expect(list).toEqual([
        { name: 'ceph1', type: 'rbd', pool: c!.pool, monitors: [c!.monitor], user: c!.user },
        { name: 'local', type: 'dir', path: path.join(home!.dir, 'local-pool') },
      ]);
      expect(r.text).not.toContain(key);
      expect(r.text).not.toContain(c!.keyring);
      expect(r.text).not.toMatch(/keyring|secret|\[client\./i);
      for (const line of keyringText.split('\n').filter((l) => l.includes('key'))) expect(r.text).not.toContain(line.trim());
    }
    // kvmctl storage list goes through the same listStorages.
    const cliList = await ok(['storage', 'list']);
    expect(cliList).toMatch(new RegExp(`rbd\\tnamed\\tceph1\\tpool ${c!.pool} as client\\.${c!.user}`));
    expect(cliList).toMatch(/dir\tnamed\tlocal\t/);
    expect(cliList).not.toContain(key);
    // The check writes a probe image: an operator's, not a viewer's.
    expect((await api('/api/storage/ceph1/check', viewer)).status).toBe(403);
    const chk = await api('/api/storage/ceph1/check');
    expect(chk.status, chk.text).toBe(200);
    const cr = JSON.parse(chk.text) as { ok: boolean; free: number; checks: { check: string; ok: boolean }[] };
    expect(cr.ok).toBe(true);
    expect(cr.free).toBeGreaterThan(100 * MiB);
    expect(chk.text).not.toContain(key);
    // Unknown storage: 404 with a code, not 500.
    const nope = await api('/api/storage/nope/check');
    expect(nope.status).toBe(404);
    expect(JSON.parse(nope.text).code).toBe('STORAGE_NOT_FOUND');
  }, 120_000);

  it('the page lists the storages; create, resize and delete a volume from it', async () => {
    const p = b!.page;
    await p.goto(`${srv!.base}/?token=${token}#/storage`);
    await p.locator('tr[data-storage=ceph1]').waitFor();
    await p.locator('tr[data-storage=local]').waitFor();
    expect(await p.locator('tr[data-storage=ceph1]').innerText()).toContain(`pool ${c!.pool} as client.${c!.user}`);
    expect(await p.locator('main').innerText()).not.toContain(c!.key);
    // Only the rbd storage has volumes.
    expect(await p.getByRole('button', { name: 'Volumes of local' }).count()).toBe(0);
    await p.getByRole('button', { name: 'Check ceph1' }).click();
    await p.getByTestId('storage-check').getByText('ok', { exact: true }).waitFor({ timeout: 90_000 });
    await p.getByRole('button', { name: 'Volumes of ceph1' }).click();
    await p.getByText('No volumes in this storage.').waitFor();
    await b!.shot('storages');

    // Create.
    await p.getByLabel('Name', { exact: true }).fill('ui0');
    await p.getByLabel('Size', { exact: true }).fill('24M');
    await p.getByRole('button', { name: 'Create volume' }).click();
    await p.getByRole('status').getByText('Created ceph1/ui0 (24 MiB).').waitFor({ timeout: 60_000 });
    const row = p.locator('tr[data-volume=ui0]');
    await row.waitFor();
    expect(await row.getByTestId('volume-size').innerText()).toBe('24 MiB');
    expect(await rbdSize('ui0')).toBe(24 * MiB);
    expect((await cliVolumes()).find((v) => v.volume === 'ui0' && !v.snapshot)?.size).toBe(24 * MiB);
    // A bad size is the server's clear error, shown in the page; nothing is created.
    await p.getByLabel('Name', { exact: true }).fill('ui1');
    await p.getByLabel('Size', { exact: true }).fill('lots');
    await p.getByRole('button', { name: 'Create volume' }).click();
    await p.getByRole('alert').getByText(/is not a size/).waitFor();
    expect((await cliVolumes()).map((v) => v.volume)).toEqual(['ui0']);
    await b!.shot('volume-created');
    // A snapshot taken outside the page: its count shows after the next reload (the resize's).
    await c!.rbd('snap', 'create', `${c!.pool}/ui0@s1`);

    // Resize.
    await row.getByRole('button', { name: 'Resize ui0' }).click();
    expect(await p.getByLabel('New size of ui0').inputValue()).toBe('24M');
    await p.getByLabel('New size of ui0').fill('40M');
    await p.getByRole('form', { name: 'Resize ui0' }).getByRole('button', { name: 'Resize' }).click();
    await p.getByRole('status').getByText('Resized ceph1/ui0: 24 MiB → 40 MiB.').waitFor({ timeout: 60_000 });
    await expect.poll(async () => row.getByTestId('volume-size').innerText()).toBe('40 MiB');
    expect(await rbdSize('ui0')).toBe(40 * MiB);
    expect((await cliVolumes()).find((v) => v.volume === 'ui0' && !v.snapshot)?.size).toBe(40 * MiB);
    expect(await row.locator('td').nth(1).innerText()).toBe('1');
    await b!.shot('volume-resized');

    // Delete: with a snapshot it is refused (the error is shown, the volume stays).
    p.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Delete ui0' }).click();
    await p.getByRole('alert').waitFor();
    expect(await p.getByRole('alert').innerText()).toMatch(/snapshot/i);
    expect(await rbdSize('ui0')).toBe(40 * MiB);
    await c!.rbd('snap', 'rm', `${c!.pool}/ui0@s1`);
    // Dismissing the confirm keeps the volume.
    let asked = '';
    p.once('dialog', (d) => ((asked = d.message()), void d.dismiss()));
    await row.getByRole('button', { name: 'Delete ui0' }).click();
    await expect.poll(() => asked).toContain('Delete the volume ceph1/ui0?');
    expect((await cliVolumes()).map((v) => v.volume)).toEqual(['ui0']);
    // Accepting deletes it.
    p.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Delete ui0' }).click();
    await p.getByRole('status').getByText('Deleted ceph1/ui0.').waitFor({ timeout: 60_000 });
    await row.waitFor({ state: 'detached' });
    expect(await cliVolumes()).toEqual([]);
    await expect(c!.rbd('info', `${c!.pool}/ui0`)).rejects.toThrow();
    await b!.shot('volume-deleted');
    expect(pageErrors).toEqual([]);
  }, 240_000);

  it('at 390 px wide the Storage page does not scroll sideways', async () => {
    await ok(['volume', 'create', 'ceph1/a-rather-long-volume-name-for-the-narrow-layout', '8M']);
    const m = await openBrowser({ shotsDir: SHOTS, width: 390, height: 844 });
    try {
      m.page.on('pageerror', (e) => pageErrors.push(e.message));
      await m.page.goto(`${srv!.base}/?token=${token}#/storage`);
      await m.page.getByRole('button', { name: 'Volumes of ceph1' }).click();
      await m.page.locator('tr[data-volume]').first().waitFor();
      await m.page.waitForTimeout(200);
      await m.shot('mobile-storage');
      const w = await m.page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
      const wide = await m.page.evaluate(() =>
        [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
      );
      expect(w.scroll, `#/storage is ${w.scroll} px wide in a ${w.inner} px window: ${wide.join(', ')}`).toBeLessThanOrEqual(w.inner);
    } finally {
      await m.close();
    }
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
