/**
 * Restart policies and server restarts with a real guest and a real `kvmctl serve` process:
 * kill -9 of a VM with restart: on-failure → restarted after the back-off (which doubles);
 * kill -9 of the server → the VM keeps running, and a new server re-adopts it (no restart, same
 * PID) and streams its QMP events again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/api/client.js';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { EventTap } from '../helpers/api-events.js';
import { BIN, makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let sock: string;
const servers: ChildProcess[] = [];

const VM = `name: sup
memory: 256M
kernel: { builtin: test-guest }
stopTimeout: 20
restart: on-failure
restartPolicy: { maxRetries: 3, backoffSec: 1, maxBackoffSec: 8 }
`;

async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--socket', sock], { env: h.env, stdio: ['ignore', 'ignore', 'pipe'] });
  servers.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      await request({ socketPath: sock }, 'GET', '/api/health');
      return child;
    } catch {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`kvmctl serve did not come up: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const pidOf = () => Number(fs.readFileSync(path.join(h.dir, 'run/vms/sup/qemu.pid'), 'utf8').trim());
const alive = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
  } catch {
    return false;
  }
};

beforeAll(async () => {
  h = makeHome();
  await ensureTestGuest(resolvePaths(h.env));
  await h.apply(VM);
  sock = path.join(h.dir, 'k.sock');
}, 320_000);
afterAll(async () => {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  await h?.cleanup();
});

describe('supervision', () => {
  it('a VM with on-failure killed with SIGKILL is restarted after the back-off, which doubles', async () => {
    await startServer();
    const tap = await EventTap.open(sock);
    try {
      const st = await h.cli(['start', 'sup']);
      expect(st.code, st.stderr).toBe(0);
      await tap.wait((e) => e.vm === 'sup' && e.kind === 'state' && e.state === 'running', 20_000, 'running');
      const pid1 = pidOf();
      process.kill(pid1, 'SIGKILL');
      const crashed = await tap.wait((e) => e.kind === 'state' && e.state === 'crashed', 20_000, 'crashed');
      const sched = await tap.wait((e) => e.kind === 'supervisor' && e.action === 'scheduled', 10_000, 'scheduled');
      expect(sched).toMatchObject({ attempt: 1, delaySec: 1 });
      const restarted = await tap.wait((e) => e.kind === 'supervisor' && e.action === 'restarted', 60_000, 'restarted');
      expect(Date.parse(restarted.at) - Date.parse(crashed.at)).toBeGreaterThanOrEqual(1000);
      await tap.wait((e) => e.id > sched.id && e.kind === 'state' && e.state === 'running', 20_000, 'running again');
      const pid2 = pidOf();
      expect(pid2).not.toBe(pid1);
      expect(alive(pid2)).toBe(true);

      // Second crash: the next wait is twice as long.
      process.kill(pid2, 'SIGKILL');
      const sched2 = await tap.wait((e) => e.id > restarted.id && e.kind === 'supervisor' && e.action === 'scheduled', 20_000, 'scheduled again');
      expect(sched2).toMatchObject({ attempt: 2, delaySec: 2 });
      await tap.wait((e) => e.id > sched2.id && e.kind === 'supervisor' && e.action === 'restarted', 60_000, 'restarted again');
      const info = (await request<any[]>({ socketPath: sock }, 'GET', '/api/vms')).find((v) => v.name === 'sup');
      expect(info.supervision).toMatchObject({ policy: 'on-failure', restarts: 2, maxRetries: 3, gaveUp: false });

      // An end through kvmctl (kill: QMP quit) is not a failure: no restart.
      const since = tap.events.at(-1)!.id;
      expect((await h.cli(['kill', 'sup'])).code).toBe(0);
      await tap.wait((e) => e.id > since && e.kind === 'state' && e.state === 'stopped', 30_000, 'stopped');
      await new Promise((r) => setTimeout(r, 2500));
      expect(tap.events.filter((e) => e.id > since && e.kind === 'supervisor')).toEqual([]);
    } finally {
      tap.close();
    }
  }, 240_000);

  it('kill -9 of the server leaves the VM running; a new server adopts it and streams its events', async () => {
    const tap1 = await EventTap.open(sock);
    expect((await h.cli(['start', 'sup'])).code).toBe(0);
    const pid = pidOf();
    await tap1.wait((e) => e.vm === 'sup' && e.kind === 'state' && e.state === 'running', 20_000, 'running');
    tap1.close();
    const old = servers.at(-1)!;
    old.kill('SIGKILL');
    await new Promise((r) => old.once('exit', r));
    await new Promise((r) => setTimeout(r, 1500));
    expect(alive(pid)).toBe(true);
    expect((await h.cli(['status', 'sup', '--json'])).stdout).toContain('"running"');

    await startServer(); // clears the dead server's socket file
    const tap2 = await EventTap.open(sock, 0); // since=0: everything this server has seen
    const adopted = await tap2.wait((e) => e.kind === 'supervisor' && e.action === 'adopted' && e.vm === 'sup', 20_000, 'adopted');
    expect(adopted.message).toContain('sup');
    // Its QMP events come through the new server's connection on qmp-events.sock.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await h.cli(['pause', 'sup'])).code).toBe(0);
    await tap2.wait((e) => e.kind === 'qmp' && e.event === 'STOP' && e.vm === 'sup', 20_000, 'QMP STOP via the new server');
    expect((await h.cli(['resume', 'sup'])).code).toBe(0);
    await tap2.wait((e) => e.kind === 'qmp' && e.event === 'RESUME', 20_000, 'QMP RESUME');
    expect(pidOf()).toBe(pid); // never restarted
    expect(tap2.events.filter((e) => e.kind === 'supervisor' && e.action !== 'adopted')).toEqual([]);
    tap2.close();
    // A clean server shutdown (SIGTERM) leaves the VM running too.
    const cur = servers.at(-1)!;
    cur.kill('SIGTERM');
    await new Promise((r) => cur.once('exit', r));
    expect(alive(pid)).toBe(true);
    expect((await h.cli(['kill', 'sup'])).code).toBe(0);
  }, 180_000);
});
