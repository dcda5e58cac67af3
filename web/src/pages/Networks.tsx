/** Networks with their live state: bring one up or take it down, define a new one, edit one (YAML), a nat network's DHCP leases. */
import { useState } from 'react';
import { call } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { NEW_NETWORK, NetworkEditor, NetworkLeases } from '../components/NetworkEditor.js';
import { useLoad } from '../useLoad.js';

export function Networks() {
  const { data, error, loading, reload } = useLoad(() => call('listNetworks'), []);
  const [busy, setBusy] = useState('');
  const [actionError, setActionError] = useState<unknown>(null);
  const [editing, setEditing] = useState<{ name?: string; yaml: string; isUp: boolean } | null>(null);
  const [leases, setLeases] = useState<string | null>(null);
  const edit = async (name: string, isUp: boolean) => {
    setActionError(null);
    try {
      const d = await call('getNetwork', { params: { name } });
      setEditing({ name, yaml: d.yaml, isUp });
    } catch (e) {
      setActionError(e);
    }
  };
  const act = async (name: string, what: 'upNetwork' | 'downNetwork') => {
    setBusy(name);
    setActionError(null);
    try {
      await call(what, { params: { name }, body: {} } as never);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy('');
      reload();
    }
  };
  return (
    <>
      <div className="row">
        <h1>Networks</h1>
        <span className="spacer" />
        <button type="button" onClick={() => setEditing({ yaml: NEW_NETWORK, isUp: false })}>New network</button>
        <button type="button" onClick={reload} disabled={loading}>Refresh</button>
      </div>
      <p className="muted">Also from a shell: <span className="mono">kvmctl apply -f net.yaml</span> (kind: network).</p>
      {editing && <NetworkEditor key={editing.name ?? '(new)'} {...editing} onDone={(saved) => (setEditing(null), saved && reload())} />}
      {leases && <NetworkLeases name={leases} />}
      <ErrorBox error={error} title="Could not list networks" />
      <ErrorBox error={actionError} title="Action failed" />
      {data && data.length === 0 && <div className="card">No networks are defined.</div>}
      {data && data.length > 0 && (
        <table aria-label="Networks">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">Interface</th>
              <th scope="col">Addresses</th>
              <th scope="col">Ports</th>
              <th scope="col">Used by</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data.map((n) => (
              <tr key={n.network}>
                <th scope="row">
                  {n.network}
                  {n.description && <div className="muted" style={{ fontWeight: 'normal', fontSize: 13 }}>{n.description}</div>}
                </th>
                <td>{n.type}</td>
                <td>
                  <span className={`state ${n.state === 'up' ? 'running' : n.state === 'foreign' ? 'crashed' : ''}`}>{n.state}</span>
                </td>
                <td className="mono">{n.interface ?? '–'}</td>
                <td className="mono">{n.addresses.join(', ') || '–'}</td>
                <td className="mono">{n.ports.join(', ') || '–'}</td>
                <td>{n.users.join(', ') || '–'}</td>
                <td>
                  {n.state === 'up' ? (
                    <button type="button" disabled={busy === n.network} onClick={() => act(n.network, 'downNetwork')} aria-label={`Take ${n.network} down`}>
                      Down
                    </button>
                  ) : n.state === 'down' || n.state === 'absent' ? (
                    <button type="button" disabled={busy === n.network} onClick={() => act(n.network, 'upNetwork')} aria-label={`Bring ${n.network} up`}>
                      Up
                    </button>
                  ) : null}{' '}
                  <button type="button" onClick={() => edit(n.network, n.state === 'up')} aria-label={`Edit ${n.network}`}>
                    Edit
                  </button>
                  {n.type === 'nat' && (
                    <>
                      {' '}
                      <button type="button" onClick={() => setLeases(leases === n.network ? null : n.network)} aria-label={`Leases of ${n.network}`} aria-pressed={leases === n.network}>
                        Leases
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
