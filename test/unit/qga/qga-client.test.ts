/**
 * Protocol edge cases of the guest-agent client against a fake qemu-ga on a unix socket (the
 * real agent in a real guest is tested in test/integration/guest-agent.test.ts): stale output
 * before the sync marker, replies split across chunks, errors, a late reply after a timeout that
 * must not be taken for the next command's answer, no agent at all, and guest-exec polling.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QgaClient } from '../../../src/qga/client.js';
import { exec, guestAddresses, ping } from '../../../src/qga/commands.js';
import { startFakeAgent as fakeAgent, stopFakeAgents } from '../../fixtures/qga/fake-qga.js';

const clients: QgaClient[] = [];
const connect = async (sock: string, timeoutMs?: number) => {
  const c = await QgaClient.connect(sock, { timeoutMs });
  clients.push(c);
  return c;
};

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stopFakeAgents();
});

describe('QgaClient', () => {
  it('drops stale output before the 0xFF sync marker and answers a ping', async () => {
    const sock = await fakeAgent((cmd, reply) => cmd.execute === 'guest-ping' && reply('{"return": {}}\n'), { preamble: '{"return": 12345}\n{"return": {"stale": true}}\n' });
    const c = await connect(sock);
    expect(await ping(c)).toBe(true);
  });

  it('reassembles replies split across chunks, including multi-byte UTF-8', async () => {
    const sock = await fakeAgent((cmd, reply) => {
      if (cmd.execute !== 'guest-get-host-name') return;
      const b = Buffer.from('{"return": {"host-name": "häst"}}\n');
      reply(b.subarray(0, 24));
      setTimeout(() => reply(b.subarray(24)), 20);
    });
    const c = await connect(sock);
    expect(await c.execute('guest-get-host-name')).toEqual({ 'host-name': 'häst' });
  });

  it('turns an agent error into QGA_ERROR with class and description', async () => {
    const sock = await fakeAgent((_c, reply) => reply('{"error": {"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}}\n'));
    const c = await connect(sock);
    await expect(c.execute('guest-nope')).rejects.toMatchObject({ code: 'QGA_ERROR', message: expect.stringContaining('CommandNotFound') });
  });

  it('after a timeout, a late reply is not taken for the next command (it re-syncs)', async () => {
    let slow = true;
    const sock = await fakeAgent((cmd, reply) => {
      if (cmd.execute === 'guest-get-time' && slow) {
        slow = false;
        setTimeout(() => reply('{"return": 111}\n'), 150);
      } else if (cmd.execute === 'guest-get-time') reply('{"return": 222}\n');
    });
    const c = await connect(sock);
    await expect(c.execute('guest-get-time', undefined, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'QGA_TIMEOUT' });
    await new Promise((r) => setTimeout(r, 200)); // the late 111 arrives while nobody waits
    expect(await c.execute('guest-get-time')).toBe(222);
  });

  it('queues concurrent commands: each caller gets its own answer', async () => {
    const sock = await fakeAgent((cmd, reply) => setTimeout(() => reply(`{"return": "${cmd.execute}"}\n`), 10));
    const c = await connect(sock);
    const [a, b] = await Promise.all([c.execute('guest-a'), c.execute('guest-b')]);
    expect([a, b]).toEqual(['guest-a', 'guest-b']);
  });

  it('QGA_UNAVAILABLE when the channel is up but no agent answers', async () => {
    const sock = await fakeAgent(() => undefined, { mute: true });
    await expect(QgaClient.connect(sock, { timeoutMs: 200 })).rejects.toMatchObject({ code: 'QGA_UNAVAILABLE', hint: expect.stringContaining('qemu-guest-agent') });
  });

  it('QGA_UNAVAILABLE with a hint when there is no socket', async () => {
    await expect(QgaClient.connect('/nonexistent/qga.sock')).rejects.toMatchObject({ code: 'QGA_UNAVAILABLE' });
  });

  it('QGA_DISCONNECTED when the agent goes away mid-command', async () => {
    const sock = await fakeAgent((_c, _r, conn) => conn.destroy());
    const c = await connect(sock);
    await expect(c.execute('guest-fsfreeze-freeze')).rejects.toMatchObject({ code: 'QGA_DISCONNECTED' });
  });

  it('exec sends base64 input, polls until exited and decodes the output', async () => {
    let polls = 0;
    const sock = await fakeAgent((cmd, reply) => {
      if (cmd.execute === 'guest-exec') {
        expect(cmd.arguments).toMatchObject({ path: '/bin/cat', arg: [], 'capture-output': true, 'input-data': Buffer.from('hi\n').toString('base64') });
        reply('{"return": {"pid": 42}}\n');
      } else if (cmd.execute === 'guest-exec-status') {
        polls++;
        reply(polls < 3 ? '{"return": {"exited": false}}\n' : `{"return": {"exited": true, "exitcode": 0, "out-data": "${Buffer.from('hi\n').toString('base64')}"}}\n`);
      }
    });
    const c = await connect(sock);
    const r = await exec(c, ['/bin/cat'], { input: 'hi\n' });
    expect(r).toEqual({ exitCode: 0, signal: undefined, stdout: 'hi\n', stderr: '', truncated: false });
    expect(polls).toBe(3);
  });
});

describe('guestAddresses', () => {
  it('leaves out loopback and link-local IPv6', () => {
    expect(
      guestAddresses([
        { name: 'lo', 'ip-addresses': [{ 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 }] },
        { name: 'eth0', 'hardware-address': '52:54:00:00:00:01', 'ip-addresses': [{ 'ip-address': '10.0.0.5', 'ip-address-type': 'ipv4', prefix: 24 }, { 'ip-address': 'fe80::1', 'ip-address-type': 'ipv6', prefix: 64 }] },
      ]),
    ).toEqual([{ name: 'eth0', mac: '52:54:00:00:00:01', addresses: ['10.0.0.5/24'] }]);
  });
});
