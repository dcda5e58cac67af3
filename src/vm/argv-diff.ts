/**
 * What differs between the command line a VM runs with and the one its stored definition gives
 * now (the UI's "pending until restart"), and what hotplug already changed in the running VM:
 * `<run>/vms/NAME/live.json` holds the options a live attach/detach added or removed (src/vm/
 * devices.ts), tied to the QEMU pid, so they do not show as pending.
 */
import fs from 'node:fs';
import path from 'node:path';
import { vmRunDir, type Paths } from '../host/paths.js';

/** argv → its options, each with its value ("-m 256M", "-device virtio-net-pci,…"). */
export function argvOptions(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('-') && i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) out.push(`${a} ${argv[++i]}`);
    else out.push(a);
  }
  return out;
}

/** a minus b, as multisets. */
function minus(a: string[], b: string[]): string[] {
  const left = new Map<string, number>();
  for (const x of b) left.set(x, (left.get(x) ?? 0) + 1);
  return a.filter((x) => {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    return n === 0;
  });
}

/** The options of an argv, without the binary and an `ip netns exec` prefix. */
const options = (a: string[]) => argvOptions(a.slice(a.findIndex((x) => /qemu-system/.test(x)) + 1));

/** What differs between two argvs, option by option (order ignored; the binary and an `ip netns exec` prefix skipped). */
export function argvDiff(running: string[], planned: string[]): { added: string[]; removed: string[] } {
  const r = options(running);
  const p = options(planned);
  return { added: minus(p, r), removed: minus(r, p) };
}

export type LiveChanges = { pid: number; added: string[]; removed: string[] };
const liveFile = (paths: Paths, name: string) => path.join(vmRunDir(paths, name), 'live.json');

/** The live changes recorded for this QEMU process (another pid's are stale: the VM restarted since). */
export function readLiveChanges(paths: Paths, name: string, pid: number | undefined): LiveChanges | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(liveFile(paths, name), 'utf8')) as LiveChanges;
    return j.pid === pid && Array.isArray(j.added) && Array.isArray(j.removed) ? j : undefined;
  } catch {
    return undefined;
  }
}

/** Record that the running VM (pid) changed from the `before` argv to `after` live; an option added and then removed cancels out. */
export function recordLiveChange(paths: Paths, name: string, pid: number, before: string[], after: string[]): void {
  const d = argvDiff(before, after);
  const cur = readLiveChanges(paths, name, pid) ?? { pid, added: [], removed: [] };
  const added = [...minus(cur.added, d.removed), ...minus(d.added, cur.removed)];
  const removed = [...minus(cur.removed, d.added), ...minus(d.removed, cur.added)];
  const f = liveFile(paths, name);
  fs.writeFileSync(`${f}.tmp`, JSON.stringify({ pid, added, removed }));
  fs.renameSync(`${f}.tmp`, f);
}

/** The running VM's options: those it started with, with the live changes applied. */
export function runningOptions(startArgv: string[], live: LiveChanges | undefined): string[] {
  const base = startArgv.slice(0, startArgv.findIndex((x) => /qemu-system/.test(x)) + 1);
  const opts = minus([...options(startArgv), ...(live?.added ?? [])], live?.removed ?? []);
  return [...base, ...opts.flatMap((o) => (o.startsWith('-') && o.includes(' ') ? [o.slice(0, o.indexOf(' ')), o.slice(o.indexOf(' ') + 1)] : [o]))];
}
