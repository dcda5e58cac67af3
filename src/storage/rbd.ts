/**
 * The `rbd` and `ceph` command-line tools for an rbd storage (issue #21): kvmctl speaks to Ceph only
 * through Debian's own tools (ceph-common) via src/host/exec.ts — never a protocol of its own.
 * Every call names the storage's user, keyring FILE (never the key), monitors and conf; without a
 * conf it passes `-c /dev/null` so the host's /etc/ceph/ceph.conf never changes what a definition
 * says. With a network namespace (--netns / KVMCTL_NETNS) the tool runs inside it, where QEMU runs.
 */
import fs from 'node:fs';
import { KvmError, badInput } from '../errors.js';
import { run, type RunOptions } from '../host/exec.js';
import type { RbdStorageSpec } from '../definition/storage.js';

export type RbdTarget = { storage: RbdStorageSpec; netns?: string };

/** Monitors as librados's mon_host wants them; port 3300 (msgr2) when none is given. */
export function monHost(s: Pick<RbdStorageSpec, 'monitors'>): string | undefined {
  return s.monitors?.map((m) => (/(:\d+)$/.test(m) && !/^\[[^\]]*\]$/.test(m) ? m : `${m}:3300`)).join(',');
}

/** The leading argv of every call of `tool` for this storage (pure; unit-tested). */
export function toolArgv(tool: 'rbd' | 'ceph', t: RbdTarget): string[] {
  const s = t.storage;
  const mon = monHost(s);
  return [
    ...(t.netns ? ['ip', 'netns', 'exec', t.netns] : []),
    tool, '-c', s.conf ?? '/dev/null', ...(mon ? ['-m', mon] : []), '--id', s.user, '--keyring', s.keyring,
    // An unreachable monitor fails after 15 s instead of librados's 300 s.
    ...(tool === 'ceph' ? ['--connect-timeout', '15'] : ['--client-mount-timeout', '15']),
  ];
}

/** `pool[/namespace]/image[@snap]` */
export function imageSpec(s: Pick<RbdStorageSpec, 'pool' | 'namespace'>, image: string, snap?: string): string {
  return `${s.pool}/${s.namespace ? `${s.namespace}/` : ''}${image}${snap ? `@${snap}` : ''}`;
}

/** Run `rbd ARGS…` (or `ceph`) against the storage; Ceph's own error text is kept, mapped to kvmctl codes where a user mistake is clear. */
export async function rbdRun(t: RbdTarget, args: string[], o: { tool?: 'rbd' | 'ceph'; timeoutMs?: number; onStdout?: RunOptions['onStdout']; what?: string } = {}): Promise<string> {
  const argv = [...toolArgv(o.tool ?? 'rbd', t), ...args];
  const r = await run(argv, { allowFailure: true, timeoutMs: o.timeoutMs ?? 120_000, onStdout: o.onStdout });
  if (r.exitCode === 0) return r.stdout;
  const err = r.stderr.trim().split('\n').filter((l) => !/^\d{4}-\d\d-\d\dT.*(auth|AuthRegistry|monclient)/i.test(l) || /error/i.test(l)).slice(-3).join('; ');
  const what = o.what ?? `${o.tool ?? 'rbd'} ${args.slice(0, 2).join(' ')}`;
  if (/\(2\) No such file or directory/.test(r.stderr) && !/keyring/.test(r.stderr)) throw badInput('VOLUME_NOT_FOUND', `${what}: not found in storage "${t.storage.name}" (${err})`, `kvmctl volume list ${t.storage.name} shows what is there`);
  if (/\(17\) File exists/.test(r.stderr)) throw badInput('VOLUME_EXISTS', `${what}: already exists in storage "${t.storage.name}"`, 'pick another name, or remove the old one first');
  if (/\(16\) Device or resource busy/.test(r.stderr)) throw new KvmError('VOLUME_BUSY', `${what}: busy (${err})`, { exit: 1, hint: 'a client (a running VM, maybe on another host) has it open: stop it first' });
  if (/timed out|\(110\)|error connecting to the cluster|\(13\) Permission denied|\(1\) Operation not permitted/.test(r.stderr) || r.exitCode < 0)
    throw new KvmError('STORAGE_UNREACHABLE', `storage "${t.storage.name}": ${what} failed: ${err || `exit ${r.exitCode}`}`, { exit: 1, hint: `kvmctl storage check ${t.storage.name}${t.netns ? ` --netns ${t.netns}` : ''} says what is wrong (monitors reachable, user, keyring)` });
  throw new KvmError('STORAGE_TOOL_FAILED', `storage "${t.storage.name}": ${what} failed: ${err || `exit ${r.exitCode}`}`, { exit: 1, details: { argv, stderr: r.stderr } });
}

/** The base64 cephx key of `client.USER` in a keyring file (ini: `[client.USER]` then `key = …`). */
export function keyFromKeyring(text: string, user: string): string | undefined {
  let inSection = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { inSection = sec[1]!.trim() === `client.${user}`; continue; }
    const kv = /^key\s*=\s*(\S+)$/.exec(line);
    if (inSection && kv && /^[A-Za-z0-9+/]+={0,2}$/.test(kv[1]!)) return kv[1];
  }
  return undefined;
}

export function readKey(s: RbdStorageSpec): string {
  let text: string;
  try {
    text = fs.readFileSync(s.keyring, 'utf8');
  } catch (e) {
    throw badInput('KEYRING_UNREADABLE', `storage "${s.name}": keyring ${s.keyring}: ${(e as Error).message}`, 'fix keyring: in the storage definition (kvmctl storage show NAME)');
  }
  const key = keyFromKeyring(text, s.user);
  if (!key) throw badInput('KEYRING_NO_KEY', `storage "${s.name}": ${s.keyring} has no key for client.${s.user}`, `export it with: ceph auth get client.${s.user} -o ${s.keyring}`);
  return key;
}
