/**
 * The QMP client and the HMP monitor client against a real QEMU (TCG, no guest: -S keeps the
 * machine in prelaunch until `cont`). QEMU is spawned by the test and killed by PID in afterAll
 * if it is still there.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient, type QmpCloseInfo } from '../../src/qmp/client.js';
import * as qmp from '../../src/qmp/commands.js';
import { hmpCommand } from '../../src/qmp/hmp.js';
import { KvmError } from '../../src/errors.js';

const QEMU = 'qemu-system-x86_64';
// Without QEMU installed there is nothing real to talk to (setup installs qemu-system-x86).
const haveQemu = spawnSync(QEMU, ['--version']).status === 0;

let dir: string;
let qmpSock: string;
let monSock: string;
let child: ChildProcess | undefined;
let exited: Promise<{ code: number | null; signal: string | null }>;
let stderr = '';

async function waitForFile(p: string, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!fs.existsSync(p)) {
    if (Date.now() - t0 > ms) throw new Error(`${p} did not appear within ${ms} ms; QEMU said: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejection(p: Promise<unknown>): Promise<KvmError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KvmError);
    return e as KvmError;
  }
  throw new Error('expected a rejection');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe.skipIf(!haveQemu)('QMP and HMP against real QEMU', () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync('/tmp/kq-');
    qmpSock = path.join(dir, 'q.sock');
    monSock = path.join(dir, 'm.sock');
    child = spawn(
      QEMU,
      ['-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-display', 'none',
        '-qmp', `unix:${qmpSock},server=on,wait=off`, '-monitor', `unix:${monSock},server=on,wait=off`, '-S'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', (d) => (stderr += d));
    exited = new Promise((r) => child!.once('exit', (code, signal) => r({ code, signal })));
    await waitForFile(qmpSock, 10_000);
    await waitForFile(monSock, 10_000);
  });

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('connects, negotiates and answers typed queries', async () => {
    const t0 = performance.now();
    const c = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
    const connectMs = performance.now() - t0;
    try {
      expect(c.version.qemu.major).toBeGreaterThanOrEqual(7);
      expect(await qmp.queryStatus(c)).toMatchObject({ status: 'prelaunch', running: false });
      expect((await qmp.queryKvm(c)).enabled).toBe(false);
      expect(await qmp.queryBlock(c)).toEqual([]);

      const rtt: number[] = [];
      for (let i = 0; i < 20; i++) {
        const s = performance.now();
        await qmp.queryStatus(c);
        rtt.push(performance.now() - s);
      }
      // Concurrent commands, each correlated by id.
      const [st, ver, kvm, name] = await Promise.all([qmp.queryStatus(c), qmp.queryVersion(c), qmp.queryKvm(c), qmp.queryName(c)]);
      expect(st.status).toBe('prelaunch');
      expect(ver).toEqual(c.version);
      expect(kvm.present).toBeTypeOf('boolean');
      expect(name).toEqual({});
      console.log(`QMP connect+capabilities ${connectMs.toFixed(1)} ms; query-status round trip median ${median(rtt).toFixed(2)} ms`);

      const e = await rejection(c.execute('no-such-command'));
      expect(e.code).toBe('QMP_ERROR');
      expect(e.message).toBe('no-such-command: CommandNotFound: The command no-such-command has not been found');
    } finally {
      await c.close();
    }
  });

  it('a second client gets no greeting while the first is connected', async () => {
    const first = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
    try {
      const e = await rejection(QmpClient.connect(qmpSock, { timeoutMs: 300 }));
      expect(e.code).toBe('QMP_CONNECT');
      expect(e.hint).toMatch(/one QMP client at a time/);
    } finally {
      await first.close();
    }
    // Once the first has left, connecting works again (and is quick once QEMU is up).
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const again = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
      times.push(performance.now() - t0);
      await again.close();
    }
    console.log(`QMP connect+greeting+capabilities, QEMU already up: median ${median(times).toFixed(1)} ms of 10`);
  });

  it('cont/stop with RESUME/STOP events, human-monitor-command, HMP over the monitor socket, system_reset', async () => {
    const c = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
    try {
      const resumed = c.waitForEvent('RESUME', { timeoutMs: 5000 });
      await qmp.cont(c);
      await resumed;
      expect(await qmp.queryStatus(c)).toMatchObject({ status: 'running', running: true });

      const stopped = c.waitForEvent('STOP', { timeoutMs: 5000 });
      await qmp.stop(c);
      await stopped;
      expect(await qmp.queryStatus(c)).toMatchObject({ status: 'paused', running: false });

      expect(await qmp.humanMonitorCommand(c, 'info status')).toBe('VM status: paused');

      // The HMP monitor is a separate socket: usable while QMP is connected.
      const t0 = performance.now();
      expect(await hmpCommand(monSock, 'info status', { timeoutMs: 5000 })).toBe('VM status: paused');
      console.log(`HMP "info status" over the monitor socket ${(performance.now() - t0).toFixed(1)} ms`);
      expect(await hmpCommand(monSock, 'info cpus', { timeoutMs: 5000 })).toMatch(/^\* CPU #0: thread_id=\d+$/);
      const e = await rejection(hmpCommand(monSock, 'nosuchcmd', { timeoutMs: 5000 }));
      expect(e.code).toBe('HMP_ERROR');

      const reset = c.waitForEvent('RESET', { timeoutMs: 5000, predicate: (ev) => ev.data.reason === 'host-qmp-system-reset' });
      await qmp.systemReset(c);
      expect((await reset).data).toMatchObject({ guest: false });
    } finally {
      await c.close();
    }
  });

  it('quit: the socket closes, the client reports the disconnection and QEMU exits', async () => {
    const c = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
    const closeInfo = new Promise<QmpCloseInfo>((r) => c.once('close', r));
    const shutdown = c.waitForEvent('SHUTDOWN', { timeoutMs: 5000 });
    const never = rejection(c.waitForEvent('NEVER', { timeoutMs: 10_000 }));
    const t0 = performance.now();
    await qmp.quit(c);
    const quitMs = performance.now() - t0;
    expect((await shutdown).data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    const info = await closeInfo;
    expect(info.byClient).toBe(false);
    expect(c.closed).toBe(true);
    expect((await never).code).toBe('QMP_DISCONNECTED');
    const e = await rejection(c.execute('query-status'));
    expect(e.code).toBe('QMP_DISCONNECTED');
    expect(e.message).toMatch(/^query-status: QEMU closed the QMP connection/);
    const ex = await exited;
    expect(ex.code).toBe(0);
    console.log(`quit → QMP socket closed ${quitMs.toFixed(1)} ms (close error: ${(info.error as NodeJS.ErrnoException | undefined)?.code ?? 'none'})`);

    // Connecting after QEMU has gone: its sockets are removed, so this is a missing socket.
    const gone = await rejection(QmpClient.connect(qmpSock, { timeoutMs: 1000 }));
    expect(gone.code).toBe('QMP_CONNECT');
    const hmpGone = await rejection(hmpCommand(monSock, 'info status', { timeoutMs: 1000 }));
    expect(hmpGone.code).toBe('HMP_CONNECT');
  });
});
