/**
 * A network definition as YAML (new or edited): Validate reports every issue with its path and
 * line (components/YamlEditor.tsx), Save stores it (POST /api/networks, ?replace=true for an
 * edit). A network that is up keeps its bridge until it is taken down and up again.
 */
import { useEffect, useState } from 'react';
import { ApiFailure, call } from '../api.js';
import { useLeaveGuard } from '../leave-guard.js';
import { ErrorBox } from './ErrorBox.js';
import { YamlEditor, type Issue } from './YamlEditor.js';

export const NEW_NETWORK = `kind: network
name: lan2
type: host-only
description: VMs and this host only
addresses: [10.50.0.1/24]
`;

export function NetworkEditor({ name, yaml, isUp, onDone }: { name?: string; yaml: string; isUp: boolean; onDone: (saved: boolean) => void }) {
  const [text, setText] = useState(yaml);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const dirty = text !== yaml;
  useLeaveGuard(dirty, `The network definition has unsaved changes. Leave and lose them?`);
  const fail = (e: unknown) => {
    const withIssues = e instanceof ApiFailure && !!e.issues?.length;
    setIssues(withIssues ? e.issues! : []);
    setError(withIssues ? null : e);
  };
  const validate = async () => {
    setError(null);
    setNotice('');
    try {
      const r = await call('validate', { body: { yaml: text } });
      setIssues(r.issues);
      if (r.ok) setNotice(r.kind === 'network' ? 'The definition is valid.' : 'This is not a network definition (kind: network).');
    } catch (e) {
      fail(e);
    }
  };
  const save = async () => {
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      await call('createNetwork', { query: name ? { replace: 'true' } : {}, body: { yaml: text } });
      setIssues([]);
      onDone(true);
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-label={name ? `Edit network ${name}` : 'New network'}>
      <h2>{name ? `Edit network ${name}` : 'New network'}</h2>
      {isUp && <p className="muted">{name} is up: a change takes effect when it is taken down and brought up again.</p>}
      <YamlEditor id="net-yaml" label={name ? `Definition of network ${name} (YAML)` : 'New network definition (YAML)'} value={text} onChange={setText} issues={issues} />
      <ErrorBox error={error} title="Could not save the network" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <div className="row" style={{ marginTop: 8 }}>
        <button type="button" className="primary" onClick={save} disabled={busy || (!!name && !dirty)}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={validate}>Validate</button>
        <button type="button" onClick={() => onDone(false)}>Close</button>
        {dirty && <span className="muted">Unsaved changes</span>}
      </div>
    </section>
  );
}

/** A nat network's DHCP leases: address, MAC, the VM and NIC that hold it, expiry. */
export function NetworkLeases({ name }: { name: string }) {
  const [rows, setRows] = useState<Awaited<ReturnType<typeof call<'networkLeases'>>> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setRows(null);
    setError(null);
    call('networkLeases', { params: { name } }).then(setRows, setError);
  }, [name]);
  return (
    <section className="card" aria-label={`Leases of ${name}`} data-testid="net-leases">
      <h2>DHCP leases of {name}</h2>
      <ErrorBox error={error} title="Could not read the leases" />
      {rows && rows.length === 0 && <p className="muted">No leases.</p>}
      {rows && rows.length > 0 && (
        <table aria-label={`Leases of ${name}`}>
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">MAC</th>
              <th scope="col">VM</th>
              <th scope="col">Host name</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((l) => (
              <tr key={`${l.mac}-${l.ip}`} data-mac={l.mac}>
                <td className="mono">{l.ip}</td>
                <td className="mono">{l.mac}</td>
                <td>{l.vm ? `${l.vm} (${l.nic})` : '–'}</td>
                <td>{l.hostname ?? '–'}</td>
                <td className="mono">{l.expires === 'never' ? 'never' : l.expires.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
