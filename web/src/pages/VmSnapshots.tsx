/**
 * A VM's snapshots: take one now (external overlays while it runs, internal qcow2 snapshots when
 * stopped), revert (stopped; what was written since is lost: asks first), delete an internal one.
 */
import { useAction } from '../useAction.js';
import { useState, type FormEvent } from 'react';
import { call } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';

type Row = { name: string; kind: 'external' | 'internal'; disks: string[]; at?: string };

export function VmSnapshots({ name, running }: { name: string; running: boolean }) {
  const me = useMe();
  const { data, error, reload } = useLoad(() => call('listSnapshots', { params: { name } }), [name]);
  const [snap, setSnap] = useState('');
  const may = can(me, 'operator');

  const { busy, failure, notice, run } = useAction(() => {
    reload();
  });
  const create = (e: FormEvent) => {
    e.preventDefault();
    void run('create', async () => {
      const r = await call('createSnapshot', { params: { name }, body: snap.trim() ? { name: snap.trim() } : {} });
      setSnap('');
      return `Snapshot "${r.name}" taken (${r.mode}) of ${r.disks.map((d) => d.id).join(', ')}.${r.mode === 'external' ? ` ${r.frozen ? 'Filesystems were frozen.' : (r.note ?? '')}` : ''}`;
    });
  };
  const revert = (s: Row) => {
    if (!window.confirm(`Revert ${name} to "${s.name}"? Everything written to ${s.disks.join(', ')} since then is discarded.`)) return;
    void run(`revert-${s.name}`, async () => {
      const r = await call('revertSnapshot', { params: { name, snap: s.name } });
      return `Reverted ${r.disks.join(', ')} to "${r.name}".`;
    });
  };
  const remove = (s: Row) => {
    if (!window.confirm(`Delete the snapshot "${s.name}" of ${name}? It cannot be undone.`)) return;
    void run(`delete-${s.name}`, async () => {
      const r = await call('deleteSnapshot', { params: { name, snap: s.name } });
      return `Deleted "${r.name}" from ${r.disks.join(', ')}.`;
    });
  };

  // One row per snapshot name, with the disks that have it.
  const rows = new Map<string, Row>();
  for (const d of data?.disks ?? []) {
    for (const o of d.external) {
      const r = rows.get(o.name) ?? { name: o.name, kind: 'external', disks: [], at: o.createdAt };
      r.disks.push(d.id);
      rows.set(o.name, r);
    }
    for (const n of d.internal) {
      const r = rows.get(n) ?? { name: n, kind: 'internal', disks: [] };
      r.disks.push(d.id);
      rows.set(n, r);
    }
  }
  const list = [...rows.values()];

  return (
    <section className="card" aria-labelledby="h-snaps">
      <h2 id="h-snaps" style={{ marginTop: 0 }}>Snapshots</h2>
      <p className="muted">
        {running
          ? 'Running: a snapshot is an external overlay of each writable disk, taken at one point in time (filesystems frozen through the guest agent when there is one). Stop the VM to revert.'
          : 'Stopped: a snapshot is an internal qcow2 snapshot of each writable disk.'}
      </p>
      {may && (
        <form className="row" onSubmit={create}>
          <label htmlFor="snap-name">Snapshot name</label>
          <input id="snap-name" value={snap} onChange={(e) => setSnap(e.target.value)} placeholder="snap-YYYYMMDD-HHMMSS" autoComplete="off" style={{ maxWidth: 260 }} />
          <button type="submit" className="primary" disabled={!!busy}>
            {busy === 'create' ? 'Taking…' : 'Take snapshot'}
          </button>
        </form>
      )}
      <ErrorBox error={error} title="Could not list the snapshots" />
      <ErrorBox error={failure} title="Snapshot" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <div className="scroll-x">
        <table data-testid="snapshots">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Disks</th>
              <th scope="col">Taken</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.name} data-snapshot={s.name}>
                <th scope="row" className="mono">{s.name}</th>
                <td>{s.kind}</td>
                <td className="mono">{s.disks.join(', ')}</td>
                <td>{s.at ? new Date(s.at).toLocaleString() : '–'}</td>
                <td>
                  <div className="row">
                  {may && (
                    <button type="button" disabled={!!busy || running} title={running ? 'stop the VM to revert' : undefined} onClick={() => revert(s)} aria-label={`Revert to ${s.name}`}>
                      {busy === `revert-${s.name}` ? 'Reverting…' : 'Revert'}
                    </button>
                  )}
                  {may && s.kind === 'internal' && (
                    <button type="button" className="danger" disabled={!!busy || running} onClick={() => remove(s)} aria-label={`Delete ${s.name}`}>
                      {busy === `delete-${s.name}` ? 'Deleting…' : 'Delete'}
                    </button>
                  )}
                  </div>
                </td>
              </tr>
            ))}
            {data && list.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  {data.disks.length ? 'No snapshots yet.' : 'This VM has no disks to snapshot.'}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
