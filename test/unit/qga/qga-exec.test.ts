/**
 * guest exec's protocol against a fake qemu-ga on a unix socket (the real agent in the Debian guest
 * is tested in test/integration/debian-guest.test.ts): binary stdin as base64, output handed on as
 * it arrives (a partial `out-data` before the exit, and the usual all-at-the-exit), the exit code
 * and signal, truncation, the timeout and an abort killing the program in the guest and still
 * collecting what it wrote, and input over the limit refused before anything is sent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QgaClient } from '../../../src/qga/client.js';
import { EXEC_MAX_INPUT, exec, execCommandTimeout, execStream, exitStatusOf } from '../../../src/qga/commands.js';
import { startFakeAgent, stopFakeAgents, type QgaCmd as Cmd } from '../../fixtures/qga/fake-qga.js';

const clients: QgaClient[] = [];

class AgentError extends Error {}
/** A fake agent whose `handler` returns a JSON `return` value, an AgentError, or undefined for no reply. */
async function fakeAgent(handler: (cmd: Cmd) => unknown, seen: Cmd[] = []): Promise<{ client: QgaClient; seen: Cmd[] }> {
  const sock = await startFakeAgent((cmd, reply) => {
    seen.push(cmd);
    const r = handler(cmd);
    if (r instanceof AgentError) reply(`${JSON.stringify({ error: { class: 'GenericError', desc: r.message } })}\n`);
    else if (r !== undefined) reply(`${JSON.stringify({ return: r })}\n`);
  });
  const client = await QgaClient.connect(sock);
  clients.push(client);
  return { client, seen };
}
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stopFakeAgents();
});

describe('execStream', () => {
  it('sends binary stdin as base64 and hands on output chunks in the order they come, partial ones before the exit', async () => {
    const input = Buffer.from([0, 1, 2, 0xff, 0xfe, 10]);
    let polls = 0;
    const { client, seen } = await fakeAgent((c) => {
      if (c.execute === 'guest-exec') return { pid: 7 };
      polls++;
      if (polls === 1) return { exited: false, 'out-data': b64('one\n') }; // an agent that streams
      if (polls === 2) return { exited: false };
      return { exited: true, exitcode: 3, 'out-data': b64('two\n'), 'err-data': b64(Buffer.from([0xc3, 0x28])) };
    });
    const chunks: [string, string][] = [];
    const o = await execStream(client, ['/bin/prog', 'a b', '--x'], { input, env: ['LANG=C'], poll: { first: 1, max: 2 }, onOutput: (s, b) => chunks.push([s, b.toString('hex')]) });
    expect(seen[0]).toEqual({ execute: 'guest-exec', arguments: { path: '/bin/prog', arg: ['a b', '--x'], 'capture-output': true, env: ['LANG=C'], 'input-data': input.toString('base64') } });
    expect(chunks).toEqual([
      ['stdout', Buffer.from('one\n').toString('hex')],
      ['stdout', Buffer.from('two\n').toString('hex')],
      ['stderr', 'c328'], // bytes as they are, not decoded as UTF-8
    ]);
    expect(o).toMatchObject({ pid: 7, exitCode: 3, truncated: false, timedOut: false, killed: false, stdoutBytes: 8, stderrBytes: 2 });
    expect(exitStatusOf(o)).toBe(3);
  });

  it('reports a signal as 128+N and the agent\'s truncation', async () => {
    const { client } = await fakeAgent((c) => (c.execute === 'guest-exec' ? { pid: 8 } : { exited: true, signal: 15, 'out-data': b64('x'), 'out-truncated': true }));
    const o = await execStream(client, ['/bin/yes']);
    expect(o).toMatchObject({ signal: 15, truncated: true });
    expect(exitStatusOf(o)).toBe(143);
    expect(exitStatusOf({})).toBe(1);
  });

  it('kills the program in the guest after the timeout (stop it, its children, then it) and still collects what it wrote', async () => {
    let killed = false;
    let next = 100;
    const { client, seen } = await fakeAgent((c) => {
      if (c.execute === 'guest-exec' && c.arguments?.path !== '/bin/sleep') {
        if ((c.arguments?.arg as string[])[0] === '-KILL' && c.arguments?.path === 'kill') killed = true;
        return { pid: next++ };
      }
      if (c.execute === 'guest-exec') return { pid: 9 };
      if (c.arguments?.pid === 9) return killed ? { exited: true, signal: 9, 'out-data': b64('partial\n') } : { exited: false };
      return { exited: true, exitcode: 0 }; // the killers
    });
    const out: string[] = [];
    const t0 = Date.now();
    const o = await execStream(client, ['/bin/sleep', '1000'], { timeoutMs: 150, poll: { first: 10, max: 40 }, onOutput: (_s, b) => out.push(b.toString()) });
    expect(Date.now() - t0).toBeLessThan(3_000);
    const kills = seen.filter((c) => c.execute === 'guest-exec' && c.arguments?.path !== '/bin/sleep').map((c) => c.arguments);
    expect(kills).toEqual([
      { path: 'kill', arg: ['-STOP', '9'] },
      { path: 'pkill', arg: ['-KILL', '-P', '9'] },
      { path: 'kill', arg: ['-KILL', '9'] },
    ]);
    // each killer was waited for before the next one
    const order = seen.map((c) => (c.execute === 'guest-exec' ? `exec:${c.arguments?.path}` : `status:${c.arguments?.pid}`)).filter((x) => x !== 'status:9');
    expect(order).toEqual(['exec:/bin/sleep', 'exec:kill', 'status:100', 'exec:pkill', 'status:101', 'exec:kill', 'status:102']);
    expect(o).toMatchObject({ timedOut: true, aborted: false, killed: true, signal: 9 });
    expect(out).toEqual(['partial\n']);
  });

  it('says when the program could not be killed (it keeps running in the guest)', async () => {
    const { client } = await fakeAgent((c) => {
      if (c.execute === 'guest-exec' && c.arguments?.path === 'kill') return new AgentError('Failed to execute child process “kill” (No such file or directory)');
      if (c.execute === 'guest-exec') return { pid: 10 };
      return { exited: false };
    });
    const o = await execStream(client, ['/bin/sleep', '1000'], { timeoutMs: 60, poll: { first: 10, max: 20 } });
    expect(o).toMatchObject({ timedOut: true, killed: false });
  });

  it('an abort ends the wait at once and kills the program', async () => {
    let killed = false;
    const { client } = await fakeAgent((c) => {
      if (c.execute === 'guest-exec' && c.arguments?.path !== '/bin/cat') return (killed ||= (c.arguments?.arg as string[])[0] === '-KILL'), { pid: 98 };
      if (c.execute === 'guest-exec') return { pid: 11 };
      if (c.arguments?.pid === 98) return { exited: true, exitcode: 0 };
      return killed ? { exited: true, signal: 9 } : { exited: false };
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const o = await execStream(client, ['/bin/cat'], { signal: ac.signal, timeoutMs: 60_000, poll: { first: 5_000, max: 5_000 } });
    expect(Date.now() - t0).toBeLessThan(2_000); // the 5 s poll sleep was cut short
    expect(o).toMatchObject({ aborted: true, timedOut: false, killed: true, signal: 9 });
  });

  it('refuses input over the limit before sending anything; the guest-exec timeout grows with the input', async () => {
    const { client, seen } = await fakeAgent(() => ({ pid: 1 }));
    await expect(execStream(client, ['/bin/cat'], { input: Buffer.alloc(EXEC_MAX_INPUT + 1) })).rejects.toMatchObject({ code: 'INPUT_TOO_LARGE', exit: 2 });
    await expect(execStream(client, [])).rejects.toMatchObject({ code: 'BAD_INPUT', exit: 2 });
    expect(seen).toEqual([]);
    expect(execCommandTimeout(0)).toBe(10_000);
    expect(execCommandTimeout(EXEC_MAX_INPUT)).toBe(26_000);
  });
});

describe('exec (collected)', () => {
  it('returns text and throws QGA_TIMEOUT naming the kill when the program outlives the timeout', async () => {
    let killed = false;
    const { client } = await fakeAgent((c) => {
      if (c.execute === 'guest-exec' && c.arguments?.path !== '/bin/sleep') return (killed ||= (c.arguments?.arg as string[])[0] === '-KILL'), { pid: 50 };
      if (c.execute === 'guest-exec') return { pid: 12 };
      return c.arguments?.pid === 12 && !killed ? { exited: false } : { exited: true, exitcode: 0 };
    });
    await expect(exec(client, ['/bin/sleep', '9'], { timeoutMs: 80 })).rejects.toMatchObject({ code: 'QGA_TIMEOUT', message: expect.stringMatching(/pid 12 .*killed/) });
  });
});

describe('big answers', () => {
  it('a reply of megabytes that takes longer than the timeout to arrive, but keeps arriving, is not cut off', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const sock = await startFakeAgent((_cmd, send) => {
      const reply = Buffer.from(`${JSON.stringify({ return: { exited: true, exitcode: 0, 'out-data': data.toString('base64') } })}\n`);
      let off = 0;
      const t = setInterval(() => {
        send(reply.subarray(off, off + 128 * 1024));
        off += 128 * 1024;
        if (off >= reply.length) clearInterval(t);
      }, 60); // 32 pieces over ≈ 2 s, each well within the timeout even on a loaded host
    });
    const c = await QgaClient.connect(sock);
    clients.push(c);
    const t0 = Date.now();
    const r = await c.execute<{ 'out-data': string }>('guest-exec-status', { pid: 1 }, { timeoutMs: 800 });
    expect(Date.now() - t0).toBeGreaterThan(800);
    expect(Buffer.from(r['out-data'], 'base64').equals(data)).toBe(true);
  });
});

