/**
 * The serial console: attach a terminal to the VM's serial socket (raw mode, Ctrl-] detaches)
 * while QEMU keeps writing everything to serial.log, which `logs` prints (and follows).
 */
import fs from 'node:fs';
import net from 'node:net';
import { badInput, KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import { vmStatus } from './status.js';

const DETACH = 0x1d; // Ctrl-]

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
}

export async function attachConsole(paths: Paths, name: string, opts: { replay?: boolean } = {}): Promise<void> {
  const vm = readVm(paths, name);
  if (vm.serial !== 'socket') throw badInput('NO_CONSOLE', `VM "${name}" has no serial console (serial: none)`);
  const s = await vmStatus(paths, name);
  if (s.state !== 'running' && s.state !== 'paused') throw badInput('VM_NOT_RUNNING', `VM "${name}" is not running (${s.state})`, `kvmctl start ${name}`);
  const f = vmRuntimeFiles(paths, name);
  if (opts.replay !== false && fs.existsSync(f.serialLog)) process.stdout.write(tail(fs.readFileSync(f.serialLog, 'utf8'), 20));
  const sock = net.createConnection(f.serial);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', (e) => reject(new KvmError('CONSOLE_FAILED', `cannot attach to ${f.serial}: ${e.message}`, { hint: 'another client may hold the console; kvmctl logs -f reads it without attaching' })));
  });
  const tty = process.stdin.isTTY;
  if (tty) {
    process.stdin.setRawMode(true);
    process.stderr.write(`[attached to ${name}'s serial console; Ctrl-] detaches]\r\n`);
  }
  await new Promise<void>((resolve) => {
    const done = () => {
      if (tty) process.stdin.setRawMode(false);
      process.stdin.removeAllListeners('data');
      process.stdin.destroy(); // a paused pipe would keep the process alive
      sock.destroy();
      resolve();
    };
    process.stdin.on('data', (d: Buffer) => {
      const i = d.indexOf(DETACH);
      if (i >= 0) {
        if (i > 0) sock.write(d.subarray(0, i));
        if (tty) process.stderr.write('\r\n[detached]\r\n');
        done();
      } else sock.write(d);
    });
    process.stdin.on('end', () => setTimeout(done, 500)); // let the last answer arrive
    sock.on('data', (d) => process.stdout.write(d));
    sock.on('close', done);
  });
}

export async function printLogs(paths: Paths, name: string, opts: { follow?: boolean; lines?: number }): Promise<void> {
  readVm(paths, name);
  const file = vmRuntimeFiles(paths, name).serialLog;
  if (!fs.existsSync(file)) throw badInput('NO_LOG', `VM "${name}" has no serial log yet`, `kvmctl start ${name}`);
  let pos = 0;
  const text = fs.readFileSync(file, 'utf8');
  process.stdout.write(opts.lines !== undefined ? tail(text, opts.lines) : text);
  pos = Buffer.byteLength(text);
  if (!opts.follow) return;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const size = fs.statSync(file).size;
    if (size < pos) pos = 0; // a new boot truncated the log
    if (size > pos) {
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(size - pos);
      fs.readSync(fd, buf, 0, buf.length, pos);
      fs.closeSync(fd);
      pos = size;
      process.stdout.write(buf);
    }
  }
}
