/**
 * The Networks page in a real browser (Debian's Chromium through playwright-core) against a real
 * `kvmctl serve` confined to a network namespace of the test's own (KVMCTL_NETNS), with a nat
 * network up in it (dnsmasq, nftables) and a real test guest holding a DHCP lease:
 *  - Leases lists the guest's lease with the VM and NIC, the same address as `kvmctl ip`;
 *  - New network: a definition typed in the YAML editor is stored (the CLI shows it); a bad one
 *    lists its issue with the path and stores nothing;
 *  - Edit: a changed description is saved over the old definition.
 * The root namespace is checked unchanged (links, nft ruleset). Screenshots: test-output/web-ui-networks/.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths } from '../../src/host/paths.js';
import { dnsmasqPids } from '../../src/net/nat/dnsmasq.js';
import { natFiles } from '../../src/net/nat/files.js';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { canUseNetns, createNetns, type Netns } from '../helpers/netns.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-networks');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const haveTools = ['/usr/sbin/nft', '/usr/sbin/dnsmasq'].every((p) => fs.existsSync(p));
const can = hasChromium() && WEB_BUILT && canBootGuest() && canUseNetns().ok && haveTools;

const defs = `kind: network
name: wnat
type: nat
address: 10.78.0.1/24
---
name: wnvm
memory: 256M
kernel: { builtin: test-guest, append: "kvt.dhcp=eth0 kvt.hostname=wnvm" }
nics: [{ network: wnat }]
stopTimeout: 5
`;

const rootState = async () => ({
  links: (await run(['ip', '-o', 'link', 'show'])).stdout.replace(/\s+link\/.*$/gm, '').split('\n').map((l) => l.split(':')[1]?.trim()).sort().join(','),
  nft: (await run(['nft', 'list', 'ruleset'])).stdout,
});

describe.skipIf(!can)('web UI: the Networks page (Chromium, kvmctl serve in a namespace, nat + dnsmasq, real QEMU)', () => {
  let home: Home;
  let ns: Netns;
  let srv: Served;
  let b: TestBrowser;
  let before: Awaited<ReturnType<typeof rootState>>;
  const token = randomBytes(16).toString('hex');

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    before = await rootState();
    home = makeHome();
    ns = await createNetns('kvt-wnet');
    await home.apply(defs);
    const u = await home.cli(['net', 'up', 'wnat', '--netns', ns.name]);
    expect(u.code, u.stderr).toBe(0);
    const s = await home.cli(['start', 'wnvm', '--netns', ns.name, '--wait-for-guest', '--timeout', '150'], { timeoutMs: 180_000 });
    expect(s.code, s.stderr).toBe(0);
    srv = await startServe(home, token, 30_000, { KVMCTL_NETNS: ns.name });
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 900 });
  }, 300_000);
  afterAll(async () => {
    await b?.close();
    await srv?.stop();
    await home?.cli(['kill', 'wnvm']).catch(() => undefined);
    await home?.cli(['net', 'down', 'wnat', '--force', '--netns', ns?.name ?? '']).catch(() => undefined);
    if (home) for (const pid of dnsmasqPids(natFiles(resolvePaths(home.env), 'wnat').conf)) process.kill(pid, 'SIGKILL');
    await home?.cleanup();
    await ns?.destroy();
    if (before) expect(await rootState()).toEqual(before);
  }, 60_000);

  it("Leases shows the guest's lease with its VM and NIC, the address `kvmctl ip` reports", async () => {
    const ip = await home.cli(['ip', 'wnvm', '--timeout', '60']);
    expect(ip.code, ip.stderr).toBe(0);
    const addr = ip.stdout.trim();
    expect(addr).toMatch(/^10\.78\.0\.\d+$/);
    await b.page.goto(`${srv.base}/?token=${token}#/networks`);
    await b.page.getByRole('button', { name: 'Leases of wnat' }).click();
    const table = b.page.getByTestId('net-leases');
    await expect.poll(() => table.innerText(), { timeout: 20_000 }).toContain(addr);
    const row = table.locator('tbody tr', { hasText: addr });
    expect(await row.innerText()).toContain('wnvm (net0)');
    const api = (await (await fetch(`${srv.base}/api/networks/wnat/leases`, { headers: { authorization: `Bearer ${token}` } })).json()) as { ip: string; mac: string; vm?: string }[];
    const lease = api.find((l) => l.ip === addr)!;
    expect(lease.vm).toBe('wnvm');
    expect(await row.getAttribute('data-mac')).toBe(lease.mac);
    await b.shot('leases');
  }, 120_000);

  it('New network: a bad definition lists its issue and stores nothing; a good one is stored; Edit saves a change', async () => {
    const page = b.page;
    await page.goto(`${srv.base}/?token=${token}#/networks`);
    await page.getByRole('button', { name: 'New network' }).click();
    const editor = page.getByLabel('New network definition (YAML)');
    await editor.fill('kind: network\nname: wlan9\ntype: host-only\naddresses: [10.79.0.1/33]\n');
    await page.getByRole('button', { name: 'Save' }).click();
    const issue = page.locator('#net-yaml-issues [data-issue-path]').first();
    await issue.waitFor();
    expect(await issue.getAttribute('data-issue-path')).toMatch(/addresses/);
    expect(await editor.getAttribute('aria-invalid')).toBe('true');
    await b.shot('new-network-issue');
    expect((await home.cli(['net', 'list'])).stdout).not.toContain('wlan9');
    await editor.fill('kind: network\nname: wlan9\ntype: host-only\ndescription: first\naddresses: [10.79.0.1/24]\n');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('tr', { hasText: 'wlan9' }).first().waitFor({ timeout: 10_000 }).catch(async (e) => {
      await b.shot('new-network-not-listed');
      throw e;
    });
    const shown = await home.cli(['net', 'show', 'wlan9', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).spec).toMatchObject({ name: 'wlan9', type: 'host-only', description: 'first' });

    await page.getByRole('button', { name: 'Edit wlan9' }).click();
    const edit = page.getByLabel('Definition of network wlan9 (YAML)');
    expect(await edit.inputValue()).toContain('description: first');
    await edit.fill((await edit.inputValue()).replace('description: first', 'description: second'));
    await b.shot('edit');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(async () => JSON.parse((await home.cli(['net', 'show', 'wlan9', '--json'])).stdout).spec.description).toBe('second');
    // defining networks changed nothing on the host: wlan9 was never brought up
    expect((await ns.exec(['ip', '-o', 'link', 'show'])).stdout).not.toContain('wlan9');
  }, 120_000);
});
