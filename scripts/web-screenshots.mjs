// Regenerates docs/web-*.png: every view of the web UI in Debian's Chromium (playwright-core)
// against a real `kvmctl serve` and a real QEMU test guest, in a throw-away KVMCTL_HOME.
// Needs the CLI and the UI built (npm run build && npm run build:web) and the test guest
// (KVMCTL_GUEST_CACHE, default .cache/guest). Usage: node scripts/web-screenshots.mjs [view …]
// The cluster views (web-cluster*.png) run a one-host cluster (etcd-server, `kvmctl agent`, its
// own VM) inside a network namespace the script makes and deletes; skipped without etcd or root.
// Ends every process it started (by PID), removes its homes and the namespace, also on failure.
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
  { name: 'vm-hardware', width: 1366, height: 1100, hash: `#/vms/${VM}/hardware`, ready: 'tr[data-cdrom=cd0]' },
  { name: 'vm-graphs', width: 1366, height: 1000, hash: `#/vms/${VM}/graphs`, ready: '[data-testid=chart-cpu]', points: true, wait: 1200 },
  { name: 'host-graphs', width: 1366, height: 1000, hash: '#/graphs', ready: '[data-testid=metric-graphs] [role=img]', points: true, wait: 1200 },
  { name: 'disks', width: 1366, height: 1000, hash: '#/disks', ready: 'tr[data-iso="debian-netinst.iso"]' },
  { name: 'vm-snapshots', width: 1366, hash: `#/vms/${VM}/snapshots`, ready: 'tr[data-snapshot=before-upgrade]' },
  { name: 'vm-logs', width: 1366, hash: `#/vms/${VM}/logs`, ready: '[data-testid=log-serial]' },
  { name: 'vm-serial', width: 1366, hash: `#/vms/${VM}/serial`, ready: 'text=Serial console: connected', wait: 1500 },
  { name: 'users', width: 1366, hash: '#/users', ready: 'tr[data-token=ci]' },
  { name: 'create', width: 1366, height: 1250, hash: '#/create', ready: 'form', step: 'wizard' },
  { name: 'mobile-list', width: 390, height: 844, hash: '#/vms', ready: `tr[data-vm=${VM}]` },
  { name: 'mobile-vm', width: 390, height: 844, hash: `#/vms/${VM}`, ready: '[data-testid=vm-state]' },
  { name: 'mobile-graphs', width: 390, height: 844, hash: `#/vms/${VM}/graphs`, ready: '[data-testid=chart-cpu]', points: true, wait: 1200 },
  { name: 'mobile-hardware', width: 390, height: 844, hash: `#/vms/${VM}/hardware`, ready: 'tr[data-cdrom=cd0]' },
  { name: 'mobile-create', width: 390, height: 844, hash: '#/create', ready: 'form', step: 'wizard' },
];
/** The cluster views: the one-host cluster's serve (see clusterServe below). */
const CLUSTER_VIEWS = [
  { name: 'cluster', width: 1366, hash: '#/cluster', ready: 'tr[data-host=h1][data-alive=true]' },
  { name: 'mobile-cluster', width: 390, height: 844, hash: '#/cluster', ready: 'tr[data-host=h1][data-alive=true]' },
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
  fs.mkdirSync(path.join(home, 'data/images/iso'), { recursive: true });
  fs.writeFileSync(path.join(home, 'data/images/iso/debian-netinst.iso'), Buffer.alloc(4 * 1024 * 1024));
  fs.writeFileSync(def, `# the web UI screenshots' VM\nname: ${VM}\ndescription: test guest for the screenshots\nmemory: 256M\nkernel: { builtin: test-guest }\ndisks:\n  - file: ${VM}.qcow2\ncdroms: [iso/debian-netinst.iso]\nstopTimeout: 5\n`);
  cli('apply', '-f', def);
  cli('snapshot', VM, 'before-upgrade');
  cli('serve', 'token', 'add', 'ci', '--role', 'operator', '--vms', 'demo-*');
  cli('serve', 'token', 'add', 'dashboard', '--role', 'viewer');

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Samples every second (not 10 s), so the graphs have points within the script's run.
  server = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`], { env: { ...env, KVMCTL_TOKEN: token, KVMCTL_METRICS_INTERVAL_MS: '1000' }, stdio: 'ignore' });
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

  // A disk hotplugged into the running VM (the Hardware view shows it with the CD-ROM).
  cli('disk', 'create', path.join(home, 'data/images', 'data.qcow2'), '1G', '--format', 'qcow2', '-q');
  await api('POST', `/api/vms/${VM}/disks`, { file: 'data.qcow2' });
  await api('POST', `/api/vms/${VM}/nics`, { user: true });

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  await shots(base, token, VIEWS);
  if (!only.length || only.some((n) => CLUSTER_VIEWS.some((v) => v.name === n))) await clusterShots();
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

async function shots(base, tok, views) {
  for (const v of views) {
    if (only.length && !only.includes(v.name)) continue;
    const page = await browser.newPage({ viewport: { width: v.width, height: v.height ?? 768 } });
    await page.goto(`${base}/?token=${tok}${v.hash}`);
    await page.locator(v.ready).first().waitFor({ timeout: 60_000 });
    if (v.name === 'vm-serial') {
      await page.locator('[data-testid=serial-terminal]').click();
      await page.keyboard.type('uname -a; ls /\n', { delay: 5 });
    }
    // Graphs: wait until the chart has a few points of history (the server samples every second here).
    if (v.points) await page.waitForFunction(() => Number(document.querySelector('[data-testid=chart-cpu], [data-testid=metric-graphs] [role=img]')?.getAttribute('data-points') ?? 0) >= 8, undefined, { timeout: 90_000 });
    if (v.step === 'wizard') {
      await page.getByLabel('Name', { exact: true }).fill('web-2');
      await page.getByLabel('Memory').fill('2G');
      await page.getByLabel('New disk size').fill('20G');
      await page.getByLabel('Firmware').selectOption('uefi-secure');
      await page.getByLabel('TPM').check();
      await page.getByLabel('Guest agent').check();
      await page.getByTestId('ci-toggle').check();
      await page.getByLabel('User', { exact: true }).fill('admin');
      await page.getByLabel('SSH public keys').fill('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0T6p1Hxm6v0xmZr0wq0vYv9n4S0xYz1b2c3d4e5f6 admin@laptop');
      await page.getByLabel('Host name').fill('web-2');
    }
    await page.waitForTimeout(v.wait ?? 400);
    const file = path.join(DOCS, `web-${v.name}.png`);
    await page.screenshot({ path: file });
    console.log(`${path.relative(ROOT, file)}`);
    await page.close();
  }
}

/**
 * A one-host cluster for the Cluster views, all inside a namespace of its own: etcd on its
 * loopback, `cluster init`, `kvmctl agent`, a cluster VM on h1, and `kvmctl serve` on its unix
 * socket, which a loopback TCP port here forwards to (the browser lives in this namespace).
 */
async function clusterShots() {
  if (process.getuid?.() !== 0 || !fs.existsSync('/usr/bin/etcd')) {
    console.log('cluster views skipped: they need root (a network namespace) and etcd-server');
    return;
  }
  const ns = `kws-${randomBytes(4).toString('hex')}`;
  const chome = fs.mkdtempSync(path.join(os.tmpdir(), 'kwsc-'));
  const cenv = { ...env, KVMCTL_HOME: chome };
  const inNs = (argv, o = {}) => spawn('ip', ['netns', 'exec', ns, ...argv], { env: cenv, stdio: 'ignore', ...o });
  const ccli = (...args) => {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { env: cenv, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`kvmctl ${args.join(' ')} (cluster): ${r.stderr}`);
    return r.stdout;
  };
  const started = [];
  let proxy;
  try {
    spawnSync('ip', ['netns', 'add', ns]);
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    started.push(
      inNs(['etcd', '--name', 'h1', '--data-dir', path.join(chome, 'etcd'), '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379', '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'h1=http://127.0.0.1:2380', '--log-level', 'warn']),
    );
    for (let t0 = Date.now(); spawnSync('ip', ['netns', 'exec', ns, 'etcdctl', '--endpoints', 'http://127.0.0.1:2379', 'endpoint', 'health']).status !== 0; ) {
      if (Date.now() - t0 > 30_000) throw new Error('etcd did not come up');
      await new Promise((r) => setTimeout(r, 300));
    }
    ccli('cluster', 'init', '--etcd', 'http://127.0.0.1:2379', '--host', 'h1', '--addr', '127.0.0.1');
    started.push(inNs([process.execPath, BIN, 'agent', '--host', 'h1', '--addr', '127.0.0.1', '--memory', '2G']));
    const def = path.join(chome, 'vms.yaml');
    fs.writeFileSync(def, 'name: web-1\nmemory: 128M\nkernel: { builtin: test-guest }\nstopTimeout: 5\n---\nname: db-1\nmemory: 256M\nkernel: { builtin: test-guest }\nstopTimeout: 5\n');
    ccli('cluster', 'apply', '-f', def);
    for (let t0 = Date.now(); ; ) {
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, BIN, 'start', 'web-1', '--on', 'h1'], { env: cenv, encoding: 'utf8' });
      if (r.status === 0) break;
      if (Date.now() - t0 > 60_000) throw new Error(`start web-1 --on h1: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
    const serve = inNs([process.execPath, BIN, 'serve']);
    started.push(serve);
    const sock = path.join(chome, 'run/kvmctl.sock');
    for (let t0 = Date.now(); !fs.existsSync(sock); ) {
      if (Date.now() - t0 > 30_000) throw new Error('cluster serve did not come up');
      await new Promise((r) => setTimeout(r, 200));
    }
    proxy = net.createServer((c) => {
      const up = net.connect(sock);
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const cbase = `http://127.0.0.1:${proxy.address().port}`;
    for (let t0 = Date.now(); ; ) {
      const st = await fetch(`${cbase}/api/cluster`).then((r) => r.json()).catch(() => undefined);
      if (st?.vms?.some((v) => v.name === 'web-1' && v.owner === 'h1')) break;
      if (Date.now() - t0 > 60_000) throw new Error('web-1 did not come up on h1');
      await new Promise((r) => setTimeout(r, 500));
    }
    await shots(cbase, '', CLUSTER_VIEWS);
  } finally {
    proxy?.close();
    // The agent's QEMUs, then the agent, serve and etcd, by PID.
    for (const vm of ['web-1', 'db-1']) {
      try {
        const pid = Number(fs.readFileSync(path.join(chome, 'run/vms', vm, 'qemu.pid'), 'utf8').trim());
        if (pid > 1 && fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-system')) process.kill(pid, 'SIGKILL');
      } catch {
        /* not running */
      }
    }
    for (const c of started.reverse()) {
      if (c.pid && c.exitCode === null) {
        c.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => (c.kill('SIGKILL'), r()), 5000);
          c.once('exit', () => (clearTimeout(t), r()));
        });
      }
    }
    // A watchdog the agent may have left (found by its command line, ended by PID).
    for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
        if (cmd.includes(chome) && cmd.includes('watchdog')) process.kill(Number(d), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(chome, { recursive: true, force: true });
  }
}
