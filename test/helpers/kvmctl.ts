/**
 * Drive the real `kvmctl` CLI (compiled, bin/kvmctl.js) against a private KVMCTL_HOME under /tmp
 * (short, for unix socket paths). `cleanup()` ends every QEMU this home started — by PID, from
 * the pidfiles and state files — and removes the home.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
export const BIN = path.join(ROOT, 'bin/kvmctl.js');
export const GUEST_CACHE = process.env.KVMCTL_GUEST_CACHE ?? path.join(ROOT, '.cache/guest');

export type CliResult = { code: number; stdout: string; stderr: string; ms: number };

export type Home = {
  dir: string;
  /** The home's images dir (a storage root from the start), created by makeHome. */
  images: string;
  /** `kvmctl storage add DIR` (the operator making a directory a storage root). */
  addRoot(dir: string): Promise<void>;
  env: NodeJS.ProcessEnv;
  cli(args: string[], o?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  /** Start the CLI and hand back the child (to kill it half-way, to type into a console). */
  spawnCli(args: string[]): ReturnType<typeof spawn>;
  apply(yaml: string): Promise<void>;
  pids(): number[];
  cleanup(): Promise<void>;
};

export function qemuPidsIn(runDir: string): number[] {
  const out = new Set<number>();
  let vms: string[] = [];
  try {
    vms = fs.readdirSync(path.join(runDir, 'vms'));
  } catch {
    return [];
  }
  for (const vm of vms) {
    for (const f of ['qemu.pid', 'state.json']) {
      try {
        const t = fs.readFileSync(path.join(runDir, 'vms', vm, f), 'utf8');
        const pid = f === 'qemu.pid' ? Number(t.trim()) : (JSON.parse(t) as { pid: number }).pid;
        if (pid > 1) out.add(pid);
      } catch {
        /* none */
      }
    }
  }
  return [...out];
}

function isQemu(pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).includes('qemu-system');
  } catch {
    return false;
  }
}

export function makeHome(): Home {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kh-'));
  const env = { ...process.env, KVMCTL_HOME: dir, KVMCTL_GUEST_CACHE: GUEST_CACHE };
  const images = path.join(dir, 'data/images');
  fs.mkdirSync(images, { recursive: true });
  const home: Home = {
    dir,
    images,
    addRoot: async (root) => {
      const r = await home.cli(['storage', 'add', root]);
      if (r.code !== 0) throw new Error(`storage add failed: ${r.stderr}`);
    },
    env,
    cli: (args, o = {}) =>
      new Promise((resolve, reject) => {
        const t0 = Date.now();
        const child = spawn(process.execPath, [BIN, ...args], { env: { ...env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 });
        });
        child.stdin.end(o.input ?? '');
      }),
    spawnCli: (args) => spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] }),
    apply: async (yaml) => {
      const f = path.join(dir, `apply-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
      fs.writeFileSync(f, yaml);
      const r = await home.cli(['apply', '-f', f]);
      if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
    },
    pids: () => qemuPidsIn(path.join(dir, 'run')),
    cleanup: async () => {
      for (const pid of home.pids()) {
        if (!isQemu(pid)) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 100));
      if (!process.env.KVT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return home;
}

/** QEMU processes whose command line mentions this path (to count them). */
export function qemuProcessesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const state = st.slice(st.lastIndexOf(')') + 2)[0];
      if (cmd.includes('qemu-system') && cmd.includes(text) && state !== 'Z') out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export const TINY = (name = 'tiny', extra = '') => `name: ${name}
memory: 256M
kernel: { builtin: test-guest${extra ? `, append: "${extra}"` : ''} }
stopTimeout: 30
`;
