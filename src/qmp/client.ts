/**
 * A QMP client over a unix socket: reads the greeting, negotiates capabilities, sends commands
 * with unique ids and correlates replies by id (so concurrent commands work), routes
 * asynchronous events, and turns every failure into a KvmError:
 *   QMP_CONNECT       the socket is missing, refuses, or does not speak QMP
 *   QMP_ERROR         QEMU answered with an error ("<command>: <class>: <desc>")
 *   QMP_TIMEOUT       no reply (or no awaited event) in time (see timeouts.ts)
 *   QMP_DISCONNECTED  QEMU went away (or close() was called) before replying
 *
 * QEMU serves one QMP client per socket at a time: a second client connects but gets no greeting
 * until the first leaves, which shows here as a QMP_CONNECT timeout with a hint.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { KvmError } from '../errors.js';
import { timeoutFor } from './timeouts.js';

export type QmpVersion = {
  qemu: { major: number; minor: number; micro: number };
  package: string;
};

export type QmpEvent = {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
};

export type QmpConnectOptions = {
  /** Connect + greeting + capabilities must finish within this (default 5000 ms). */
  timeoutMs?: number;
};

export type QmpExecuteOptions = {
  /** Overrides the per-command default from timeouts.ts. */
  timeoutMs?: number;
};

export type WaitForEventOptions = {
  /** Default 30000 ms. */
  timeoutMs?: number;
  /** Only events for which this returns true resolve the wait. */
  predicate?: (ev: QmpEvent) => boolean;
};

export type QmpCloseInfo = {
  /** The socket error that ended the connection (e.g. ECONNRESET when QEMU quits), if any. */
  error?: Error;
  /** True when close() was called by this side. */
  byClient: boolean;
};

type Pending = {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
};

/** Largest unix socket path Linux accepts (sun_path is 108 bytes including the NUL). */
const MAX_SOCKET_PATH = 107;

export interface QmpClient {
  on(name: 'event', fn: (ev: QmpEvent) => void): this;
  on(name: 'close', fn: (info: QmpCloseInfo) => void): this;
  /** A line from QEMU that is not JSON, or a reply nobody waits for any more. */
  on(name: 'protocol-error', fn: (text: string, why: string) => void): this;
  once(name: 'event', fn: (ev: QmpEvent) => void): this;
  once(name: 'close', fn: (info: QmpCloseInfo) => void): this;
  once(name: 'protocol-error', fn: (text: string, why: string) => void): this;
}

export class QmpClient extends EventEmitter {
  readonly socketPath: string;
  /** QEMU's version from the greeting. */
  version!: QmpVersion;
  /** Capabilities QEMU offered in the greeting (e.g. ["oob"]); none are enabled. */
  capabilities: string[] = [];

  private readonly socket: net.Socket;
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedInfo: QmpCloseInfo | undefined;
  private socketError: Error | undefined;
  private closingByClient = false;
  private greeting: ((msg: Record<string, unknown> | Error) => void) | undefined;
  private readonly closedPromise: Promise<QmpCloseInfo>;

  private constructor(socketPath: string, socket: net.Socket) {
    super();
    this.socketPath = socketPath;
    this.socket = socket;
    // Callers may wait for many events at once (each waitForEvent adds a listener).
    this.setMaxListeners(0);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => {
      this.socketError = e;
    });
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => resolve(this.onClose()));
    });
  }

  /**
   * Connect to QEMU's QMP socket, read the greeting and leave negotiation mode. QEMU serves one
   * client at a time and its listen backlog is tiny: a connect while one client is served and one
   * waits fails with EAGAIN, which is "busy", not "gone" — tried again (20 ms apart) within the
   * timeout, so concurrent short requests (the web UI loads several at once) queue instead of failing.
   */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    return (await QmpClient.connectThen(socketPath, undefined, opts)).client;
  }

  /**
   * Connect and run `first` in the same write as `qmp_capabilities` (QEMU dispatches a monitor's
   * commands in order): one round trip less, e.g. `query-status` right after a start (issue #19).
   * EAGAIN (busy) is tried again within the timeout, as for connect.
   */
  static async connectThen<T = unknown>(socketPath: string, first: string | undefined, opts: QmpConnectOptions = {}): Promise<{ client: QmpClient; result: T }> {
    const end = Date.now() + (opts.timeoutMs ?? 5_000);
    for (;;) {
      try {
        return await QmpClient.connectThenOnce<T>(socketPath, first, { ...opts, timeoutMs: Math.max(1, end - Date.now()) });
      } catch (e) {
        const busy = e instanceof KvmError && (e.cause as NodeJS.ErrnoException | undefined)?.code === 'EAGAIN';
        if (!busy || Date.now() + 20 >= end) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  private static async connectThenOnce<T = unknown>(socketPath: string, first: string | undefined, opts: QmpConnectOptions): Promise<{ client: QmpClient; result: T }> {
    const timeoutMs = opts.timeoutMs ?? 5_000;
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new KvmError('QMP_CONNECT', `QMP socket path is too long (${Buffer.byteLength(socketPath)} bytes > ${MAX_SOCKET_PATH}): ${socketPath}`, {
        hint: 'unix socket paths are limited to 107 bytes; use a shorter KVMCTL_HOME',
      });
    }
    const socket = net.connect(socketPath);
    const client = new QmpClient(socketPath, socket);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new KvmError('QMP_CONNECT', `no QMP greeting from ${socketPath} within ${timeoutMs} ms`, {
            hint: 'QEMU serves one QMP client at a time: is another client connected (kvmctl serve, socat)? Or QEMU is hung.',
          }),
        );
      }, timeoutMs);
    });
    try {
      const result = (await Promise.race([client.handshake(first), deadline])) as T;
      return { client, result };
    } catch (e) {
      socket.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(first?: string): Promise<unknown> {
    const greeting = await new Promise<Record<string, unknown> | Error>((resolve) => {
      this.greeting = resolve;
      this.socket.once('close', () => resolve(this.connectError()));
    });
    this.greeting = undefined;
    if (greeting instanceof Error) throw greeting;
    const qmp = greeting.QMP as { version?: QmpVersion; capabilities?: string[] } | undefined;
    if (!qmp || typeof qmp !== 'object' || !qmp.version) {
      throw new KvmError('QMP_CONNECT', `${this.socketPath} is not a QMP socket (first message: ${JSON.stringify(greeting).slice(0, 120)})`, {
        hint: 'point kvmctl at the socket given to -qmp (or -mon mode=control)',
      });
    }
    this.version = qmp.version;
    this.capabilities = Array.isArray(qmp.capabilities) ? qmp.capabilities : [];
    const negotiated = this.execute('qmp_capabilities');
    const after = first === undefined ? undefined : this.execute(first);
    after?.catch(() => undefined); // reported below, after the negotiation's own error
    try {
      await negotiated;
    } catch (e) {
      if (e instanceof KvmError && e.code !== 'QMP_CONNECT') {
        throw new KvmError('QMP_CONNECT', `${this.socketPath}: capabilities negotiation failed: ${e.message}`, { hint: e.hint, cause: e });
      }
      throw e;
    }
    return after;
  }

  /** The error for a socket that closed or failed before the handshake finished. */
  private connectError(): KvmError {
    const e = this.socketError as NodeJS.ErrnoException | undefined;
    const p = this.socketPath;
    switch (e?.code) {
      case 'ENOENT':
        return new KvmError('QMP_CONNECT', `QMP socket ${p} does not exist`, {
          hint: 'is the VM running? (kvmctl status NAME); QEMU creates the socket when it starts',
          cause: e,
        });
      case 'ECONNREFUSED':
        return new KvmError('QMP_CONNECT', `nothing is listening on QMP socket ${p}`, {
          hint: 'QEMU has exited and left a stale socket; check the VM log and start it again',
          cause: e,
        });
      case 'EACCES':
      case 'EPERM':
        return new KvmError('QMP_CONNECT', `permission denied opening QMP socket ${p}`, {
          hint: 'run kvmctl as the user that started the VM (or root)',
          cause: e,
        });
      case 'ENOTSOCK':
        return new KvmError('QMP_CONNECT', `${p} is not a unix socket`, { hint: 'point kvmctl at the -qmp socket of the VM', cause: e });
      default:
        return new KvmError('QMP_CONNECT', `QMP socket ${p} closed before the greeting${e ? ` (${e.message})` : ''}`, {
          hint: 'QEMU may be exiting; check the VM log',
          cause: e,
        });
    }
  }

  /** True once the connection has ended (QEMU went away or close() was called). */
  get closed(): boolean {
    return this.closedInfo !== undefined;
  }

  /**
   * Run one QMP command and resolve with its `return` value. Replies are matched by id, so
   * several commands may be in flight at once.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.closedInfo || this.closingByClient || this.socket.destroyed) {
      return Promise.reject(this.disconnectedError(command));
    }
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? timeoutFor(command);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new KvmError('QMP_TIMEOUT', `${command}: no reply from QEMU within ${timeoutMs} ms`, {
            hint: 'QEMU may be hung or very busy; check `kvmctl status` and the VM log (a forced stop is `kvmctl kill`)',
            details: { command, timeoutMs },
          }),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Record<string, unknown> = { execute: command };
      if (args !== undefined) msg.arguments = args;
      msg.id = id;
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  /**
   * Resolve with the next event named `name` (that passes `predicate`). Start waiting BEFORE
   * sending the command that causes the event: events that arrived earlier are not replayed.
   */
  waitForEvent(name: string, opts: WaitForEventOptions = {}): Promise<QmpEvent> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (this.closedInfo) return Promise.reject(this.disconnectedError(`waiting for event ${name}`));
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      const onEvent = (ev: QmpEvent) => {
        if (ev.event !== name) return;
        let ok = true;
        try {
          ok = opts.predicate ? opts.predicate(ev) : true;
        } catch (e) {
          cleanup();
          reject(e);
          return;
        }
        if (!ok) return;
        cleanup();
        resolve(ev);
      };
      const onClose = () => {
        cleanup();
        reject(this.disconnectedError(`waiting for event ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new KvmError('QMP_TIMEOUT', `no ${name} event from QEMU within ${timeoutMs} ms`, { details: { event: name, timeoutMs } }));
      }, timeoutMs);
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /**
   * Resolve when the connection ends (QEMU exited or closed the socket). With `timeoutMs`, reject
   * with QMP_TIMEOUT if it is still open by then.
   */
  async waitForClose(opts: { timeoutMs?: number } = {}): Promise<QmpCloseInfo> {
    if (opts.timeoutMs === undefined) return this.closedPromise;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closedPromise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new KvmError('QMP_TIMEOUT', `QEMU did not close QMP socket ${this.socketPath} within ${opts.timeoutMs} ms`)),
            opts.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close the connection; commands still in flight reject with QMP_DISCONNECTED. */
  async close(): Promise<void> {
    if (this.closedInfo) return;
    this.closingByClient = true;
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 1_000);
    await this.closedPromise;
    clearTimeout(t);
  }

  private disconnectedError(command: string): KvmError {
    const info = this.closedInfo;
    const why = info?.byClient || this.closingByClient ? 'the client closed the connection' : `QEMU closed the QMP connection${info?.error ? ` (${(info.error as NodeJS.ErrnoException).code ?? info.error.message})` : ''}`;
    return new KvmError('QMP_DISCONNECTED', `${command}: ${why} before a reply`, {
      hint: info?.byClient || this.closingByClient ? undefined : 'QEMU has exited or is exiting; check `kvmctl status` and the VM log',
      details: { socket: this.socketPath },
    });
  }

  private onClose(): QmpCloseInfo {
    const info: QmpCloseInfo = { byClient: this.closingByClient, ...(this.socketError ? { error: this.socketError } : {}) };
    this.closedInfo = info;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(this.disconnectedError(p.command));
    }
    this.emit('close', info);
    return info;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const { messages, rest } = splitJsonStream(this.buffer);
    this.buffer = rest;
    for (const m of messages) {
      if ('garbage' in m) {
        this.protocolError(m.garbage, m.why);
        continue;
      }
      this.dispatch(m.value);
    }
  }

  private protocolError(text: string, why: string): void {
    // During the handshake, anything that is not JSON means this is not a QMP socket (HMP prints
    // a banner "QEMU 7.2.22 monitor - type 'help' ...").
    if (this.greeting) {
      const hmp = /monitor - type 'help'|\(qemu\)/.test(text);
      const done = this.greeting;
      this.greeting = undefined;
      done(
        new KvmError('QMP_CONNECT', `${this.socketPath} is not a QMP socket (it said: ${JSON.stringify(text.slice(0, 80))})`, {
          hint: hmp ? 'this is an HMP monitor socket (-monitor): use the monitor commands (hmpCommand) instead' : 'point kvmctl at the socket given to -qmp',
        }),
      );
      return;
    }
    if (this.listenerCount('protocol-error') > 0) this.emit('protocol-error', text, why);
  }

  private dispatch(msg: unknown): void {
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.protocolError(JSON.stringify(msg), 'not a JSON object');
      return;
    }
    const m = msg as Record<string, unknown>;
    if (this.greeting) {
      const done = this.greeting;
      this.greeting = undefined;
      done(m);
      return;
    }
    if (typeof m.event === 'string') {
      const ev: QmpEvent = {
        event: m.event,
        data: (m.data && typeof m.data === 'object' ? m.data : {}) as Record<string, unknown>,
        timestamp: (m.timestamp as QmpEvent['timestamp']) ?? { seconds: 0, microseconds: 0 },
      };
      this.emit('event', ev);
      return;
    }
    if ('return' in m || 'error' in m) {
      let id = typeof m.id === 'number' ? m.id : undefined;
      // QEMU answers a line it cannot parse with an error without id. We only ever send valid
      // JSON, but if it happens while exactly one command waits, that command is the culprit.
      if (id === undefined && !('id' in m) && 'error' in m && this.pending.size === 1) id = [...this.pending.keys()][0];
      const p = id !== undefined ? this.pending.get(id) : undefined;
      if (!p) {
        this.protocolError(JSON.stringify(m), 'reply to no pending command (late reply after a timeout?)');
        return;
      }
      this.pending.delete(id!);
      clearTimeout(p.timer);
      if ('error' in m) {
        const err = (m.error ?? {}) as { class?: string; desc?: string };
        p.reject(
          new KvmError('QMP_ERROR', `${p.command}: ${err.class ?? 'Error'}: ${err.desc ?? JSON.stringify(m.error)}`, {
            details: { command: p.command, class: err.class, desc: err.desc },
          }),
        );
      } else {
        p.resolve(m.return);
      }
      return;
    }
    this.protocolError(JSON.stringify(m), 'neither an event nor a reply');
  }
}

export type StreamItem = { value: unknown } | { garbage: string; why: string };

/**
 * Split a stream of JSON texts into complete values. QEMU sends one JSON object per line
 * (`\r\n`-terminated), but this does not rely on it: objects may be split across chunks, several
 * may share one chunk or one line, and pretty-printed (multi-line) objects work too. Text outside
 * an object is skipped up to the next newline and reported as garbage. Returns the unfinished tail.
 */
export function splitJsonStream(buf: string): { messages: StreamItem[]; rest: string } {
  const messages: StreamItem[] = [];
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const c = buf[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
      continue;
    }
    if (c !== '{' && c !== '[') {
      // Garbage up to the end of the line (or the next object start, whichever comes first).
      let j = i;
      while (j < n && buf[j] !== '\n' && buf[j] !== '{') j++;
      // Wait for the rest of the line before reporting it.
      if (j === n) return { messages, rest: buf.slice(i) };
      messages.push({ garbage: buf.slice(i, j).trim(), why: 'not JSON' });
      i = j;
      continue;
    }
    const end = scanValue(buf, i);
    if (end === INCOMPLETE) return { messages, rest: buf.slice(i) };
    if (end < 0) {
      // A broken object: report it up to the line end where it broke and go on after it.
      const nl = -end - 2;
      messages.push({ garbage: buf.slice(i, nl).trim(), why: 'unterminated JSON' });
      i = nl + 1;
      continue;
    }
    const text = buf.slice(i, end);
    try {
      messages.push({ value: JSON.parse(text) });
    } catch (e) {
      messages.push({ garbage: text, why: (e as Error).message });
    }
    i = end;
  }
  return { messages, rest: '' };
}

const INCOMPLETE = -1;

/**
 * Index just past the object/array starting at `start`; INCOMPLETE if it has not all arrived yet;
 * or `-(newlineIndex + 2)` when a line break shows it cannot be one message: a raw newline inside
 * a string, or a following line that is neither indented nor the closing bracket of a pretty-
 * printed top-level value (QEMU never sends that, so the earlier text was cut off or garbage).
 */
function scanValue(buf: string, start: number): number {
  const closers: string[] = [];
  let inString = false;
  for (let i = start; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === '\n') return -(i + 2);
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '\n') {
      if (i + 1 >= buf.length) return INCOMPLETE;
      const next = buf[i + 1];
      if (next === ' ' || next === '\t' || next === '\r' || next === '\n') continue;
      if (closers.length === 1 && next === closers[0]) continue;
      return -(i + 2);
    }
    if (c === '"') inString = true;
    else if (c === '{') closers.push('}');
    else if (c === '[') closers.push(']');
    else if (c === '}' || c === ']') {
      // A mismatched bracket ends the value here; JSON.parse then reports it as garbage.
      if (closers.pop() !== c || closers.length === 0) return i + 1;
    }
  }
  return INCOMPLETE;
}
