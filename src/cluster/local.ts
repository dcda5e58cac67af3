/**
 * This host's cluster settings, in $config/cluster.json (written by `cluster init` / `cluster
 * join`, removed by `cluster leave`). Its presence switches `kvmctl start/stop` to cluster mode.
 * No etcd import here: the CLI checks it on every start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';

export type LocalCluster = { etcd: string[]; prefix: string; host?: string; addr?: string };

export function clusterFile(paths: Paths): string {
  return path.join(paths.config, 'cluster.json');
}

export function readLocalCluster(paths: Paths): LocalCluster | undefined {
  try {
    return JSON.parse(fs.readFileSync(clusterFile(paths), 'utf8')) as LocalCluster;
  } catch {
    return undefined;
  }
}

export function inCluster(paths: Paths): boolean {
  return fs.existsSync(clusterFile(paths));
}

export function writeLocalCluster(paths: Paths, c: LocalCluster): void {
  fs.mkdirSync(paths.config, { recursive: true });
  const f = clusterFile(paths);
  fs.writeFileSync(`${f}.tmp`, `${JSON.stringify(c, null, 2)}\n`);
  fs.renameSync(`${f}.tmp`, f);
}

export function removeLocalCluster(paths: Paths): void {
  fs.rmSync(clusterFile(paths), { force: true });
}

/** The cluster this command talks to: --etcd if given, else this host's cluster.json. */
export function requireCluster(paths: Paths, etcd?: string[]): LocalCluster {
  const local = readLocalCluster(paths);
  if (etcd) return { ...local, etcd, prefix: local?.prefix ?? '/kvmctl/' };
  if (!local) throw new KvmError('NOT_IN_CLUSTER', 'this host is not in a cluster', { exit: 2, hint: 'kvmctl cluster init --etcd URLS (first host) or kvmctl cluster join --etcd URLS --host NAME, or pass --etcd' });
  return local;
}
