/**
 * Cancelling a live migration from the host it leaves (the API's task Cancel on a migrateVm task,
 * src/api/routes/cluster.ts). The source agent drives the migration (src/cluster/migrate.ts
 * migrateOut, which polls query-migrate): QMP `migrate_cancel` on the source QEMU makes it see
 * `cancelled`, fail the migration and keep the VM running here, and the destination's incoming
 * QEMU is ended by its agent. The cancel is sent again every 250 ms until the request is over, so a
 * cancel that comes before the agent issued `migrate` still stops it. Only a VM whose QEMU runs on
 * this host can be cancelled here (another host's QMP socket is not reachable). While it migrates,
 * the agent holds the VM's qmp.sock (QEMU serves one client per socket), so the cancel goes over
 * the second socket: through `kvmctl serve`'s own watcher connection when it has one, else a
 * short connection to qmp-events.sock.
 *
 * From any other host's serve the cancel goes through etcd (cancelThroughClusterOnAbort): a
 * migcancel/NAME record for the migration's id, which the source agent reads while it migrates
 * (src/cluster/agent-migrate.ts) and answers with the same migrate_cancel on its own host.
 */
import path from 'node:path';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import type { QmpClient } from '../qmp/client.js';
import { observe } from '../vm/state.js';
import { qmpOnce } from '../vm/qmp-once.js';

/** Whether this host runs the VM's QEMU (then its outgoing migration can be cancelled from here). */
export const runsHere = (paths: Paths, name: string): boolean => observe(paths, name).phase === 'alive';

/** On abort: QMP migrate_cancel to the VM's QEMU here, repeated until the returned dispose() is called. */
export function cancelMigrationOnAbort(paths: Paths, name: string, signal: AbortSignal, log: (m: string) => void = () => undefined, via?: () => QmpClient | undefined): () => void {
  let timer: NodeJS.Timeout | undefined;
  const send = async () => {
    const c = via?.();
    if (c) await c.execute('migrate_cancel', undefined, { timeoutMs: 3000 }).catch(() => undefined);
    else await qmpOnce(path.join(vmRuntimeFiles(paths, name).dir, 'qmp-events.sock'), 'migrate_cancel', undefined, 3000).catch(() => undefined);
  };
  const onAbort = () => {
    log(`cancel: migrate_cancel to VM "${name}"'s QEMU on this host (the source); it keeps running here`);
    void send();
    timer = setInterval(() => void send(), 250);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    signal.removeEventListener('abort', onAbort);
    if (timer) clearInterval(timer);
  };
}

/**
 * On abort: ask the source agent through etcd (`ask`, e.g. service.ts requestMigrationCancel),
 * again every 500 ms until it is accepted (the request may not be in etcd yet) or dispose() is called.
 */
export function cancelThroughClusterOnAbort(signal: AbortSignal, ask: () => Promise<{ from: string }>, log: (m: string) => void = () => undefined): () => void {
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const tryAsk = async () => {
    if (done) return;
    try {
      const r = await ask();
      if (done) return;
      done = true;
      clearInterval(timer);
      log(`cancel: asked the source host ${r.from}'s agent through etcd (migcancel); the VM keeps running there`);
    } catch {
      /* not requested yet, or etcd busy: the next try */
    }
  };
  const onAbort = () => {
    void tryAsk();
    timer = setInterval(() => void tryAsk(), 500);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    done = true;
    signal.removeEventListener('abort', onAbort);
    if (timer) clearInterval(timer);
  };
}
