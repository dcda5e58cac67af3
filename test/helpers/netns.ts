/**
 * Network-namespace harness for tests: every bridge, tap, macvtap and address a test makes lives
 * in a namespace `kvt-<random>` that the test creates and deletes (deletion removes every link in
 * it, so nothing is left even when a test fails half-way). Nothing here touches the host's own
 * interfaces.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../src/host/exec.js';

export type Netns = {
  name: string;
  /** `ip -n NS ARGS…` */
  ip(...args: string[]): Promise<string>;
  /** Run a program inside the namespace: `ip netns exec NS ARGV…`. */
  exec(argv: string[], opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  /** A veth pair inside the namespace, both ends up. */
  veth(a: string, b: string): Promise<void>;
  /** Delete the namespace (idempotent). */
  destroy(): Promise<void>;
};

const created = new Set<string>();

export function canUseNetns(): { ok: boolean; why?: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'network namespaces need root' };
  if (!fs.existsSync('/dev/net/tun')) return { ok: false, why: 'no /dev/net/tun' };
  return { ok: true };
}

export async function createNetns(prefix = 'kvt'): Promise<Netns> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await run(['ip', 'netns', 'add', name]);
  created.add(name);
  const ns: Netns = {
    name,
    ip: async (...args) => (await run(['ip', '-n', name, ...args])).stdout,
    exec: (argv, o = {}) => run(['ip', 'netns', 'exec', name, ...argv], { allowFailure: o.allowFailure, timeoutMs: o.timeoutMs ?? 30_000 }),
    veth: async (a, b) => {
      await run(['ip', '-n', name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      await run(['ip', '-n', name, 'link', 'set', a, 'up']);
      await run(['ip', '-n', name, 'link', 'set', b, 'up']);
    },
    destroy: async () => {
      if (!created.has(name)) return;
      await run(['ip', 'netns', 'del', name], { allowFailure: true });
      created.delete(name);
    },
  };
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/** Run `fn` with a fresh namespace, deleted afterwards whatever happens. */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>): Promise<T> {
  const ns = await createNetns();
  try {
    return await fn(ns);
  } finally {
    await ns.destroy();
  }
}

/** A short temp KVMCTL_HOME-style root (unix socket paths are limited to 108 bytes). */
export function tempHome(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-'));
  homes.push(dir);
  return dir;
}

/** Temp homes made by tempHome() in this test file. */
const homes: string[] = [];

/** Remove them (the vitest setup file calls this after each test file; QEMUs are ended by then). */
export function removeTempHomes(): void {
  for (const d of homes.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

// Last resort if a test process exits without its afterAll: delete what we made.
process.once('exit', () => {
  removeTempHomes();
  for (const n of created) {
    // Synchronous on purpose (the event loop is gone in 'exit'); argv, no shell.
    spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  }
});
