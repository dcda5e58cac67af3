/**
 * Where a nat network keeps its runtime files: `<run>/networks/NAME/` holds dnsmasq's config,
 * pid, lease and log files and `state.json`, which says what `net up` did (written BEFORE the
 * first change, so that `net gc` can undo a `net up` killed half-way). The previous value of
 * net.ipv4.ip_forward is kept in `<run>/nat-sysctl/<netns|_root>.json` while any nat network of
 * that namespace is up.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Paths } from '../../host/paths.js';

export type NatFiles = { dir: string; conf: string; pid: string; leases: string; log: string; state: string; rules: string };

export function natFiles(paths: Paths, name: string): NatFiles {
  const dir = path.join(paths.run, 'networks', name);
  return {
    dir,
    conf: path.join(dir, 'dnsmasq.conf'),
    pid: path.join(dir, 'dnsmasq.pid'),
    leases: path.join(dir, 'dnsmasq.leases'),
    log: path.join(dir, 'dnsmasq.log'),
    state: path.join(dir, 'state.json'),
    rules: path.join(dir, 'rules.nft'),
  };
}

export type NatState = {
  network: string;
  netns?: string;
  /** 'starting' until every step of `net up` is done; anything but 'up' is a leftover for gc. */
  phase: 'starting' | 'up' | 'stopping';
  bridge: string;
  /** nftables table kvmctl made for this network (family inet). */
  table: string;
  /** DOCKER-USER chains kvmctl added rules to (families). */
  dockerUser: ('ip' | 'ip6')[];
  /** firewalld zone the bridge was put in (root namespace only). */
  firewalldZone?: string;
  dnsmasqPid?: number;
  at: string;
};

export function readNatState(file: string): NatState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as NatState;
  } catch {
    return undefined;
  }
}

export function writeJsonAtomic(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(data, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

/** Every nat network state in this runtime dir (name → state). */
export function allNatStates(paths: Paths): Map<string, NatState> {
  const out = new Map<string, NatState>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(paths.run, 'networks'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return out;
  }
  for (const n of names) {
    const st = readNatState(natFiles(paths, n).state);
    if (st) out.set(n, st);
  }
  return out;
}

export function sysctlRecordFile(paths: Paths, netns: string | undefined): string {
  return path.join(paths.run, 'nat-sysctl', `${netns ?? '_root'}.json`);
}
