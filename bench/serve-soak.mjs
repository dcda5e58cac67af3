/**
 * `kvmctl serve` under a reconnecting client for a while (issue #19: "a bounded growth with open
 * consoles and event streams, measure 1 h with a client reconnecting; report RSS over time").
 *
 * Setup as bench/memory.mjs's idle figure: 10 tiny fast-profile VMs defined, 2 running. Serve
 * listens on 127.0.0.1 and a free port (bearer token). No network namespace is needed: the guests
 * have no NICs, the consoles are QEMU's unix sockets.
 *
 * The client, in rounds of about --round seconds (default 10):
 *  - reconnects its event stream (`/api/events?since=LAST`, as a browser tab coming back does),
 *  - opens the serial console of si0, types `echo soak-N`, waits for the echo, keeps the console
 *    open for the round (a second viewer joins and leaves half-way), then closes it,
 *  - pauses and resumes si1 (two state events through the stream) and lists the VMs.
 * Serve's RSS (and RssAnon/RssFile) is sampled every --sample seconds (default 30); the result is
 * printed as a table every sample and saved to bench/results/serve-soak.json.
 *
 *   node bench/serve-soak.mjs [--minutes 60] [--round 10] [--sample 30]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { BIN, killPid, load1, makeHome, now, Results, ROOT, sleep, tinyVm, waitFor } from './lib.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MINUTES = arg('minutes', 60);
const ROUND_S = arg('round', 10);
const SAMPLE_S = arg('sample', 30);
const TOKEN = 'soak-token-0123456789abcdef';

function memKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const g = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss: g('VmRSS'), anon: g('RssAnon'), file: g('RssFile'), hwm: g('VmHWM') };
  } catch {
    return undefined;
  }
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

function openWs(url) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => (ws.terminate(), reject(new Error(`${url}: no open within 15 s`))), 15_000);
    ws.once('open', () => (clearTimeout(t), resolve(ws)));
    ws.once('error', (e) => (clearTimeout(t), reject(e)));
  });
}

const closeWs = (ws) =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    const t = setTimeout(() => (ws.terminate(), resolve()), 5000);
    ws.once('close', () => (clearTimeout(t), resolve()));
    ws.close();
  });

async function main() {
  const h = makeHome('k');
  const results = new Results();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const wsBase = `ws://127.0.0.1:${port}`;
  const api = async (method, p) => {
    const r = await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) }, body: method === 'POST' ? '{}' : undefined });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  const samples = [];
  const counts = { rounds: 0, events: 0, eventStreams: 0, consoles: 0, echoes: 0, errors: 0, resets: 0 };
  const errors = [];
  let srv;
  const pids = [];
  try {
    for (let i = 0; i < 10; i++) await h.apply(tinyVm(`si${i}`, { profile: 'fast' }));
    for (const vm of ['si0', 'si1']) pids.push(JSON.parse((await h.cliOk(['start', vm, '--wait-for-guest', '--json'], { timeoutMs: 240_000 })).stdout).pid);
    let log = '';
    srv = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`], { env: { ...h.env, KVMCTL_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'pipe'] });
    srv.stdout.on('data', (d) => (log = (log + d).slice(-4000)));
    srv.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
    await waitFor(async () => {
      if (srv.exitCode !== null) throw new Error(`serve exited: ${log}`);
      return fetch(`${base}/api/health`).then((r) => r.ok, () => false);
    }, 30_000, 'serve healthy', 100);
    const t0 = now();
    const sample = (label) => {
      const m = memKb(srv.pid);
      if (!m) throw new Error(`serve is gone: ${log}`);
      const s = { minute: Math.round(((now() - t0) / 60_000) * 10) / 10, rssMiB: r1(m.rss / 1024), anonMiB: r1(m.anon / 1024), fileMiB: r1(m.file / 1024), hwmMiB: r1(m.hwm / 1024), load1: load1(), rounds: counts.rounds, label };
      samples.push(s);
      console.log(`  t=${String(s.minute).padStart(5)} min  RSS ${String(s.rssMiB).padStart(6)} MiB (anon ${s.anonMiB}, file ${s.fileMiB}, peak ${s.hwmMiB})  rounds ${s.rounds}  load ${s.load1}${label ? `  ${label}` : ''}`);
    };
    sample('serve healthy, no client');
    let lastId;
    let nextSample = SAMPLE_S * 1000;
    const end = MINUTES * 60_000;
    while (now() - t0 < end) {
      const roundStart = now();
      try {
        // the event stream, resumed where the last one stopped
        const ev = await openWs(`${wsBase}/api/events${lastId !== undefined ? `?since=${lastId}` : ''}`);
        counts.eventStreams++;
        ev.on('message', (d) => {
          const m = JSON.parse(d.toString());
          if (m.type === 'event') {
            counts.events++;
            lastId = m.id ?? m.event?.id ?? lastId;
          } else if (m.type === 'reset') counts.resets++;
          if (m.lastId !== undefined) lastId = m.lastId;
        });
        // the serial console: type, see the echo
        const con = await openWs(`${wsBase}/api/vms/si0/serial`);
        counts.consoles++;
        let out = '';
        con.on('message', (d) => (out = (out + d.toString('latin1')).slice(-8192)));
        const word = `soak-${counts.rounds}`;
        con.send(`echo ${word}\n`);
        await waitFor(() => out.includes(word), 20_000, `the echo of ${word}`, 50);
        counts.echoes++;
        await api('POST', '/api/vms/si1/pause');
        await api('POST', '/api/vms/si1/resume');
        await api('GET', '/api/vms');
        // a second viewer joins for a while
        await sleep((ROUND_S * 1000) / 2);
        const con2 = await openWs(`${wsBase}/api/vms/si0/serial`);
        counts.consoles++;
        con2.on('message', () => {});
        con.send('\n');
        await sleep(Math.max(0, ROUND_S * 1000 - (now() - roundStart)));
        await closeWs(con2);
        await closeWs(con);
        await closeWs(ev);
      } catch (e) {
        counts.errors++;
        if (errors.length < 20) errors.push(`${Math.round((now() - t0) / 1000)} s: ${e.message}`);
        console.error(`  round ${counts.rounds}: ${e.message}`);
        await sleep(1000);
      }
      counts.rounds++;
      if (now() - t0 >= nextSample) {
        sample();
        nextSample += SAMPLE_S * 1000;
      }
    }
    await sleep(5000);
    sample('5 s after the last client left');
  } finally {
    if (srv?.pid) await killPid(srv.pid);
    for (const p of pids) await killPid(p);
    await h.cleanup();
  }
  const rss = samples.map((s) => s.rssMiB);
  const firstQuarter = samples.filter((s) => s.minute >= MINUTES / 8 && s.minute <= MINUTES / 4).map((s) => s.rssMiB);
  const lastQuarter = samples.filter((s) => s.minute >= (MINUTES * 3) / 4).map((s) => s.rssMiB);
  const med = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : undefined);
  const figures = {
    minutes: MINUTES,
    roundSeconds: ROUND_S,
    counts,
    errors,
    rssMiB: { first: rss[0], min: Math.min(...rss), max: Math.max(...rss), last: rss.at(-1), medianEarly: med(firstQuarter), medianLastQuarter: med(lastQuarter) },
    samples,
  };
  console.log('serve soak:', JSON.stringify({ ...figures, samples: undefined }));
  results.add({ id: 'serve-soak', title: 'kvmctl serve RSS over time with a reconnecting client (events + serial console)', command: `node bench/serve-soak.mjs --minutes ${MINUTES}`, figures, loads: samples.map((s) => s.load1) });
  results.save(path.join(ROOT, 'bench/results/serve-soak.json'));
}

const r1 = (x) => Math.round(x * 10) / 10;
await main();
