/**
 * `kvmctl import libvirt --virsh [URI]`: what a libvirt host has defined, read through virsh —
 * every domain (`dumpxml --inactive`: the persistent definition, not the live state), every
 * network (`net-dumpxml --inactive`) and every storage pool's target directory (`pool-dumpxml`),
 * so disks given as pool volumes resolve without --pool. Read-only: only list and dump commands run.
 */
import { XMLParser } from 'fast-xml-parser';
import { run } from '../host/exec.js';
import { KvmError } from '../errors.js';

export type VirshDump = { uri: string; texts: { source: string; text: string }[]; pools: Record<string, string> };

const names = (out: string) => out.split('\n').map((l) => l.trim()).filter(Boolean);

export async function dumpVirsh(uri: string | undefined, virsh = 'virsh'): Promise<VirshDump> {
  const conn = uri ? ['-c', uri] : [];
  const v = async (...args: string[]) =>
    (await run([virsh, ...conn, '--quiet', ...args], { timeoutMs: 30_000, errorCode: 'VIRSH_FAILED', hint: uri ? `is libvirt reachable at ${uri}? (virsh -c ${uri} list --all)` : 'is libvirtd running? (virsh list --all)' })).stdout;
  // The persistent definition (--inactive); drivers that do not take the flag give the one they have.
  const dump = async (cmd: string, n: string) => {
    try {
      return await v(cmd, '--inactive', n);
    } catch (e) {
      if (!/unsupported flags/.test((e as Error).message)) throw e;
      return v(cmd, n);
    }
  };
  const label = uri ?? 'virsh';
  const texts: { source: string; text: string }[] = [];
  for (const n of names(await v('net-list', '--all', '--name'))) texts.push({ source: `${label} net-dumpxml ${n}`, text: await dump('net-dumpxml', n) });
  for (const n of names(await v('list', '--all', '--name'))) texts.push({ source: `${label} dumpxml ${n}`, text: await dump('dumpxml', n) });
  const pools: Record<string, string> = {};
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' });
  for (const n of names(await v('pool-list', '--all', '--name'))) {
    const x = parser.parse(await dump('pool-dumpxml', n)) as { pool?: { target?: { path?: unknown } } };
    const p = x.pool?.target?.path;
    if (typeof p === 'string' && p.startsWith('/')) pools[n] = p;
  }
  if (!texts.length) throw new KvmError('NOTHING_TO_IMPORT', `${label}: no domains or networks are defined`, { exit: 2 });
  return { uri: label, texts, pools };
}
