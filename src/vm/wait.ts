/** Waiting for a fresh QEMU: its QMP socket answering, a marker on its serial console. */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import { mark } from '../trace.js';
import { QmpClient } from '../qmp/client.js';

/**
 * Resolve once QMP answers `query-status` — QEMU opens its QMP socket before it opens the disks,
 * so a connect alone does not mean it started — and fail fast with QEMU's own words if it exits.
 * No polling interval on the path: the socket's directory is watched (inotify) for the socket to
 * appear, then ONE connection waits for the greeting, which QEMU sends once its main loop runs.
 * A connect refused in the instant between bind() and listen() is retried at the next event or
 * after 2 ms.
 */
export async function waitForQmp(socket: string, exited: Promise<unknown>, timeoutMs: number, logTail: () => string): Promise<{ status: string; running: boolean }> {
  let gone = false;
  const end = Date.now() + timeoutMs;
  const failed = () => {
    const why = logTail();
    return new KvmError('START_FAILED', `QEMU exited during start-up${why ? `:\n${why}` : ' without a message'}`, { hint: hintFor(why) });
  };
  let wake: () => void = () => undefined;
  const woken = () => new Promise<void>((r) => (wake = r));
  void exited.then(() => {
    gone = true;
    wake();
  });
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(socket), () => wake());
  } catch {
    watcher = undefined; // no inotify: the 2 ms timer below still wakes the loop
  }
  try {
    while (Date.now() < end) {
      if (gone) throw failed();
      if (fs.existsSync(socket)) {
        mark('QMP socket there: connecting');
        try {
          // query-status goes in the capabilities' write: one round trip
          const { client: c, result } = await QmpClient.connectThen<{ status: string; running: boolean }>(socket, 'query-status', { timeoutMs: Math.max(1000, end - Date.now()) });
          mark('QMP greeting + capabilities + query-status');
          c.close().catch(() => undefined); // its end overlaps the start's last writes
          return result;
        } catch (e) {
          mark(`QMP connect failed: ${(e as Error).message.slice(0, 60)}`);
          if (gone) throw failed();
          if (Date.now() >= end) throw e;
          if (!/ECONNREFUSED|ENOENT/.test(String((e as Error).message) + String((e as { cause?: unknown }).cause ?? ''))) {
            await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
          }
        }
      }
      const next = woken();
      const t = setTimeout(() => wake(), fs.existsSync(socket) ? 2 : 50);
      await next;
      clearTimeout(t);
    }
  } finally {
    watcher?.close();
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
