/**
 * Run a shell command in a guest whose serial console is a shell (the test guest), and return
 * what it printed and its exit status. The command is framed by unique markers so the answer is
 * found in the stream whatever else the console prints. For the demo, tests and benchmarks.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export async function serialExec(paths: Paths, name: string, cmd: string, timeoutMs = 30_000): Promise<{ output: string; status: number }> {
  const tag = randomBytes(4).toString('hex');
  const begin = `__B${tag}__`;
  const end = `__E${tag}__`;
  const sock = net.createConnection(vmRuntimeFiles(paths, name).serial);
  try {
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', (e) => rej(new KvmError('CONSOLE_FAILED', `VM "${name}": cannot attach to the serial console: ${e.message}`)));
    });
    let buf = '';
    sock.on('data', (d) => (buf += d.toString('utf8')));
    // The markers are built by the shell (split strings), so the echo of the typed line never matches.
    sock.write(`echo "__B""${tag}__"; ${cmd}; echo "__E""${tag}__ $?"\n`);
    const t0 = Date.now();
    const re = new RegExp(`${begin}\\r?\\n([\\s\\S]*?)${end} (\\d+)`);
    for (;;) {
      const m = re.exec(buf.replace(ANSI, ''));
      if (m) return { output: m[1]!.replace(/\r/g, ''), status: Number(m[2]) };
      if (Date.now() - t0 > timeoutMs) throw new KvmError('GUEST_TIMEOUT', `VM "${name}": no answer to "${cmd}" within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, 30));
    }
  } finally {
    sock.destroy();
  }
}
