/** Waiting for a fresh QEMU: its QMP socket answering, a marker on its serial console. */
import fs from 'node:fs';
import net from 'node:net';
import { KvmError } from '../errors.js';

function tryConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Resolve once the QMP socket accepts a connection; fail fast with QEMU's own words if it exits. */
export async function waitForQmp(socket: string, exited: Promise<unknown>, timeoutMs: number, logTail: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (gone) {
      const why = logTail();
      throw new KvmError('START_FAILED', `QEMU exited during start-up${why ? `:\n${why}` : ' without a message'}`, { hint: hintFor(why) });
    }
    if (fs.existsSync(socket) && (await tryConnect(socket))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new KvmError('START_TIMEOUT', `QEMU did not open its QMP socket within ${timeoutMs} ms`, { hint: logTail() || undefined });
}

function hintFor(log: string): string | undefined {
  if (/Failed to get "write" lock|Is another process using the image/.test(log)) return 'another QEMU has this disk open: stop that VM first (two VMs must not write one image)';
  if (/Could not access KVM kernel module|requires KVM/.test(log)) return 'KVM is not usable here: allow tcg in machine.accel';
  if (/could not configure \/dev\/net\/tun|Device or resource busy/.test(log)) return 'the tap is in use by another QEMU or cannot be opened';
  return undefined;
}

/** Poll the serial log for a marker. */
export async function waitForSerial(log: string, marker: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  let pos = 0;
  let carry = '';
  while (Date.now() < end) {
    try {
      const fd = fs.openSync(log, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        if (size > pos) {
          const buf = Buffer.alloc(size - pos);
          fs.readSync(fd, buf, 0, buf.length, pos);
          pos = size;
          const text = carry + buf.toString('utf8');
          if (text.includes(marker)) return;
          carry = text.slice(-marker.length);
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      /* log not there yet */
    }
    if (!alive()) throw new KvmError('GUEST_NOT_READY', `QEMU ended before the guest printed "${marker}"`, { hint: 'kvmctl logs NAME shows the serial console' });
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new KvmError('GUEST_NOT_READY', `the guest did not print "${marker}" within ${Math.round(timeoutMs / 1000)} s`, { hint: 'kvmctl logs NAME shows the serial console' });
}
