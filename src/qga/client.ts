/**
 * A client for the QEMU guest agent (qemu-ga) over the VM's virtio-serial chardev socket
 * (`<run>/vms/NAME/qga.sock`, QEMU is the server).
 *
 * The agent has no greeting and no command ids: one command at a time, answers in order. Output
 * from an earlier client (a reply that came after its timeout) may still sit in the channel, so
 * every session starts with `guest-sync-delimited`: the agent answers with a 0xFF byte and then
 * `{"return": ID}`; everything before the 0xFF, and every reply without our random ID, is
 * dropped. After a command times out the client syncs again before the next one, so a late reply
 * is never taken for the answer to another command. Errors are KvmErrors:
 *   QGA_UNAVAILABLE   no agent answers (not installed, not started yet, or the guest is down)
 *   QGA_TIMEOUT       the agent did not answer a command in time
 *   QGA_ERROR         the agent answered with an error ("<command>: <class>: <desc>")
 *   QGA_DISCONNECTED  the channel closed (QEMU quit, or the guest powered off)
 */
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { KvmError } from '../errors.js';
import { splitJsonStream } from '../qmp/client.js';

export type QgaOptions = { timeoutMs?: number };

/** Per-command defaults (ms); fsfreeze may wait for the guest to flush a lot of data. */
const TIMEOUTS: Record<string, number> = {
  'guest-sync-delimited': 3_000,
  'guest-fsfreeze-freeze': 60_000,
  'guest-fsfreeze-thaw': 60_000,
  'guest-exec': 10_000,
};
const DEFAULT_TIMEOUT = 10_000;

type Waiter = { command: string; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; syncId?: number; rearm: () => void };

export class QgaClient {
  private sock: net.Socket;
  private decoder = new StringDecoder('utf8');
  private text = '';
  private awaitFF = false;
  private waiter: Waiter | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private needSync = true;
  private closed = false;
  private closeError: Error | undefined;

  private constructor(sock: net.Socket, readonly socketPath: string) {
    this.sock = sock;
    sock.on('data', (b: Buffer) => this.onData(b));
    sock.on('error', (e) => (this.closeError = e));
    sock.on('close', () => {
      this.closed = true;
      const w = this.waiter;
      this.waiter = undefined;
      if (w) {
        clearTimeout(w.timer);
        w.reject(new KvmError('QGA_DISCONNECTED', `guest agent channel closed during ${w.command}${this.closeError ? ` (${this.closeError.message})` : ''}`));
      }
    });
  }

  /** Connect to the agent's chardev socket and sync with the agent (QGA_UNAVAILABLE if none answers). */
  static async connect(socketPath: string, opts: QgaOptions = {}): Promise<QgaClient> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', (e: NodeJS.ErrnoException) =>
        reject(new KvmError('QGA_UNAVAILABLE', `cannot connect to the guest agent channel ${socketPath}: ${e.code ?? e.message}`, {
          hint: 'the VM must be running with agent: true (profiles server and desktop turn it on); a VM started before that needs a restart',
        })),
      );
    });
    const c = new QgaClient(sock, socketPath);
    try {
      await c.sync(opts.timeoutMs ?? TIMEOUTS['guest-sync-delimited']);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  /** Run one agent command; commands from concurrent callers are queued. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QgaOptions & { noReply?: boolean } = {}): Promise<T> {
    const p = this.chain.then(async () => {
      if (this.needSync) await this.sync(TIMEOUTS['guest-sync-delimited']);
      return this.send<T>(command, args, opts.timeoutMs ?? TIMEOUTS[command] ?? DEFAULT_TIMEOUT, opts.noReply);
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** guest-sync-delimited with a fresh random id: drops whatever an earlier session left behind. */
  private async sync(timeoutMs: number): Promise<void> {
    const id = Math.floor(Math.random() * 0x7fffffff);
    this.awaitFF = true;
    this.text = '';
    this.decoder = new StringDecoder('utf8');
    try {
      // A 0xFF first makes a qemu-ga that was in the middle of reading a broken command reset its parser.
      this.sock.write(Buffer.from([0xff]));
      await this.send('guest-sync-delimited', { id }, timeoutMs, false, id);
      this.needSync = false;
    } catch (e) {
      if (e instanceof KvmError && e.code === 'QGA_TIMEOUT') {
        throw new KvmError('QGA_UNAVAILABLE', `no guest agent answers on ${this.socketPath}`, {
          hint: 'is qemu-guest-agent installed and running in the guest? (it starts late in boot; kvmctl start --wait-for-agent waits for it)',
        });
      }
      throw e;
    }
  }

  private send<T>(command: string, args: Record<string, unknown> | undefined, timeoutMs: number, noReply?: boolean, syncId?: number): Promise<T> {
    if (this.closed) return Promise.reject(new KvmError('QGA_DISCONNECTED', `guest agent channel is closed (${command})`));
    const line = `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`;
    if (noReply) {
      // guest-shutdown never answers; success is the write reaching QEMU.
      return new Promise<T>((resolve, reject) => this.sock.write(line, (e) => (e ? reject(new KvmError('QGA_DISCONNECTED', `${command}: ${e.message}`)) : resolve(undefined as T))));
    }
    return new Promise<T>((resolve, reject) => {
      // The timeout counts from the last byte of the answer: a big answer (guest-exec-status with
      // megabytes of output, slow under TCG) is not cut off while it is still arriving.
      const fire = () => {
        if (this.waiter === w) this.waiter = undefined;
        this.needSync = true; // its reply may still come: never take it for the next command's
        reject(new KvmError('QGA_TIMEOUT', `guest agent did not answer ${command} within ${timeoutMs} ms`, { hint: 'the guest may be busy or hung; the agent may be stopped' }));
      };
      const w: Waiter = {
        command,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(fire, timeoutMs),
        syncId,
        rearm: () => {
          clearTimeout(w.timer);
          w.timer = setTimeout(fire, timeoutMs);
        },
      };
      this.waiter = w;
      this.sock.write(line);
    });
  }

  private onData(b: Buffer): void {
    if (this.awaitFF) {
      const i = b.indexOf(0xff);
      if (i < 0) return; // stale output before the sync marker
      this.awaitFF = false;
      b = b.subarray(i + 1);
    }
    if (b.length) this.waiter?.rearm();
    const chunk = this.decoder.write(b);
    this.text += chunk;
    // A reply ends with "}" (and a newline); a chunk with neither is the middle of one (megabytes of
    // base64 output): scanning the whole text again for each such chunk would be quadratic.
    if (!chunk.includes('}') && !chunk.includes('\n')) return;
    const { messages, rest } = splitJsonStream(this.text);
    this.text = rest;
    for (const m of messages) if ('value' in m) this.onMessage(m.value as Record<string, unknown>);
  }

  private onMessage(v: Record<string, unknown>): void {
    const w = this.waiter;
    if (!w || typeof v !== 'object' || v === null) return; // a late reply nobody waits for
    if (w.syncId !== undefined && v.return !== w.syncId) return; // not our sync: stale
    this.waiter = undefined;
    clearTimeout(w.timer);
    if ('error' in v) {
      const err = v.error as { class?: string; desc?: string };
      w.reject(new KvmError('QGA_ERROR', `${w.command}: ${err.class ?? 'Error'}: ${err.desc ?? 'unknown error'}`));
    } else w.resolve(v.return);
  }
}
