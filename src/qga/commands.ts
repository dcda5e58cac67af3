/**
 * Typed guest-agent commands (qemu-ga's QAPI schema, qga/qapi-schema.json) on a QgaClient.
 * Only what kvmctl uses; `agent.execute()` reaches the rest.
 */
import { badInput, KvmError } from '../errors.js';
import type { QgaClient } from './client.js';

export type GuestInfo = { version: string; supported_commands: { name: string; enabled: boolean }[] };
export type GuestOsInfo = { id?: string; name?: string; 'pretty-name'?: string; version?: string; 'version-id'?: string; 'kernel-release'?: string; machine?: string };
export type GuestIpAddress = { 'ip-address': string; 'ip-address-type': 'ipv4' | 'ipv6'; prefix: number };
export type GuestInterface = { name: string; 'hardware-address'?: string; 'ip-addresses'?: GuestIpAddress[] };
export type FsfreezeStatus = 'thawed' | 'frozen';
export type ExecResult = { exitCode?: number; signal?: number; stdout: string; stderr: string; truncated: boolean };

export const ping = (a: QgaClient) => a.execute<Record<string, never>>('guest-ping').then(() => true);
export const info = (a: QgaClient) => a.execute<GuestInfo>('guest-info');
export const osInfo = (a: QgaClient) => a.execute<GuestOsInfo>('guest-get-osinfo');
export const hostName = (a: QgaClient) => a.execute<{ 'host-name': string }>('guest-get-host-name').then((r) => r['host-name']);
export const interfaces = (a: QgaClient) => a.execute<GuestInterface[]>('guest-network-get-interfaces');
/** Freezes every freezable filesystem; returns how many. */
export const fsfreeze = (a: QgaClient, timeoutMs?: number) => a.execute<number>('guest-fsfreeze-freeze', undefined, { timeoutMs });
export const fsthaw = (a: QgaClient) => a.execute<number>('guest-fsfreeze-thaw');
export const fsstatus = (a: QgaClient) => a.execute<FsfreezeStatus>('guest-fsfreeze-status');
/** The guest's clock, ns since the epoch. */
export const getTime = (a: QgaClient) => a.execute<number>('guest-get-time');
/** Set the guest clock to `ns`, or (without) from its RTC, which QEMU keeps at the host's time. */
export const setTime = (a: QgaClient, ns?: number) => a.execute('guest-set-time', ns === undefined ? undefined : { time: ns }).then(() => undefined);
export const addSshKeys = (a: QgaClient, username: string, keys: string[], reset = false) =>
  a.execute('guest-ssh-add-authorized-keys', { username, keys, reset }).then(() => undefined);
/**
 * The agent answers guest-shutdown only when it fails (the shutdown command exited non-zero, e.g.
 * in a guest still booting); on success the guest goes down without a word. So: wait briefly for
 * an error, and take silence (or the channel closing) as success.
 */
export async function shutdown(a: QgaClient, mode: 'powerdown' | 'reboot' | 'halt' = 'powerdown'): Promise<void> {
  try {
    await a.execute('guest-shutdown', { mode }, { timeoutMs: 2_000 });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'QGA_TIMEOUT' && code !== 'QGA_DISCONNECTED') throw e;
  }
}

/** Addresses of the guest's interfaces other than loopback. */
export function guestAddresses(ifs: GuestInterface[]): { name: string; mac?: string; addresses: string[] }[] {
  return ifs
    .filter((i) => i.name !== 'lo')
    .map((i) => ({ name: i.name, mac: i['hardware-address'], addresses: (i['ip-addresses'] ?? []).filter((x) => !/^fe80:/i.test(x['ip-address'])).map((x) => `${x['ip-address']}/${x.prefix}`) }));
}

/**
 * Run a program in the guest (no shell unless you run one), wait for it, return its output.
 * The agent keeps the output of a finished process until asked once; it is asked every 100 ms.
 */
export async function exec(a: QgaClient, argv: string[], opts: { input?: string; env?: string[]; timeoutMs?: number } = {}): Promise<ExecResult> {
  const [path, ...arg] = argv;
  if (!path) throw badInput('BAD_INPUT', 'guest exec needs a program to run', 'kvmctl guest exec NAME -- PROGRAM [ARGS...]');
  const args: Record<string, unknown> = { path, arg, 'capture-output': true };
  if (opts.env) args.env = opts.env;
  if (opts.input !== undefined) args['input-data'] = Buffer.from(opts.input).toString('base64');
  const { pid } = await a.execute<{ pid: number }>('guest-exec', args);
  const end = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const s = await a.execute<{ exited: boolean; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string; 'out-truncated'?: boolean; 'err-truncated'?: boolean }>('guest-exec-status', { pid });
    if (s.exited) {
      const dec = (x?: string) => (x ? Buffer.from(x, 'base64').toString('utf8') : '');
      return { exitCode: s.exitcode, signal: s.signal, stdout: dec(s['out-data']), stderr: dec(s['err-data']), truncated: !!(s['out-truncated'] || s['err-truncated']) };
    }
    if (Date.now() > end) throw new KvmError('QGA_TIMEOUT', `guest program ${path} (pid ${pid} in the guest) still runs after ${opts.timeoutMs ?? 60_000} ms`, { hint: 'it keeps running in the guest; give a longer --timeout' });
    await new Promise((r) => setTimeout(r, 100));
  }
}
