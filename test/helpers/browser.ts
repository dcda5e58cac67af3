/**
 * Debian's Chromium driven by playwright-core (no browser download): headless, no sandbox (root),
 * no network chatter, a fresh profile dir removed on close. Screenshots go to test-output/<dir>/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.KVMCTL_CHROMIUM ?? '/usr/bin/chromium';
export const hasChromium = (): boolean => fs.existsSync(CHROMIUM);

export type TestBrowser = { context: BrowserContext; page: Page; shot(name: string): Promise<string>; close(): Promise<void> };

export async function openBrowser(o: { shotsDir: string; width?: number; height?: number }): Promise<TestBrowser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-chromium-'));
  // A persistent context on a new, empty profile dir (playwright refuses --user-data-dir in args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: o.width ?? 1366, height: o.height ?? 768 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  fs.mkdirSync(o.shotsDir, { recursive: true });
  let n = 0;
  return {
    context,
    page,
    shot: async (name) => {
      const file = path.join(o.shotsDir, `${String(++n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
