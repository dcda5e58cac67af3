/**
 * net.ipv4.ip_forward while nat networks are up: turned on by the first `net up` of a namespace
 * (its previous value recorded in the run dir), restored by the last `net down` or `net gc`.
 * The sysctl is per network namespace: with a netns it is read and written inside that namespace
 * only (`ip netns exec NS sysctl`), never the host's.
 */
import fs from 'node:fs';
import { run } from '../../host/exec.js';
import type { Paths } from '../../host/paths.js';
import { sysctlRecordFile, writeJsonAtomic } from './files.js';

const KEY = 'net.ipv4.ip_forward';
const argv = (netns: string | undefined, a: string[]) => (netns ? ['ip', 'netns', 'exec', netns, 'sysctl', ...a] : ['sysctl', ...a]);

export async function readIpForward(netns?: string): Promise<string> {
  return (await run(argv(netns, ['-n', KEY]), { timeoutMs: 10_000, errorCode: 'SYSCTL_FAILED' })).stdout.trim();
}

async function writeIpForward(v: string, netns?: string): Promise<void> {
  await run(argv(netns, ['-q', '-w', `${KEY}=${v}`]), { timeoutMs: 10_000, errorCode: 'SYSCTL_FAILED' });
}

type Record = { netns?: string; key: string; previous: string; at: string };

/** Turn forwarding on, remembering the value before the first nat network came up. */
export async function enableIpForward(paths: Paths, netns?: string): Promise<string | undefined> {
  const f = sysctlRecordFile(paths, netns);
  const now = await readIpForward(netns);
  if (!fs.existsSync(f)) writeJsonAtomic(f, { netns, key: KEY, previous: now, at: new Date().toISOString() } satisfies Record);
  if (now !== '1') {
    await writeIpForward('1', netns);
    return `${KEY}: ${now} → 1`;
  }
  return undefined;
}

/** Put back the recorded value (when no nat network of this namespace is up any more). */
export async function restoreIpForward(paths: Paths, netns?: string): Promise<string | undefined> {
  const f = sysctlRecordFile(paths, netns);
  let rec: Record;
  try {
    rec = JSON.parse(fs.readFileSync(f, 'utf8')) as Record;
  } catch {
    return undefined;
  }
  const now = await readIpForward(netns);
  if (now !== rec.previous) await writeIpForward(rec.previous, netns);
  fs.rmSync(f, { force: true });
  return now !== rec.previous ? `${KEY}: ${now} → ${rec.previous} (restored)` : undefined;
}
