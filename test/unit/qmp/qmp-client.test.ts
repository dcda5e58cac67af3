/**
 * QMP client against a scripted fake QMP server (a real unix socket) that replays transcripts
 * recorded from QEMU 7.2 (test/fixtures/qmp/*.qmp). Protocol edge cases (reordering, garbage,
 * hang-ups, silence) are scripted on top of the recorded replies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient, splitJsonStream, type QmpEvent } from '../../../src/qmp/client.js';
import * as qmp from '../../../src/qmp/commands.js';
import { DEFAULT_QMP_TIMEOUT_MS, timeoutFor } from '../../../src/qmp/timeouts.js';
import { KvmError } from '../../../src/errors.js';
import { FakeQmpServer, loadTranscript } from '../../fixtures/qmp/fake-qmp.js';

const basic = loadTranscript('basic.qmp');
const block = loadTranscript('block.qmp');

let dir: string;
let sock: string;
let fake: FakeQmpServer | undefined;
const clients: QmpClient[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmpu-'));
  sock = path.join(dir, 'q.sock');
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await fake?.stop();
  fake = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(transcript = basic): Promise<QmpClient> {
  fake = await FakeQmpServer.start(sock, transcript);
  const c = await QmpClient.connect(sock, { timeoutMs: 2000 });
  clients.push(c);
  return c;
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

describe('transcripts', () => {
  it('were recorded from QEMU 7.2', () => {
    expect(basic.version).toMatch(/^7\.2\./);
    expect(block.version).toMatch(/^7\.2\./);
    expect(basic.exchanges.length).toBeGreaterThan(10);
  });
});

describe('connect', () => {
  it('connectThen sends its first command with qmp_capabilities and resolves with its reply', async () => {
    fake = await FakeQmpServer.start(sock, basic);
    const { client, result } = await QmpClient.connectThen<{ status: string; running: boolean }>(sock, 'query-status', { timeoutMs: 2000 });
    clients.push(client);
    // the transcript's QEMU was recorded with -S: its query-status reply says prelaunch
    expect(result).toEqual({ status: 'prelaunch', singlestep: false, running: false });
    expect(client.version?.qemu.major).toBe(7);
  });

  it('reads the greeting, sends qmp_capabilities first and exposes the version', async () => {
    const c = await connect();
    expect(c.version).toEqual({ qemu: { major: 7, minor: 2, micro: 22 }, package: expect.stringContaining('Debian') });
    expect(c.capabilities).toEqual(['oob']);
    expect(fake!.received[0]).toMatchObject({ execute: 'qmp_capabilities' });
    expect(fake!.received[0]!.id).toBeDefined();
  });

  it('a missing socket is QMP_CONNECT with a hint', async () => {
    const e = await rejection(QmpClient.connect(path.join(dir, 'none.sock'), { timeoutMs: 1000 }));
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.message).toContain('none.sock does not exist');
    expect(e.hint).toMatch(/running/);
  });

  it('a file that is not a socket is QMP_CONNECT', async () => {
    const f = path.join(dir, 'plain');
    fs.writeFileSync(f, '');
    const e = await rejection(QmpClient.connect(f, { timeoutMs: 1000 }));
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.message).toContain(f);
  });

  it('a socket path longer than 107 bytes is refused before connecting', async () => {
    const e = await rejection(QmpClient.connect('/tmp/' + 'x'.repeat(120), { timeoutMs: 1000 }));
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.hint).toMatch(/KVMCTL_HOME/);
  });

  it('no greeting (QEMU busy with another client) times out as QMP_CONNECT', async () => {
    fake = await FakeQmpServer.start(sock, basic);
    fake.greet = false;
    const t0 = Date.now();
    const e = await rejection(QmpClient.connect(sock, { timeoutMs: 200 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.hint).toMatch(/one QMP client at a time/);
  });

  it('an HMP monitor socket is recognised and refused with a hint', async () => {
    fake = await FakeQmpServer.start(sock, { ...basic, greeting: "QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) " });
    const e = await rejection(QmpClient.connect(sock, { timeoutMs: 1000 }));
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.message).toContain('not a QMP socket');
    expect(e.hint).toMatch(/HMP monitor socket/);
  });

  it('a failing qmp_capabilities is QMP_CONNECT', async () => {
    fake = await FakeQmpServer.start(sock, basic);
    fake.handler = (req, conn) => {
      conn.sendLine(JSON.stringify({ id: req.id, error: { class: 'GenericError', desc: 'nope' } }));
      return true;
    };
    const e = await rejection(QmpClient.connect(sock, { timeoutMs: 1000 }));
    expect(e.code).toBe('QMP_CONNECT');
    expect(e.message).toContain('qmp_capabilities: GenericError: nope');
  });
});

describe('commands replayed from the 7.2 transcript', () => {
  it('typed helpers return the recorded results', async () => {
    const c = await connect();
    expect(await qmp.queryStatus(c)).toEqual({ status: 'prelaunch', running: false, singlestep: false });
    expect(await qmp.queryKvm(c)).toEqual({ enabled: false, present: true });
    expect((await qmp.queryVersion(c)).qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(await qmp.humanMonitorCommand(c, 'info status')).toBe('VM status: paused');
    await qmp.stop(c);
    await qmp.cont(c);
    await qmp.systemReset(c);
    await qmp.systemPowerdown(c);
    expect(fake!.received.map((r) => r.execute)).toEqual([
      'qmp_capabilities', 'query-status', 'query-kvm', 'query-version', 'human-monitor-command', 'stop', 'cont', 'system_reset', 'system_powerdown',
    ]);
    expect(fake!.received[4]!.arguments).toEqual({ 'command-line': 'info status' });
    const ids = fake!.received.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('QMP errors become QMP_ERROR "<command>: <class>: <desc>"', async () => {
    const c = await connect();
    const e = await rejection(c.execute('no-such-command'));
    expect(e.code).toBe('QMP_ERROR');
    expect(e.message).toBe('no-such-command: CommandNotFound: The command no-such-command has not been found');
    expect(e.details).toMatchObject({ class: 'CommandNotFound' });
    const e2 = await rejection(c.execute('human-monitor-command', {}));
    expect(e2.message).toBe("human-monitor-command: GenericError: Parameter 'command-line' is missing");
    // The connection is still usable after an error.
    expect((await qmp.queryStatus(c)).status).toBe('prelaunch');
  });

  it('block commands: query-block, query-blockstats, snapshot, media', async () => {
    const c = await connect(block);
    const blocks = await qmp.queryBlock(c);
    expect(blocks.map((b) => b.device)).toEqual(['drive0', 'cd0']);
    expect(blocks[0]!.inserted!.image['virtual-size']).toBe(64 * 1024 * 1024);
    expect(blocks[0]!.inserted!['node-name']).toBe('disk0');
    expect(blocks[1]!.removable).toBe(true);
    const stats = await qmp.queryBlockstats(c);
    expect(stats[0]!.stats.rd_bytes).toBe(0);
    expect(stats[0]!.parent!.stats).toBeDefined();

    await qmp.blockdevSnapshotSync(c, { device: 'drive0', 'snapshot-file': '/tmp/REC/snap1.qcow2', format: 'qcow2' });
    const e = await rejection(qmp.blockdevSnapshotSync(c, { device: 'nope', 'snapshot-file': '/tmp/REC/snap2.qcow2', format: 'qcow2' }));
    expect(e.message).toBe("blockdev-snapshot-sync: GenericError: Cannot find device='nope' nor node-name=''");

    const events: QmpEvent[] = [];
    c.on('event', (ev) => events.push(ev));
    const closed = c.waitForEvent('DEVICE_TRAY_MOVED', { timeoutMs: 1000, predicate: (ev) => ev.data['tray-open'] === false });
    await qmp.changeMedium(c, { id: 'cdrom0', filename: '/tmp/REC/a.iso', format: 'raw' });
    // Both tray events were recorded before the reply, so they are delivered before it resolves.
    expect(events.map((ev) => ev.data['tray-open'])).toEqual([true, false]);
    expect((await closed).data).toEqual({ device: 'cd0', 'tray-open': false, id: 'cdrom0' });
    await qmp.eject(c, { id: 'cdrom0' });
    expect(events).toHaveLength(3);
    expect(events[2]!.timestamp.seconds).toBeGreaterThan(0);
    const e2 = await rejection(qmp.eject(c, { id: 'vd0' }));
    expect(e2.message).toBe('eject: GenericError: Device does not have a block device backend');
    expect((await qmp.queryBlock(c))[0]!.inserted!.image['backing-image']).toBeDefined();
  });

  it('quit: SHUTDOWN event, reply, then QEMU hangs up; quit() resolves once closed', async () => {
    const c = await connect();
    const shutdown = c.waitForEvent('SHUTDOWN', { timeoutMs: 1000 });
    const closeInfo = new Promise((r) => c.once('close', r));
    await qmp.quit(c);
    expect((await shutdown).data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    expect(c.closed).toBe(true);
    expect(await closeInfo).toMatchObject({ byClient: false });
  });
});

describe('correlation, events and stream framing', () => {
  it('concurrent commands answered out of order each get their own reply', async () => {
    const c = await connect();
    const held: Array<{ id: unknown; execute: string }> = [];
    fake!.handler = (req, conn) => {
      held.push({ id: req.id, execute: req.execute });
      if (held.length === 3) {
        // Answer newest first, all three in one write.
        conn.socket.write(held.reverse().map((h) => JSON.stringify({ return: { echo: h.execute }, id: h.id }) + '\r\n').join(''));
      }
      return true;
    };
    const [a, b, d] = await Promise.all([c.execute('query-a'), c.execute('query-b'), c.execute('query-c')]);
    expect([a, b, d]).toEqual([{ echo: 'query-a' }, { echo: 'query-b' }, { echo: 'query-c' }]);
  });

  it('events interleaved with replies are routed as events, in order', async () => {
    const c = await connect();
    const seen: string[] = [];
    c.on('event', (ev) => seen.push(ev.event));
    fake!.handler = (req, conn) => {
      if (req.execute !== 'query-status') return false;
      conn.sendLine('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}');
      conn.socket.write(
        `{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "RESUME"}\r\n{"return": {"status": "running", "singlestep": false, "running": true}, "id": ${JSON.stringify(req.id)}}\r\n{"timestamp": {"seconds": 1, "microseconds": 4}, "event": "RTC_CHANGE", "data": {"offset": 3}}\r\n`,
      );
      return true;
    };
    const ev = c.waitForEvent('RTC_CHANGE', { timeoutMs: 1000 });
    expect(await qmp.queryStatus(c)).toEqual({ status: 'running', singlestep: false, running: true });
    expect(await ev).toEqual({ event: 'RTC_CHANGE', data: { offset: 3 }, timestamp: { seconds: 1, microseconds: 4 } });
    expect(seen).toEqual(['STOP', 'RESUME', 'RTC_CHANGE']);
  });

  it('the recorded byte stream delivered one byte at a time still parses', async () => {
    const c = await connect();
    fake!.handler = (req, conn) => {
      if (req.execute !== 'cont') return false;
      const text = conn.recorded(req).lines.map((l) => l + '\r\n').join('');
      let i = 0;
      const drip = () => {
        if (i < text.length) {
          conn.socket.write(text[i++]!);
          setImmediate(drip);
        }
      };
      drip();
      return true;
    };
    const resumed = c.waitForEvent('RESUME', { timeoutMs: 2000 });
    await qmp.cont(c);
    expect((await resumed).event).toBe('RESUME');
  });

  it('several messages on one line without separators, and multi-byte UTF-8 split across chunks', async () => {
    const c = await connect();
    fake!.handler = (req, conn) => {
      const reply = Buffer.from(`{"event":"X","timestamp":{"seconds":0,"microseconds":0}}{"return":"grüße ✓","id":${JSON.stringify(req.id)}}\n`);
      const cut = reply.indexOf(Buffer.from('✓')) + 1; // inside the 3-byte character
      conn.socket.write(reply.subarray(0, cut));
      setTimeout(() => conn.socket.write(reply.subarray(cut)), 20);
      return true;
    };
    const x = c.waitForEvent('X', { timeoutMs: 1000 });
    expect(await c.execute('query-anything')).toBe('grüße ✓');
    expect((await x).event).toBe('X');
  });

  it('garbage lines are reported as protocol errors and do not disturb replies', async () => {
    const c = await connect();
    const garbage: string[] = [];
    c.on('protocol-error', (text) => garbage.push(text));
    fake!.handler = (req, conn) => {
      if (req.execute !== 'query-status') return false;
      conn.socket.write('garbage\r\n{broken\r\n] stray\r\n');
      conn.replay(req);
      return true;
    };
    expect((await qmp.queryStatus(c)).status).toBe('prelaunch');
    expect(garbage).toEqual(['garbage', '{broken', '] stray']);
  });

  it('an error without id (QEMU could not parse a line) fails the one waiting command', async () => {
    const c = await connect();
    fake!.handler = (_req, conn) => {
      conn.sendLine('{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword \'garbage\'"}}');
      return true;
    };
    const e = await rejection(c.execute('query-status'));
    expect(e.code).toBe('QMP_ERROR');
    expect(e.message).toContain('query-status: GenericError: JSON parse error');
  });
});

describe('pretty-printed and partial JSON (splitJsonStream)', () => {
  it('splits pretty-printed objects and keeps braces inside strings', () => {
    const text = '{\n    "return": {\n        "a": "}{\\"",\n        "b": [1, {"c": 2}]\n    },\n    "id": 1\n}\n{"event": "X"';
    const { messages, rest } = splitJsonStream(text);
    expect(messages).toEqual([{ value: { return: { a: '}{"', b: [1, { c: 2 }] }, id: 1 } }]);
    expect(rest).toBe('{"event": "X"');
  });

  it('holds a partial garbage line until its end arrives', () => {
    expect(splitJsonStream('(qemu) ')).toEqual({ messages: [], rest: '(qemu) ' });
    expect(splitJsonStream('junk\n{"a":1}').messages).toEqual([{ garbage: 'junk', why: 'not JSON' }, { value: { a: 1 } }]);
  });
});

describe('timeouts', () => {
  it('the per-command table', () => {
    expect(timeoutFor('query-status')).toBe(5_000);
    expect(timeoutFor('query-anything-new')).toBe(5_000);
    expect(timeoutFor('system_powerdown')).toBe(5_000);
    expect(timeoutFor('quit')).toBe(10_000);
    expect(timeoutFor('human-monitor-command')).toBe(30_000);
    expect(timeoutFor('blockdev-snapshot-sync')).toBe(60_000);
    expect(timeoutFor('device_add')).toBe(DEFAULT_QMP_TIMEOUT_MS);
    expect(DEFAULT_QMP_TIMEOUT_MS).toBe(10_000);
  });

  it('no reply in time is QMP_TIMEOUT; a late reply is ignored and the client stays usable', async () => {
    const c = await connect();
    const late: string[] = [];
    c.on('protocol-error', (text) => late.push(text));
    let heldId: unknown;
    fake!.handler = (req) => {
      if (req.execute !== 'query-status' || heldId !== undefined) return false;
      heldId = req.id;
      return true;
    };
    const t0 = Date.now();
    const e = await rejection(c.execute('query-status', undefined, { timeoutMs: 150 }));
    const took = Date.now() - t0;
    expect(e.code).toBe('QMP_TIMEOUT');
    expect(e.message).toBe('query-status: no reply from QEMU within 150 ms');
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(1000);
    fake!.connections[0]!.write(JSON.stringify({ return: {}, id: heldId }) + '\r\n');
    expect((await qmp.queryStatus(c)).status).toBe('prelaunch');
    expect(late).toHaveLength(1);
  });

  it('many concurrent waitForEvent calls resolve together without listener-leak warnings', async () => {
    const c = await connect();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const waits = Array.from({ length: 50 }, () => c.waitForEvent('RESUME', { timeoutMs: 2000 }));
      await qmp.cont(c);
      expect((await Promise.all(waits)).every((ev) => ev.event === 'RESUME')).toBe(true);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      expect(c.listenerCount('event')).toBe(0);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('waitForEvent times out with QMP_TIMEOUT', async () => {
    const c = await connect();
    const e = await rejection(c.waitForEvent('NEVER', { timeoutMs: 50 }));
    expect(e.code).toBe('QMP_TIMEOUT');
    expect(e.message).toContain('NEVER');
  });
});

describe('disconnects', () => {
  it('QEMU going away mid-command rejects every pending command and emits close', async () => {
    const c = await connect();
    // QEMU stops reading after `stop` and dies 50 ms later with the next command still unread.
    fake!.handler = (_req, conn) => {
      conn.reset(50);
      return true;
    };
    const closeInfo = new Promise<{ error?: Error; byClient: boolean }>((r) => c.once('close', r));
    const waiting = c.waitForEvent('SHUTDOWN', { timeoutMs: 5000 });
    const p1 = rejection(c.execute('stop'));
    await new Promise((r) => setTimeout(r, 10));
    const p2 = rejection(c.execute('query-status'));
    const [e1, e2, e3] = await Promise.all([p1, p2, rejection(waiting)]);
    expect(e1.code).toBe('QMP_DISCONNECTED');
    expect(e1.message).toMatch(/^stop: QEMU closed the QMP connection \(ECONNRESET\) before a reply$/);
    expect(e2.code).toBe('QMP_DISCONNECTED');
    expect(e2.message).toMatch(/^query-status: /);
    expect(e3.code).toBe('QMP_DISCONNECTED');
    expect(e1.hint).toMatch(/exited/);
    const info = await closeInfo;
    expect(info.byClient).toBe(false);
    expect((info.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    expect(c.closed).toBe(true);
    const e4 = await rejection(c.execute('query-status'));
    expect(e4.code).toBe('QMP_DISCONNECTED');
  });

  it('a clean EOF from QEMU is a disconnect too', async () => {
    const c = await connect();
    fake!.handler = (_req, conn) => {
      conn.socket.end();
      return true;
    };
    const e = await rejection(c.execute('query-status'));
    expect(e.code).toBe('QMP_DISCONNECTED');
    expect(e.message).toBe('query-status: QEMU closed the QMP connection before a reply');
  });

  it('close() rejects commands in flight and resolves', async () => {
    const c = await connect();
    fake!.handler = () => true;
    const p = rejection(c.execute('query-status'));
    const closing = c.close();
    const after = await rejection(c.execute('query-kvm'));
    expect(after.message).toBe('query-kvm: the client closed the connection before a reply');
    await closing;
    const e = await p;
    expect(e.code).toBe('QMP_DISCONNECTED');
    expect(e.message).toContain('the client closed the connection');
    expect(c.closed).toBe(true);
    await c.close(); // idempotent
  });

  it('waitForClose with a timeout rejects while QEMU stays', async () => {
    const c = await connect();
    const e = await rejection(c.waitForClose({ timeoutMs: 50 }));
    expect(e.code).toBe('QMP_TIMEOUT');
  });
});
