/** A real `kvmctl serve --listen 127.0.0.1:PORT` for browser tests: started from bin/kvmctl.js, stopped by its PID. */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { BIN, type Home } from './kvmctl.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export type Served = { base: string; child: ChildProcess; log(): string; stop(): Promise<void> };

export async function startServe(home: Home, token: string, ms = 30_000, env: Record<string, string> = {}, args: string[] = []): Promise<Served> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let log = '';
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, ...args], { env: { ...home.env, KVMCTL_TOKEN: token, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`kvmctl serve exited (${child.exitCode}): ${log}`);
    try {
      if ((await fetch(`${base}/api/health`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - t0 > ms) throw new Error(`kvmctl serve not healthy after ${ms} ms: ${log}`);
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    base,
    child,
    log: () => log,
    stop: async () => {
      if (!child.pid || child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (child.kill('SIGKILL'), r(null)), 5000);
        child.once('exit', () => (clearTimeout(t), r(null)));
      });
    },
  };
}
