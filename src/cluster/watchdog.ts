/**
 * The per-host watchdog (Proxmox's watchdog-mux in miniature): a small process the agent starts
 * detached and must keep feeding. The agent rewrites the feed file a few times a second with
 * `fenceAt` — the time by which its lease could expire, minus a lead — and the PIDs of its HA
 * VMs. If the agent dies or hangs, `fenceAt` stops moving: once it passes, the watchdog SIGKILLs
 * those QEMUs, so they are gone before the lease expires and another host restarts them.
 * No etcd here and no heavy imports: it must keep working when everything else is stuck.
 */
import fs from 'node:fs';

export type Feed = { agentPid: number; fenceAt: number; ha: { vm: string; pid: number; starttime?: number }[]; stop?: boolean; at: number };

export function writeFeed(file: string, feed: Feed): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(feed));
  fs.renameSync(tmp, file);
}

function readFeed(file: string): Feed | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Feed;
  } catch {
    return undefined;
  }
}

function starttimeOf(pid: number): number | undefined {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL each listed QEMU that is still the same process (starttime guards against PID reuse). */
export function fenceNow(ha: Feed['ha'], log: (m: string) => void): string[] {
  const killed: string[] = [];
  for (const v of ha) {
    const st = starttimeOf(v.pid);
    if (st === undefined || (v.starttime !== undefined && v.starttime !== st)) continue;
    try {
      process.kill(v.pid, 'SIGKILL');
      killed.push(v.vm);
      log(`fenced ${v.vm} (pid ${v.pid}, SIGKILL)`);
    } catch {
      /* already gone */
    }
  }
  return killed;
}

export async function runWatchdog(file: string, log: (m: string) => void = (m) => process.stderr.write(`${new Date().toISOString()} watchdog: ${m}\n`)): Promise<void> {
  log(`watching ${file} (pid ${process.pid})`);
  let fencedAt = 0;
  for (;;) {
    const f = readFeed(file);
    if (!f || f.stop) {
      log(f ? 'agent stopped cleanly: exiting' : 'feed file gone: exiting');
      return;
    }
    if (Date.now() >= f.fenceAt && fencedAt !== f.fenceAt) {
      log(`agent ${f.agentPid} has not renewed its lease in time (fenceAt passed by ${Date.now() - f.fenceAt} ms)`);
      fenceNow(f.ha, log);
      fencedAt = f.fenceAt;
    }
    if (fencedAt === f.fenceAt && !alive(f.agentPid)) {
      log(`agent ${f.agentPid} is gone and its HA VMs are fenced: exiting`);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
