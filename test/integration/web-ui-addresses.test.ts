/**
 * The Addresses card of a running VM's overview in a real browser (Debian's Chromium through
 * playwright-core) against the real `kvmctl serve` and a real QEMU test guest started with the
 * agent channel (agent: true) but no agent in the guest: the overview comes up without waiting on
 * the silent agent (1 s bound), the card says the agent does not answer, and the VM detail and
 * /addresses routes say `unavailable`. The agent's addresses beside leases are checked on the
 * Debian guest (test/integration/guest-exec.test.ts). Screenshot: test-output/web-ui-addresses/.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { canBootGuest } from '../helpers/guest-vm.js';
import { ROOT, makeHome, type Home } from '../helpers/kvmctl.js';
import { startServe, type Served } from '../helpers/web-serve.js';

const SHOTS = path.join(ROOT, 'test-output/web-ui-addresses');
const WEB_BUILT = fs.existsSync(path.join(ROOT, 'dist/web/index.html'));
const VM = 'wa';

describe.skipIf(!hasChromium() || !WEB_BUILT || !canBootGuest())('web UI: the Addresses card (Chromium, kvmctl serve, real QEMU)', () => {
  let home: Home;
  let srv: Served;
  let b: TestBrowser;
  const token = randomBytes(16).toString('hex');
  const get = (url: string) => fetch(`${srv.base}${url}`, { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true });
    home = makeHome();
    await home.apply(`name: ${VM}\nmemory: 256M\nagent: true\nkernel: { builtin: test-guest }\nstopTimeout: 5\n`);
    const s = await home.cli(['start', VM], { timeoutMs: 60_000 });
    expect(s.code, s.stderr).toBe(0);
    srv = await startServe(home, token);
    b = await openBrowser({ shotsDir: SHOTS, width: 1366, height: 768 });
  }, 120_000);
  afterAll(async () => {
    await b?.close();
    await srv?.stop();
    await home?.cleanup();
  }, 60_000);

  it('shows the card at once, saying the agent does not answer; the API says unavailable', async () => {
    const t0 = Date.now();
    const d = await get(`/api/vms/${VM}`);
    const detailMs = Date.now() - t0;
    expect(d.status).toBe(200);
    expect((await d.json()).addresses).toMatchObject({ agentState: 'unavailable', addresses: [] });
    expect(detailMs).toBeLessThan(5_000); // the silent agent costs its 1 s, not the client's default
    const a = await get(`/api/vms/${VM}/addresses`);
    expect(await a.json()).toMatchObject({ agentState: 'unavailable' });

    await b.page.goto(`${srv.base}/?token=${token}#/vms/${VM}`);
    const card = b.page.getByTestId('vm-addresses');
    await card.waitFor({ timeout: 20_000 });
    await expect.poll(() => card.innerText(), { timeout: 20_000 }).toMatch(/No addresses known[\s\S]*The guest agent does not answer/);
    await b.shot('overview-addresses');
  }, 120_000);
});
