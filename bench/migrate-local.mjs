/**
 * Live migration with a 2 GiB local disk full of data (issue #16), between two hosts of a real
 * 2-member etcd cluster in namespaces (test/helpers/cluster.ts, bundled here with esbuild), with
 * the test guest on the cluster's bridge; alternating A/B in one invocation:
 *   A. the link: 2 GiB over one TCP connection from host 1's namespace to host 2's (Node sockets);
 *   B. `kvmctl migrate big --to OTHER` (disk copy + memory + switch-over), end to end; QEMU's
 *      numbers (mirror time, downtime) and pings every 100 ms from the bridge's namespace.
 * Ratio: migration time / (disk size / link rate); target ≤ 1.3×.
 *
 * `--rate 1gbit` shapes each host's link (tc tbf on its eth0, inside its namespace) to a real
 * link's rate, so the ratio is against a link slower than the machine's memory.
 *
 *   node bench/migrate-local.mjs [--quick] [--rate 1gbit]     (root; the compiled CLI; ~6 GiB free under /tmp)
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { load1, QUICK, ratio, ROOT, stats } from './lib.mjs';

const GiB = 1024 ** 3;
const SIZE = 2 * GiB;
const runs = QUICK ? 2 : 3;
const RATE = process.argv.includes('--rate') ? process.argv[process.argv.indexOf('--rate') + 1] : undefined;
const GUEST_IP = '10.77.0.50';
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmt = (s) => `${sec(s.median)} (${sec(s.min)}–${sec(s.max)}, n=${s.n})`;
const mibs = (bytes, ms) => `${(bytes / 1048576 / (ms / 1000)).toFixed(0)} MiB/s`;

// The test harness (TypeScript) as one ESM file for this run (inside the checkout: its imports resolve from node_modules).
fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
const tmp = fs.mkdtempSync(path.join(ROOT, '.cache/bench-mig-'));
const esbuild = await import('esbuild');
await esbuild.build({
  stdin: { contents: "export * from './test/helpers/cluster.ts'; export { ensureTestGuest } from './src/guest/test-guest.ts'; export { serialExec } from './src/vm/serial-exec.ts';", resolveDir: ROOT, loader: 'ts' },
  bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: path.join(tmp, 'harness.mjs'), logLevel: 'error',
  banner: { js: `const __dirname = ${JSON.stringify(path.join(ROOT, 'test/helpers'))};` }, // test/helpers/kvmctl.ts finds the checkout from it
});
const H = await import(path.join(tmp, 'harness.mjs'));

/** Bytes/s of one TCP stream from `from`'s namespace to `to`'s (receiver counts to `bytes`, then both exit). */
async function linkRate(from, to, bytes) {
  const port = 5201 + Math.floor(Math.random() * 1000);
  const recv = spawn('ip', ['netns', 'exec', to.ns.name, process.execPath, '-e', `
    const s = require('net').createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; if (n >= ${bytes}) { process.stdout.write('done\\n'); c.destroy(); s.close(); } }); });
    s.listen(${port}, '${to.ip}', () => process.stdout.write('up\\n'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  recv.stdout.on('data', (d) => (out += d));
  await H.until('receiver up', () => out.includes('up'), 10_000, 20);
  const t0 = performance.now();
  const send = spawn('ip', ['netns', 'exec', from.ns.name, process.execPath, '-e', `
    const c = require('net').connect(${port}, '${to.ip}'); const buf = Buffer.alloc(1 << 20, 0x5a); let left = ${bytes};
    const pump = () => { while (left > 0) { left -= buf.length; if (!c.write(buf)) return c.once('drain', pump); } c.end(); };
    c.on('connect', pump); c.on('error', () => {});`], { stdio: 'ignore' });
  await H.until('all received', () => out.includes('done'), 120_000, 5);
  const ms = performance.now() - t0;
  await new Promise((r) => (send.exitCode !== null ? r() : send.once('exit', r)));
  return { ms, rate: bytes / (ms / 1000) };
}

const c = await H.makeCluster(2, { ttl: 5, margin: 1000, lan: true });
const t = { link: [], migrate: [], qemu: [], mirror: [], downtime: [] };
const loads = [];
const lost = [];
try {
  await H.ensureTestGuest(c.hosts[0].paths);
  for (const x of c.hosts) await x.startAgent();
  await H.until('2 agents', async () => {
    const r = await c.hosts[0].cli(['cluster', 'status', '--json']);
    return r.code === 0 && JSON.parse(r.stdout).hosts.filter((x) => x.alive).length === 2;
  }, 30_000, 300);
  const disk = path.join(c.hosts[0].paths.images, 'big.raw');
  fs.mkdirSync(path.dirname(disk), { recursive: true });
  execFileSync('qemu-img', ['create', '-f', 'raw', disk, String(SIZE)], { stdio: 'ignore' });
  const fill = [];
  for (let off = 0; off < SIZE; off += 256 * 1048576) fill.push('-c', `write -P ${(off / 1048576 / 256 + 1) % 255} ${off} 256M`);
  execFileSync('qemu-io', ['-f', 'raw', ...fill, disk], { stdio: 'ignore' });
  const f = path.join(c.dir, 'vms.yaml');
  fs.writeFileSync(f, `kind: network\nname: lan\ntype: bridge\ninterface: br0\n---\nname: big\nmemory: 128M\nkernel: { builtin: test-guest, append: "kvt.ip0=${GUEST_IP}/24" }\nstopTimeout: 10\nnics: [{ network: lan, mac: "52:54:00:77:00:50" }]\ndisks: [{ id: data, file: big.raw }]\n`);
  const a = await c.hosts[0].cli(['cluster', 'apply', '-f', f]);
  if (a.code) throw new Error(a.stderr);
  const s = await c.hosts[0].cli(['start', 'big', '--on', 'h1']);
  if (s.code) throw new Error(s.stderr);
  await c.bridge.ip('addr', 'add', '10.77.0.200/24', 'dev', 'br0');
  if (RATE) for (const x of c.hosts) await x.ns.exec(['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', RATE, 'burst', '1mb', 'latency', '50ms']);
  const bb = await H.busyboxPing(c.dir);
  await H.until('guest answers ping', async () => (await c.bridge.exec([bb, 'ping', '-c', '1', '-W', '1', GUEST_IP], { allowFailure: true })).exitCode === 0, 120_000, 500);
  let from = c.hosts[0];
  for (let i = 0; i < runs; i++) {
    const to = c.hosts.find((x) => x !== from);
    loads.push(load1());
    t.link.push((await linkRate(from, to, SIZE)).ms);
    loads.push(load1());
    const pinger = spawn('ip', ['netns', 'exec', c.bridge.name, bb, 'ping', '-i', '0.1', GUEST_IP], { stdio: ['ignore', 'pipe', 'ignore'] });
    let pingOut = '';
    pinger.stdout.on('data', (d) => (pingOut += d));
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = performance.now();
    const r = await from.cli(['migrate', 'big', '--to', to.name, '--json'], 600_000);
    t.migrate.push(performance.now() - t0);
    await new Promise((r2) => setTimeout(r2, 1500));
    const closed = new Promise((r2) => pinger.once('close', r2));
    pinger.kill('SIGINT');
    await closed;
    if (r.code) throw new Error(`migrate: ${r.stderr}`);
    const m = JSON.parse(r.stdout);
    t.qemu.push(m.stats.totalTimeMs);
    t.mirror.push(m.stats.mirrorMs);
    t.downtime.push(m.stats.downtimeMs);
    const pm = /(\d+) packets transmitted, (\d+) packets received/.exec(pingOut);
    lost.push(pm ? Number(pm[1]) - Number(pm[2]) : NaN);
    for (const kept of m.leftBehind ?? []) fs.rmSync(kept, { recursive: true, force: true }); // the bench's own stale copy
    from = to;
  }
  const st = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, stats(v)]));
  const ideal = st.link.median;
  console.log(`## Live migration with a 2 GiB local disk full of data (2 hosts in namespaces, veth + bridge${RATE ? `, each link shaped to ${RATE}` : ''}; load ${Math.min(...loads)}–${Math.max(...loads)})`);
  console.log(`link: 2 GiB over one TCP stream (baseline)  ${fmt(st.link)}   ${mibs(SIZE, st.link.median)}`);
  console.log(`kvmctl migrate, end to end                  ${fmt(st.migrate)}   ${ratio(st.migrate.median, ideal)}× disk size / link rate (target ≤ 1.3×)`);
  console.log(`  of which the disk copy (mirror to ready)  ${fmt(st.mirror)}   ${mibs(SIZE, st.mirror.median)}, ${ratio(st.mirror.median, ideal)}× the link`);
  console.log(`  QEMU memory migration total-time          ${st.qemu.median} ms (${st.qemu.min}–${st.qemu.max})`);
  console.log(`  downtime                                  ${st.downtime.median} ms (${st.downtime.min}–${st.downtime.max})`);
  console.log(`  pings lost (every 100 ms, bridge → guest) ${lost.join(', ')}`);
  fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench/results/migrate-local.json'), `${JSON.stringify({ at: new Date().toISOString(), loads, ...st, lost }, null, 2)}\n`);
} finally {
  await c.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}
