/**
 * #14 item 7: the serial fan-out's bounded buffer per viewer. A unix socket server stands in for
 * QEMU's serial chardev; the viewers are stand-ins for `ws` sockets whose unsent byte count the
 * test sets. A viewer over its bound loses output (and is told how much when it catches up); the
 * other viewers get everything; input from any viewer reaches the socket; the last one leaving
 * closes the connection. (The real thing with QEMU: test/integration/serial-fanout.test.ts.)
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SerialHub } from '../../../src/api/routes/ws.js';

type Handler = (...a: any[]) => void;
class FakeWs {
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  bufferedAmount = 0;
  got: Buffer[] = [];
  closedWith?: number;
  private readonly on_: Record<string, Handler[]> = {};
  send(d: Buffer): void {
    this.got.push(Buffer.from(d));
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  ping(): void {}
  on(ev: string, fn: Handler): void {
    (this.on_[ev] ??= []).push(fn);
  }
  emit(ev: string, ...a: unknown[]): void {
    for (const f of this.on_[ev] ?? []) f(...a);
  }
  text(): string {
    return Buffer.concat(this.got).toString();
  }
}

const until = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(what);
    await new Promise((r) => setTimeout(r, 10));
  }
};

let dir = '';
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('SerialHub', () => {
  it('bounds each viewer, not the others; input from any; closes with the last viewer', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-hub-'));
    const sockPath = path.join(dir, 'serial.sock');
    let guest: net.Socket | undefined;
    let typed = '';
    let guestClosed = false;
    const srv = net.createServer((c) => {
      guest = c;
      c.on('data', (d) => (typed += d.toString()));
      c.on('close', () => (guestClosed = true));
    });
    await new Promise<void>((r) => srv.listen(sockPath, r));
    let emptied = 0;
    const hub = new SerialHub(sockPath, () => emptied++, 1000);
    const fast = new FakeWs();
    const slow = new FakeWs();
    hub.add(fast as never);
    hub.add(slow as never);
    await until(() => !!guest, 'the hub did not connect');

    guest!.write('boot\n');
    await until(() => fast.text() === 'boot\n' && slow.text() === 'boot\n', 'both viewers get the output');

    slow.bufferedAmount = 900; // 900 unsent + 200 new > 1000: dropped for this viewer only
    guest!.write('x'.repeat(200));
    await until(() => fast.text().endsWith('x'.repeat(200)), 'the fast viewer gets it');
    await new Promise((r) => setTimeout(r, 50));
    expect(slow.text()).toBe('boot\n');

    slow.bufferedAmount = 0; // caught up: told what it missed, then the output again
    guest!.write('after\n');
    await until(() => slow.text().endsWith('after\n'), 'the slow viewer gets output again');
    expect(slow.text()).toContain('[kvmctl: 200 bytes of console output dropped');
    expect(fast.text()).not.toContain('dropped');

    slow.emit('message', Buffer.from('ls\n'), true);
    fast.emit('message', Buffer.from('pwd\n'), false);
    await until(() => typed === 'ls\npwd\n', `input from both viewers reaches the guest, got ${JSON.stringify(typed)}`);

    fast.emit('close');
    expect(emptied).toBe(0);
    slow.emit('close');
    expect(emptied).toBe(1);
    await until(() => guestClosed, 'the connection closes with the last viewer');
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('closes every viewer when the VM closes the console', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-hub-'));
    const sockPath = path.join(dir, 'serial.sock');
    const srv = net.createServer((c) => c.end());
    await new Promise<void>((r) => srv.listen(sockPath, r));
    let emptied = 0;
    const hub = new SerialHub(sockPath, () => emptied++);
    const a = new FakeWs();
    const b = new FakeWs();
    hub.add(a as never);
    hub.add(b as never);
    await until(() => a.closedWith !== undefined && b.closedWith !== undefined, 'viewers closed');
    expect([a.closedWith, b.closedWith, emptied]).toEqual([1000, 1000, 1]);
    await new Promise<void>((r) => srv.close(() => r()));
  });
});
