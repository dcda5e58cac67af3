/**
 * HMP over a monitor socket, against a fake monitor that replays bytes recorded from QEMU 7.2
 * (test/fixtures/qmp/hmp-basic.txt: readline echo with escape codes, chunking, prompt, hang-up).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hmpCommand, openInteractive, parseHmpResponse, stripEscapes } from '../../../src/qmp/hmp.js';
import { KvmError } from '../../../src/errors.js';
import { FakeHmpServer, loadHmpTranscript } from '../../fixtures/qmp/fake-hmp.js';

const transcript = loadHmpTranscript();
let dir: string;
let sock: string;
let fake: FakeHmpServer | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hmpu-'));
  sock = path.join(dir, 'm.sock');
});
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<KvmError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KvmError);
    return e as KvmError;
  }
  throw new Error('expected a rejection');
}

const reply = (cmd: string) => transcript.replies.get(cmd)!.chunks.join('');

describe('parsing recorded monitor output', () => {
  it('the transcript is from QEMU 7.2 and has escape codes', () => {
    expect(transcript.version).toMatch(/^7\.2\./);
    expect(reply('info status')).toContain('\x1b[K');
  });

  it('drops the echo, the escape codes and the prompt', () => {
    expect(parseHmpResponse(reply('info status'))).toBe('VM status: paused (prelaunch)');
    expect(parseHmpResponse(reply('info cpus'))).toMatch(/^\* CPU #0: thread_id=\d+$/);
    expect(parseHmpResponse(reply('stop'))).toBe('');
    expect(parseHmpResponse(reply('info name'))).toBe('');
    expect(parseHmpResponse(reply('nosuchcmd'))).toBe("unknown command: 'nosuchcmd'");
    expect(parseHmpResponse(reply('quit'))).toBe('');
  });

  it('strips CSI and two-byte escapes', () => {
    expect(stripEscapes('a\x1b[Kb\x1b[1;31mc\x1b[0m\x1b[Dd\x1bce')).toBe('abcde');
  });

  it('keeps multi-line output', () => {
    expect(parseHmpResponse('info x\x1b[K\r\nline 1\r\nline 2\r\n(qemu) ')).toBe('line 1\nline 2');
  });
});

describe('hmpCommand over a monitor socket', () => {
  it('runs recorded commands and returns their output', async () => {
    fake = await FakeHmpServer.start(sock);
    expect(await hmpCommand(sock, 'info status', { timeoutMs: 2000 })).toBe('VM status: paused (prelaunch)');
    expect(await hmpCommand(sock, 'stop', { timeoutMs: 2000 })).toBe('');
    expect(await hmpCommand(sock, 'info cpus', { timeoutMs: 2000 })).toMatch(/^\* CPU #0/);
    expect(fake.received).toEqual(['info status', 'stop', 'info cpus']);
  });

  it('works when QEMU sends one byte at a time', async () => {
    fake = await FakeHmpServer.start(sock);
    fake.drip = true;
    expect(await hmpCommand(sock, 'info status', { timeoutMs: 5000 })).toBe('VM status: paused (prelaunch)');
  });

  it('an unknown command is HMP_ERROR', async () => {
    fake = await FakeHmpServer.start(sock);
    const e = await rejection(hmpCommand(sock, 'nosuchcmd', { timeoutMs: 2000 }));
    expect(e.code).toBe('HMP_ERROR');
    expect(e.message).toBe("monitor: unknown command 'nosuchcmd'");
    expect(e.hint).toMatch(/help/);
  });

  it('quit resolves with empty output when QEMU hangs up', async () => {
    fake = await FakeHmpServer.start(sock);
    expect(await hmpCommand(sock, 'quit', { timeoutMs: 2000 })).toBe('');
  });

  it('QEMU hanging up during another command is HMP_DISCONNECTED', async () => {
    fake = await FakeHmpServer.start(sock);
    fake.handler = (_cmd, s) => {
      s.write('info status\x1b[K');
      setTimeout(() => s.destroy(), 20);
      return true;
    };
    const e = await rejection(hmpCommand(sock, 'info status', { timeoutMs: 2000 }));
    expect(e.code).toBe('HMP_DISCONNECTED');
    expect(e.message).toContain('"info status"');
  });

  it('line breaks and empty commands are bad input (exit 2) and nothing is sent', async () => {
    fake = await FakeHmpServer.start(sock);
    for (const bad of ['info status\nquit', 'stop\r', '   ']) {
      let err: unknown;
      try {
        await hmpCommand(sock, bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KvmError);
      expect((err as KvmError).code).toBe('HMP_BAD_COMMAND');
      expect((err as KvmError).exit).toBe(2);
    }
    expect(fake.received).toEqual([]);
  });

  it('a missing socket is HMP_CONNECT with a hint', async () => {
    const e = await rejection(hmpCommand(path.join(dir, 'none.sock'), 'info status', { timeoutMs: 1000 }));
    expect(e.code).toBe('HMP_CONNECT');
    expect(e.message).toContain('does not exist');
    expect(e.hint).toMatch(/-monitor/);
  });

  it('a monitor busy with another client (no banner) is HMP_TIMEOUT with a hint', async () => {
    fake = await FakeHmpServer.start(sock);
    fake.greet = false;
    const t0 = Date.now();
    const e = await rejection(hmpCommand(sock, 'info status', { timeoutMs: 200 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(e.code).toBe('HMP_TIMEOUT');
    expect(e.hint).toMatch(/one client at a time/);
  });

  it('a command whose prompt never comes back is HMP_TIMEOUT', async () => {
    fake = await FakeHmpServer.start(sock);
    fake.handler = () => true;
    const e = await rejection(hmpCommand(sock, 'info status', { timeoutMs: 150 }));
    expect(e.code).toBe('HMP_TIMEOUT');
    expect(e.message).toContain('"info status"');
  });
});

describe('openInteractive', () => {
  it('pipes input to the monitor and output back; Ctrl-] detaches without sending it', async () => {
    fake = await FakeHmpServer.start(sock);
    const input = new PassThrough();
    const output = new PassThrough();
    let seen = '';
    output.on('data', (d: Buffer) => (seen += d.toString()));
    const done = openInteractive(sock, input, output);
    await until(() => seen.includes('(qemu) '));
    input.write('info status\r');
    await until(() => seen.includes('VM status: paused (prelaunch)'));
    input.write('x\x1d');
    expect(await done).toEqual({ reason: 'detached' });
    expect(fake.received).toEqual(['info status']);
  });

  it('ends when piped input ends, and reports QEMU hanging up', async () => {
    fake = await FakeHmpServer.start(sock);
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    const done = openInteractive(sock, input, output);
    input.end('stop\n');
    expect(await done).toEqual({ reason: 'eof' });
    expect(fake.received).toEqual(['stop']);

    const input2 = new PassThrough();
    const done2 = openInteractive(sock, input2, output);
    input2.write('quit\n');
    expect(await done2).toEqual({ reason: 'closed' });
  });

  it('a missing socket rejects with HMP_CONNECT', async () => {
    const e = await rejection(openInteractive(path.join(dir, 'none.sock'), new PassThrough(), new PassThrough()));
    expect(e.code).toBe('HMP_CONNECT');
  });
});

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
