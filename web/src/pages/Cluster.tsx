/**
 * The cluster view: hosts with their lease state (alive, seconds left on the lease), CPUs,
 * memory and VMs; the cluster's VMs with desired state, owner and HA; a Migrate button per
 * running VM (target host chosen from the live hosts) whose progress shows inline and in the task
 * panel (the migration is a task). Recent failovers and migrations of the whole cluster (recorded
 * in etcd by the agents; new ones arrive live on the event stream as kind "cluster"). Refreshed
 * every 3 s and on every task end.
 */
import { useCallback, useEffect, useState } from 'react';
import type { TaskSummaryDto } from '../../../src/api/contract-metrics.js';
import { ApiFailure, call, fmtBytes } from '../api.js';
import { ErrorBox, StateBadge } from '../components/ErrorBox.js';
import { useEvents } from '../live.js';
import { useLoad } from '../useLoad.js';

export function Cluster() {
  const { data, error, reload } = useLoad(() => call('clusterStatus'), []);
  const [target, setTarget] = useState<Record<string, string>>({});
  const [moving, setMoving] = useState<Record<string, TaskSummaryDto | 'asked'>>({});
  const [actionError, setActionError] = useState<unknown>(null);
  const [live, setLive] = useState<ClusterEventRow[]>([]);
  useEffect(() => {
    const t = setInterval(reload, 3000);
    return () => clearInterval(t);
  }, [reload]);
  useEvents(
    useCallback(
      (e) => {
        if (e.kind === 'cluster') {
          // A failover or an ended migration on any host (from etcd): show it now, refresh the tables.
          setLive((l) => [{ type: e.type, vm: e.vm, from: e.from, to: e.to, at: e.happenedAt, state: e.state, message: e.message, by: e.by }, ...l].slice(0, 20));
          reload();
          return;
        }
        if (e.kind !== 'task' || e.task.kind !== 'migrateVm' || !e.task.target) return;
        setMoving((m) => ({ ...m, [e.task.target!]: e.task }));
        if (e.action === 'ended') reload();
      },
      [reload],
    ),
  );

  if (error instanceof ApiFailure && error.code === 'NOT_IN_CLUSTER') {
    return (
      <>
        <h1>Cluster</h1>
        <div className="card">This host is not in a cluster. Run <span className="mono">kvmctl cluster init</span> or <span className="mono">kvmctl cluster join</span> (docs/cluster.md).</div>
      </>
    );
  }
  const alive = data?.hosts.filter((h) => h.alive).map((h) => h.name) ?? [];
  // The live ones first (they may not be in the last status read yet), then the recorded ones; newest first.
  const seen = new Set<string>();
  const events = [...live, ...(data?.events ?? [])]
    .filter((e) => {
      const k = `${e.type} ${e.vm} ${e.at}`;
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .sort((a, b) => b.at.localeCompare(a.at))
    .slice(0, 20);
  const migrate = async (vm: string, from: string) => {
    const to = target[vm] ?? alive.find((h) => h !== from);
    if (!to) return;
    setActionError(null);
    setMoving((m) => ({ ...m, [vm]: 'asked' }));
    try {
      await call('migrateVm', { params: { name: vm }, body: { to } });
    } catch (e) {
      setActionError(e);
    } finally {
      reload();
    }
  };

  return (
    <>
      <h1>Cluster</h1>
      <ErrorBox error={error} title="Could not read the cluster" />
      <ErrorBox error={actionError} title="Migration failed" />
      {data && (
        <>
          <p className="muted">
            {data.prefix} · lease TTL {String(data.config?.ttlSec ?? '?')} s · etcd: {data.etcd.map((e) => `${e.endpoint} ${e.ok ? (e.leader ? 'leader' : 'ok') : 'DOWN'}`).join(', ')}
          </p>
          <h2>Hosts</h2>
          <table aria-label="Hosts">
            <thead>
              <tr>
                <th scope="col">Host</th>
                <th scope="col">Lease</th>
                <th scope="col">Address</th>
                <th scope="col" className="num">CPUs</th>
                <th scope="col" className="num">Memory free / total</th>
                <th scope="col">VMs</th>
              </tr>
            </thead>
            <tbody>
              {data.hosts.map((h) => (
                <tr key={h.name} data-host={h.name} data-alive={h.alive}>
                  <th scope="row" className="mono">{h.name}</th>
                  <td>{h.alive ? <span className="state running">alive{h.leaseTtlLeft !== undefined ? ` · ${h.leaseTtlLeft} s left` : ''}</span> : <span className="state crashed">no lease</span>}</td>
                  <td className="mono">{h.addr ?? '–'}</td>
                  <td className="num">{h.cpus ?? '–'}</td>
                  <td className="num">
                    {fmtBytes(h.memFree)} / {fmtBytes(h.memTotal)}
                  </td>
                  <td className="mono">{h.vms.join(', ') || '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>VMs</h2>
          <table aria-label="Cluster VMs">
            <thead>
              <tr>
                <th scope="col">VM</th>
                <th scope="col">Desired</th>
                <th scope="col">Owner</th>
                <th scope="col">HA</th>
                <th scope="col" className="num">Memory</th>
                <th scope="col">Migrate</th>
              </tr>
            </thead>
            <tbody>
              {data.vms.map((v) => {
                const m = moving[v.name];
                const inFlight = m === 'asked' || m?.state === 'running';
                const others = alive.filter((h) => h !== v.owner);
                return (
                  <tr key={v.name} data-vm={v.name} data-owner={v.owner ?? ''}>
                    <th scope="row" className="mono">{v.name}</th>
                    <td>
                      <StateBadge state={v.desired?.state ?? 'stopped'} /> {v.desired?.host && <span className="mono">@{v.desired.host}</span>}
                    </td>
                    <td className="mono">{v.owner ?? (v.desired?.state === 'running' ? 'LOST' : '–')}</td>
                    <td>{v.ha ? 'yes' : 'no'}</td>
                    <td className="num">{fmtBytes(v.memory)}</td>
                    <td>
                      {v.owner && others.length > 0 && (
                        <span className="row">
                          <label className="sr-only" htmlFor={`to-${v.name}`}>Migrate {v.name} to</label>
                          <select id={`to-${v.name}`} value={target[v.name] ?? others[0]} onChange={(e) => setTarget((t) => ({ ...t, [v.name]: e.target.value }))} style={{ width: 'auto' }} disabled={inFlight}>
                            {others.map((h) => (
                              <option key={h}>{h}</option>
                            ))}
                          </select>
                          <button type="button" onClick={() => migrate(v.name, v.owner!)} disabled={inFlight}>
                            {inFlight ? 'Migrating…' : 'Migrate'}
                          </button>
                        </span>
                      )}
                      {m && m !== 'asked' && (
                        <span className="muted" data-testid={`migration-${v.name}`} data-state={m.state}>
                          {m.state === 'running' && m.progress !== null ? <progress max={100} value={m.progress} aria-label={`Migration of ${v.name}`} /> : null} {m.state === 'running' ? (m.progress === null ? 'preparing the destination…' : `${Math.floor(m.progress)}%`) : m.state === 'ok' ? 'migrated' : `${m.state}${m.error ? `: ${m.error.message}` : ''}`}
                        </span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <h2>Recent events</h2>
          {events.length === 0 ? (
            <p className="muted">No failovers or migrations recorded yet.</p>
          ) : (
            <table aria-label="Cluster events">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Event</th>
                  <th scope="col">VM</th>
                  <th scope="col">From → to</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr key={`${e.type} ${e.vm} ${e.at}`} data-event={e.type} data-vm={e.vm} data-state={e.state ?? ''}>
                    <td className="mono">{new Date(e.at).toLocaleString()}</td>
                    <td>{e.type === 'failover' ? <span className="state crashed">failover</span> : <span className={`state ${e.state === 'done' ? 'running' : 'crashed'}`}>migration {e.state}</span>}</td>
                    <th scope="row" className="mono">{e.vm}</th>
                    <td className="mono">
                      {e.from} → {e.to}
                    </td>
                    <td className="muted">{e.message ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </>
  );
}

type ClusterEventRow = { type: 'failover' | 'migration'; vm: string; from: string; to: string; at: string; state?: string; message?: string; by: string };
