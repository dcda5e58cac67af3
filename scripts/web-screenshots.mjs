// Regenerates docs/web-*.png: every view of the web UI in Debian's Chromium (playwright-core)
// against a real `kvmctl serve` and a real QEMU test guest, in a throw-away KVMCTL_HOME.
// Needs the CLI and the UI built (npm run build && npm run build:web) and the test guest
// (KVMCTL_GUEST_CACHE, default .cache/guest). Usage: node scripts/web-screenshots.mjs [view …]
// Ends the QEMU and the server it started (by PID) and removes its home, also on failure.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/kvmctl.js');
const DOCS = path.join(ROOT, 'docs');
const CHROMIUM = process.env.KVMCTL_CHROMIUM ?? '/usr/bin/chromium';
const VM = 'demo-web';

/** Each view: file name, window width, the address, what to wait for, an optional step before the shot. */
const VIEWS = [
  { name: 'list', width: 1366, hash: '#/vms', ready: `tr[data-vm=${VM}] [data-state=running]` },
  { name: 'vm-overview', width: 1366, hash: `#/vms/${VM}`, ready: '[data-testid=vm-state][data-state=running]' },
  { name: 'vm-definition', width: 1366, hash: `#/vms/${VM}/definition`, ready: 'textarea' },
  { name: 'vm-hardware', width: 1366, hash: `#/vms/${VM}/hardware`, ready: 'tr[data-disk=disk0]' },
  { name: 'vm-snapshots', width: 1366, hash: `#/vms/${VM}/snapshots`, ready: 'tr[data-snapshot=before-upgrade]' },
  { name: 'vm-logs', width: 1366, hash: `#/vms/${VM}/logs`, ready: '[data-testid=log-serial]' },
  { name: 'vm-serial', width: 1366, hash: `#/vms/${VM}/serial`, ready: 'text=Serial console: connected', wait: 1500 },
  { name: 'users', width: 1366, hash: '#/users', ready: 'tr[data-token=ci]' },
  { name: 'create', width: 1366, hash: '#/create', ready: 'form' },
  { name: 'mobile-list', width: 390, height: 844, hash: '#/vms', ready: `tr[data-vm=${VM}]` },
  { name: 'mobile-vm', width: 390, height: 844, hash: `#/vms/${VM}`, ready: '[data-testid=vm-state]' },
];

const only = process.argv.slice(2);
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kws-'));
const env = { ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: process.env.KVMCTL_GUEST_CACHE ?? path.join(ROOT, '.cache/guest') };
const token = randomBytes(16).toString('hex');
const cli = (...args) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kvmctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

let server;
let browser;
try {
  fs.mkdirSync(path.join(home, 'data/images'), { recursive: true });
  cli('disk', 'create', path.join(home, 'data/images', `${VM}.qcow2`), '256M', '--format', 'qcow2', '-q');
  const def = path.join(home, `${VM}.yaml`);
  fs.writeFileSync(def, `# the web UI screenshots' VM\nname: ${VM}\ndescription: test guest for the screenshots\nmemory: 256M\nkernel: { builtin: test-guest }\ndisks:\n  - file: ${VM}.qcow2\nstopTimeout: 5\n`);
  cli('apply', '-f', def);
  cli('snapshot', VM, 'before-upgrade');
  cli('serve', 'token', 'add', 'ci', '--role', 'operator', '--vms', 'demo-*');
  cli('serve', 'token', 'add', 'dashboard', '--role', 'viewer');

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`], { env: { ...env, KVMCTL_TOKEN: token }, stdio: 'ignore' });
  const api = (method, url, body) => fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  for (let t0 = Date.now(); ; ) {
    try {
      if ((await fetch(`${base}/api/health`)).ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > 30_000) throw new Error('kvmctl serve did not come up');
    await new Promise((r) => setTimeout(r, 200));
  }
  const started = await api('POST', `/api/vms/${VM}/start`, { waitForGuest: true, timeoutSec: 120 });
  if (!started.ok) throw new Error(`start: ${await started.text()}`);
  // Something in the audit log and a pending change to show.
  await fetch(`${base}/api/vms/${VM}/start`, { method: 'POST', headers: { authorization: 'Bearer wrong' } });
  const cur = await (await api('GET', `/api/vms/${VM}`)).json();
  await api('PUT', `/api/vms/${VM}`, { yaml: cur.yaml.replace('memory: 256M', 'memory: 512M') });

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  for (const v of VIEWS) {
    if (only.length && !only.includes(v.name)) continue;
    const page = await browser.newPage({ viewport: { width: v.width, height: v.height ?? 768 } });
    await page.goto(`${base}/?token=${token}${v.hash}`);
    await page.locator(v.ready).first().waitFor({ timeout: 60_000 });
    if (v.name === 'vm-serial') {
      await page.locator('[data-testid=serial-terminal]').click();
      await page.keyboard.type('uname -a; ls /\n', { delay: 5 });
    }
    await page.waitForTimeout(v.wait ?? 400);
    const file = path.join(DOCS, `web-${v.name}.png`);
    await page.screenshot({ path: file });
    console.log(`${path.relative(ROOT, file)}`);
    await page.close();
  }
} finally {
  await browser?.close().catch(() => {});
  // End what this script started, by PID: the guest's QEMU, then the server.
  for (const f of ['qemu.pid']) {
    try {
      const pid = Number(fs.readFileSync(path.join(home, 'run/vms', VM, f), 'utf8').trim());
      if (pid > 1 && fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-system')) process.kill(pid, 'SIGKILL');
    } catch {
      /* not running */
    }
  }
  if (server?.pid && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => (server.kill('SIGKILL'), r()), 5000);
      server.once('exit', () => (clearTimeout(t), r()));
    });
  }
  fs.rmSync(home, { recursive: true, force: true });
}
