/**
 * What `net up` changed on the host, kept in `<run>/net/NAME.json` so that `net down` undoes
 * exactly that (an uplink kvmctl brought up is taken down again; one that was up stays up).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Paths } from '../host/paths.js';

export type NetState = { netns?: string; createdBridge: boolean; uplinksBroughtUp: string[]; createdTaps: string[] };

function file(paths: Paths, name: string): string {
  return path.join(paths.run, 'net', `${name}.json`);
}

export function readNetState(paths: Paths, name: string): NetState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file(paths, name), 'utf8')) as NetState;
  } catch {
    return undefined;
  }
}

export function writeNetState(paths: Paths, name: string, st: NetState): void {
  const f = file(paths, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(st, null, 2));
  fs.renameSync(`${f}.tmp`, f);
}

export function removeNetState(paths: Paths, name: string): void {
  fs.rmSync(file(paths, name), { force: true });
}
