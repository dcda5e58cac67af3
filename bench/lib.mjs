/**
 * Shared helpers of the benchmarks: private KVMCTL_HOMEs, timed runs of the compiled CLI and of
 * bare QEMU, statistics, and the results file. Plain Node ESM; every QEMU a benchmark starts is
 * ended by PID (never by name). Timing uses spawn directly (not src/host/exec.ts) so that both
 * sides of an A/B comparison pay exactly the same launch cost.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * The CLI under test: a private snapshot of bin/ + dist/ taken when the benchmark starts (other
 * people rebuilding dist/ in the same tree must not change the program half-way through a run).
 * run-all.js takes it once and passes it on in KVMCTL_BENCH_BIN.
 */
export const BIN = process.env.KVMCTL_BENCH_BIN ?? snapshotCli();
function snapshotCli() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-bench-cli-'));
  fs.cpSync(path.join(ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true, preserveTimestamps: true, filter: (src) => !src.includes(`${path.sep}web`) });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  // A fresh bundle of the current sources, newer than the copied tsc output so bin/kvmctl.js picks
  // it (dist/bundle in the tree may be stale after someone's `tsc`): scripts/bundle.mjs's own build,
  // the one setup.sh ships, run in a child because bundle() is async and BIN is needed at import.
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { bundle } = await import(${JSON.stringify(path.join(ROOT, 'scripts/bundle.mjs'))}); await bundle({ outdir: ${JSON.stringify(path.join(dir, 'dist/bundle'))} });`], { encoding: 'utf8' });
  if (r.status !== 0) console.error(`bench: could not bundle the CLI (${r.stderr.trim()}); using the tsc output`);
  process.env.KVMCTL_BENCH_BIN = path.join(dir, 'bin/kvmctl.js');
  process.on('exit', () => {
    if (!process.env.BENCH_KEEP && process.env.KVMCTL_BENCH_SNAPSHOT_OWNER === String(process.pid)) fs.rmSync(dir, { recursive: true, force: true });
  });
  process.env.KVMCTL_BENCH_SNAPSHOT_OWNER = String(process.pid);
  return process.env.KVMCTL_BENCH_BIN;
}
export const GUEST_CACHE = process.env.KVMCTL_GUEST_CACHE ?? path.join(ROOT, '.cache/guest');
export const READY = 'KVMCTL-GUEST-READY';
export const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();
export const load1 = () => Number(os.loadavg()[0].toFixed(2));

/** median, min, max, p95, mean of a list of numbers (ms). */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { n: s.length, median: r1(med), min: r1(s[0]), max: r1(s[s.length - 1]), p95: r1(q(0.95)), mean: r1(s.reduce((a, b) => a + b, 0) / s.length) };
}
const r1 = (x) => Math.round(x * 10) / 10;
export const ratio = (a, b) => (a && b ? Math.round((a / b) * 100) / 100 : undefined);

/** Run a program, resolve with exit code, output and wall time (ms). */
export function timed(argv, { env, input, timeoutMs = 180_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(argv[0], argv.slice(1), { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms: now() - t0 });
    });
    child.stdin.end(input ?? '');
  });
}

/** A private KVMCTL_HOME under /tmp (short: unix socket paths). */
export function makeHome(tag = 'b') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kb${tag}-`));
  const env = { ...process.env, KVMCTL_HOME: dir, KVMCTL_GUEST_CACHE: GUEST_CACHE };
  const home = {
    dir,
    env,
    run: path.join(dir, 'run/vms'),
    cli: (args, o = {}) => timed([process.execPath, BIN, ...args], { env, ...o }),
    async cliOk(args, o) {
      const r = await home.cli(args, o);
      if (r.code !== 0) throw new Error(`kvmctl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
      return r;
    },
    async apply(yaml) {
      const f = path.join(dir, `def-${Math.random().toString(36).slice(2)}.yaml`);
      fs.writeFileSync(f, yaml);
      await home.cliOk(['apply', '-f', f]);
      fs.rmSync(f);
    },
    /** Every QEMU this home started, by pidfile / state file. */
    pids() {
      const out = new Set();
      for (const vm of safeReaddir(home.run)) {
        for (const f of ['qemu.pid', 'state.json']) {
          try {
            const t = fs.readFileSync(path.join(home.run, vm, f), 'utf8');
            const pid = f === 'qemu.pid' ? Number(t.trim()) : JSON.parse(t).pid;
            if (pid > 1) out.add(pid);
          } catch {
            /* none */
          }
        }
      }
      return [...out];
    },
    async cleanup() {
      await Promise.all(home.pids().filter(isQemu).map((p) => killPid(p)));
      if (!process.env.BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return home;
}

export const safeReaddir = (d) => {
  try {
    return fs.readdirSync(d);
  } catch {
    return [];
  }
};

export function isQemu(pid) {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-system');
  } catch {
    return false;
  }
}

/** Alive and not a zombie (a reparented -daemonize QEMU can stay a zombie for seconds here). */
export function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export async function killPid(pid, timeoutMs = 10_000) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const t0 = now();
  while (alive(pid) && now() - t0 < timeoutMs) await sleep(20);
}

export async function waitFor(fn, timeoutMs, what, everyMs = 25) {
  const t0 = now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (now() - t0 > timeoutMs) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** ms from t0 until `marker` is in `file` (polled every 20 ms). */
export async function waitMarker(file, t0, timeoutMs = 120_000, marker = READY) {
  await waitFor(() => {
    try {
      return fs.readFileSync(file, 'utf8').includes(marker);
    } catch {
      return false;
    }
  }, timeoutMs, `${marker} in ${file}`, 20);
  return now() - t0;
}

/** Resident set (kB) of a process, 0 when gone. */
export function rssKb(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The tiny test guest as a VM definition. */
export const tinyVm = (name, { profile = 'standard', append = '', extra = '' } = {}) => `name: ${name}
profile: ${profile}
memory: 256M
kernel: { builtin: test-guest${append ? `, append: "${append}"` : ''} }
stopTimeout: 30
${extra}`;

/** The argv `kvmctl start` would run for NAME (from `kvmctl cmdline NAME --json`). */
export async function cmdlineArgv(home, name) {
  const r = await home.cliOk(['cmdline', name, '--json']);
  return JSON.parse(r.stdout).argv;
}

/** The seed's way: the same argv, without -sandbox (it cannot be combined with -daemonize), plus -daemonize. */
export function seedArgv(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-sandbox') {
      i++;
      continue;
    }
    out.push(argv[i]);
  }
  return [...out, '-daemonize'];
}

/** Run argv with -daemonize: returns when QEMU is initialised; the pid comes from its -pidfile. */
export async function runDaemonized(argv) {
  const pidfile = argv[argv.indexOf('-pidfile') + 1];
  fs.mkdirSync(path.dirname(pidfile), { recursive: true });
  const r = await timed(argv);
  if (r.code !== 0) throw new Error(`QEMU -daemonize failed (${r.code}): ${r.stderr.trim()}`);
  const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
  return { ms: r.ms, pid };
}

/** Spawn argv in the background (like kvmctl does, without kvmctl): { pid, t0, child }. */
export function spawnBare(argv) {
  const pidfile = argv[argv.indexOf('-pidfile') + 1];
  if (pidfile) fs.mkdirSync(path.dirname(pidfile), { recursive: true });
  const t0 = now();
  const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true });
  child.unref();
  return { pid: child.pid, t0, child };
}

/** Remove a bare run's runtime dir (sockets, logs, pidfile) so the next run starts clean. */
export function cleanRuntime(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
}

/* --------------------------------------------------------------------------- results ---- */

export class Results {
  constructor() {
    this.sections = [];
    this.meta = machineInfo();
  }
  add(section) {
    this.sections.push({ ...section, loadAfter: load1() });
    return section;
  }
  save(file = path.join(ROOT, 'bench/results/latest.json')) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify({ meta: this.meta, sections: this.sections }, null, 2)}\n`);
    return file;
  }
}

export function machineInfo() {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  const mem = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return {
    date: new Date().toISOString(),
    nproc: os.cpus().length,
    memGiB: Math.round((mem / 1024 / 1024) * 10) / 10,
    cpu,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    // /dev/kvm can exist without hardware virtualisation (see docs/design.md): count the CPU flags too.
    kvm: fs.existsSync('/dev/kvm') && /^flags\s*:.*\b(vmx|svm)\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8')),
    devKvm: fs.existsSync('/dev/kvm'),
    loadAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    quick: QUICK,
  };
}

/** One line per figure, for the console. */
export function line(label, s, extra = '') {
  if (!s || !s.n) return `  ${label}: (no data) ${extra}`;
  return `  ${label.padEnd(46)} median ${String(s.median).padStart(8)} ms  min ${s.min}  max ${s.max}  (n=${s.n}) ${extra}`;
}
