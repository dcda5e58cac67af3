/**
 * The human monitor (HMP) over the seed-style `-monitor unix:PATH,server,nowait` socket.
 *
 * QEMU greets with a banner and a `(qemu) ` prompt, echoes what it is sent through its readline
 * (with ANSI cursor codes: "i\e[K\e[Din\e[K..."), prints the output, then the next prompt. A
 * command's output is what comes after the echoed line and before the next prompt. The monitor
 * serves one client at a time: while someone else is attached, a new client gets no banner.
 */
import net from 'node:net';
import { KvmError, badInput } from '../errors.js';

export type HmpOptions = {
  /** The whole exchange (connect, banner, command, output) must finish within this (default 30000 ms). */
  timeoutMs?: number;
};

const PROMPT = '(qemu) ';

/** Remove ANSI/VT100 escape sequences (CSI `ESC [ ... final`, and two-byte `ESC x`). */
export function stripEscapes(s: string): string {
  return s.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '').replace(/\x1b[0-~]/g, '');
}

/**
 * The output of one command from the raw bytes QEMU sent after the command was written: drop the
 * escape codes, the echoed command line and the trailing prompt; line ends become `\n`.
 */
export function parseHmpResponse(raw: string): string {
  let text = stripEscapes(raw);
  const nl = text.indexOf('\n');
  text = nl < 0 ? '' : text.slice(nl + 1);
  if (text.endsWith(PROMPT)) text = text.slice(0, -PROMPT.length);
  return text.replace(/\r\n/g, '\n').replace(/\r/g, '').replace(/\n+$/, '');
}

function connectError(socketPath: string, e: NodeJS.ErrnoException): KvmError {
  switch (e.code) {
    case 'ENOENT':
      return new KvmError('HMP_CONNECT', `monitor socket ${socketPath} does not exist`, {
        hint: 'is the VM running (kvmctl status NAME), and was it started with a -monitor unix: socket?',
        cause: e,
      });
    case 'ECONNREFUSED':
      return new KvmError('HMP_CONNECT', `nothing is listening on monitor socket ${socketPath}`, {
        hint: 'QEMU has exited and left a stale socket; check the VM log',
        cause: e,
      });
    case 'EACCES':
    case 'EPERM':
      return new KvmError('HMP_CONNECT', `permission denied opening monitor socket ${socketPath}`, {
        hint: 'run kvmctl as the user that started the VM (or root)',
        cause: e,
      });
    default:
      return new KvmError('HMP_CONNECT', `monitor socket ${socketPath}: ${e.message}`, { cause: e });
  }
}

function checkCommand(command: string): void {
  if (!command.trim()) throw badInput('HMP_BAD_COMMAND', 'empty monitor command', 'give a command such as "info status" (see "help")');
  if (/[\r\n]/.test(command)) {
    throw badInput('HMP_BAD_COMMAND', `monitor command contains a line break: ${JSON.stringify(command)}`, 'send one command at a time');
  }
}

/**
 * Run one HMP command over a monitor socket and return its output text. `quit` returns '' once
 * QEMU has hung up. An unknown command is an HMP_ERROR.
 */
export function hmpCommand(socketPath: string, command: string, opts: HmpOptions = {}): Promise<string> {
  checkCommand(command);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    socket.setEncoding('utf8');
    let phase: 'banner' | 'reply' | 'done' = 'banner';
    let buf = '';
    const finish = (err: Error | null, out?: string) => {
      if (phase === 'done') return;
      phase = 'done';
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const m = /^unknown command: '([^']*)'/.exec(out ?? '');
      if (m) {
        return reject(new KvmError('HMP_ERROR', `monitor: unknown command '${m[1]}'`, { hint: 'list the commands with "help" (kvmctl monitor NAME help)' }));
      }
      resolve(out ?? '');
    };
    const timer = setTimeout(() => {
      finish(
        phase === 'banner'
          ? new KvmError('HMP_TIMEOUT', `no prompt from monitor socket ${socketPath} within ${timeoutMs} ms`, {
              hint: 'the monitor serves one client at a time: is someone attached (kvmctl monitor, socat)? Or QEMU is hung.',
            })
          : new KvmError('HMP_TIMEOUT', `monitor command "${command}": no prompt back within ${timeoutMs} ms`, {
              hint: 'QEMU may be hung or the command is slow; check the VM log',
            }),
      );
    }, timeoutMs);
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (phase === 'banner') finish(connectError(socketPath, e));
      // In the reply phase a reset (e.g. after `quit`) is handled by 'close'.
    });
    socket.on('close', () => {
      if (phase === 'banner') {
        finish(new KvmError('HMP_CONNECT', `monitor socket ${socketPath} closed before its prompt`, { hint: 'QEMU may be exiting; check the VM log' }));
      } else if (phase === 'reply') {
        // QEMU went away while answering: `quit` does that on purpose; anything else is a failure.
        if (/^\s*(quit|q)\s*$/.test(command)) finish(null, parseHmpResponse(buf));
        else finish(new KvmError('HMP_DISCONNECTED', `monitor command "${command}": QEMU closed the monitor before the prompt came back`, {
          hint: 'QEMU has exited or is exiting; check `kvmctl status` and the VM log',
        }));
      }
    });
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (phase === 'banner') {
        if (buf.trimStart().startsWith('{') && buf.includes('\n')) {
          finish(new KvmError('HMP_CONNECT', `${socketPath} is a QMP socket, not a monitor socket`, { hint: 'use the QMP commands (kvmctl talks QMP to the -qmp socket)' }));
          return;
        }
        if (!buf.endsWith(PROMPT)) return;
        phase = 'reply';
        buf = '';
        socket.write(command + '\n');
        return;
      }
      if (phase === 'reply' && buf.indexOf('\n') >= 0 && buf.endsWith(PROMPT)) finish(null, parseHmpResponse(buf));
    });
  });
}

export type InteractiveInput = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

export type InteractiveOptions = {
  /** Byte that detaches from the monitor without sending it (default Ctrl-] = 0x1d, as telnet). */
  detachKey?: number;
};

/**
 * Attach a terminal to the monitor: bytes from `input` go to QEMU (its readline does the echo,
 * history and tab completion, so a TTY is put in raw mode), QEMU's output goes to `output`.
 * Resolves when the user presses the detach key, when `input` ends, or when QEMU hangs up.
 */
export function openInteractive(
  socketPath: string,
  input: InteractiveInput,
  output: NodeJS.WritableStream,
  opts: InteractiveOptions = {},
): Promise<{ reason: 'detached' | 'eof' | 'closed' }> {
  const detachKey = opts.detachKey ?? 0x1d;
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let connected = false;
    let done = false;
    const raw = input.isTTY === true && typeof input.setRawMode === 'function';
    const onInput = (chunk: Buffer | string) => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const k = b.indexOf(detachKey);
      if (k >= 0) {
        if (k > 0) socket.write(b.subarray(0, k));
        finish({ reason: 'detached' });
        return;
      }
      socket.write(b);
    };
    const onEnd = () => {
      // Piped input: give QEMU a moment to answer the last command, then leave.
      setTimeout(() => finish({ reason: 'eof' }), 300);
    };
    const finish = (r: { reason: 'detached' | 'eof' | 'closed' } | Error) => {
      if (done) return;
      done = true;
      input.off('data', onInput);
      input.off('end', onEnd);
      if (raw) input.setRawMode!(false);
      input.pause();
      socket.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    socket.on('connect', () => {
      connected = true;
      if (raw) input.setRawMode!(true);
      input.on('data', onInput);
      input.on('end', onEnd);
      input.resume();
    });
    socket.on('data', (d: Buffer) => output.write(d));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) finish(connectError(socketPath, e));
    });
    socket.on('close', () => finish({ reason: 'closed' }));
  });
}
