#!/usr/bin/env node
/**
 * Load benchmark of `kvmctl serve`: GET /api/vms with 100 defined VMs, 10 of them running (the
 * tiny test guest under whatever accelerator the host has), over the server's unix socket with
 * autocannon. Reports latency p50/p99, requests/s, and the server's RSS idle and under load.
 *
 *   npx tsc -p . && node bench/api-load.mjs [--seconds 10] [--connections 10] [--running 10] [--defined 100] [--json]
 *
 * Everything lives in a temp KVMCTL_HOME; every QEMU it started is killed by PID at the end.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const SECONDS = arg('seconds', 10);
const CONNECTIONS = arg('connections', 10);
const RUNNING = arg('running', 10);
const DEFINED = arg('defined', 100);
const JSON_OUT = process.argv.includes('--json');
/** Extra node flags for the server process only, e.g. --node-options=--max-semi-space-size=1 */
const NODE_OPTS = process.argv.find((a) => a.startsWith('--node-options='))?.slice('--node-options='.length) ?? '';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-'));
process.env.KVMCTL_HOME = home;
process.env.KVMCTL_GUEST_CACHE ??= path.join(ROOT, '.cache/guest');
const { resolvePaths } = await import(`${ROOT}/dist/host/paths.js`);
const { writeDef } = await import(`${ROOT}/dist/definition/store.js`);
const { startVm } = await import(`${ROOT}/dist/vm/start.js`);
// In-process reads of stored definitions validate on a cache miss: load the validator up front (as serve does).
await (await import(`${ROOT}/dist/definition/store.js`)).loadValidator();
const { killVm } = await import(`${ROOT}/dist/vm/stop.js`);
const { ensureTestGuest } = await import(`${ROOT}/dist/guest/test-guest.js`);
const paths = resolvePaths(process.env);
const log = (m) => process.stderr.write(`${m}\n`);

const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const mb = (b) => Math.round((b / 1048576) * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
const started = [];
try {
  await ensureTestGuest(paths);
  for (let i = 0; i < DEFINED; i++) {
    const name = `vm${String(i).padStart(3, '0')}`;
    writeDef(paths, 'vm', name, `name: ${name}\nmemory: 128M\nkernel: { builtin: test-guest }\nrestart: ${i % 3 === 0 ? 'on-failure' : 'no'}\n`);
  }
  for (let i = 0; i < RUNNING; i++) {
    const name = `vm${String(i).padStart(3, '0')}`;
    await startVm(paths, name, {});
    started.push(name);
  }
  log(`${DEFINED} VMs defined, ${started.length} running; letting the guests boot…`);
  await sleep(8000);

  const sock = path.join(home, 'k.sock');
  server = spawn(process.execPath, [path.join(ROOT, 'bin/kvmctl.js'), 'serve', '--socket', sock], { env: { ...process.env, NODE_OPTIONS: NODE_OPTS }, stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await sleep(50);
  await sleep(3000); // first reconcile, QMP connections to the running VMs
  const rssIdle = rssOf(server.pid);

  let rssPeak = 0;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssOf(server.pid))), 200);
  const r = await autocannon({ url: 'http://localhost/api/vms', socketPath: sock, connections: CONNECTIONS, duration: SECONDS });
  clearInterval(sampler);
  await sleep(3000);
  const rssAfter = rssOf(server.pid);

  const out = {
    defined: DEFINED,
    running: started.length,
    connections: CONNECTIONS,
    seconds: SECONDS,
    nodeOptions: NODE_OPTS,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    reqPerSec: r.requests.average,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    rssMB: { idle: mb(rssIdle), underLoadPeak: mb(rssPeak), after: mb(rssAfter) },
    host: { cpus: os.cpus().length, load1: os.loadavg()[0] },
  };
  if (JSON_OUT) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`GET /api/vms (${DEFINED} defined, ${started.length} running), ${CONNECTIONS} connections, ${SECONDS} s over the unix socket${NODE_OPTS ? `, server NODE_OPTIONS=${NODE_OPTS}` : ''}`);
    console.log(`  requests/s ${out.reqPerSec}   p50 ${out.latencyMs.p50} ms   p99 ${out.latencyMs.p99} ms   max ${out.latencyMs.max} ms   (${out.requests} requests, ${out.non2xx} non-2xx, ${out.errors} errors)`);
    console.log(`  server RSS: idle ${out.rssMB.idle} MB, under load (peak) ${out.rssMB.underLoadPeak} MB, after ${out.rssMB.after} MB`);
  }
} finally {
  if (server && server.exitCode === null) server.kill('SIGTERM');
  for (const n of started) await killVm(paths, n).catch(() => undefined);
  fs.rmSync(home, { recursive: true, force: true });
}
