/** Users (admins only): the named API tokens — make one (shown once), revoke one — and the audit log. */
import { useState, type FormEvent } from 'react';
import { call, type Response } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';

type Made = Response<'createToken'>;

export function Users() {
  const me = useMe();
  const tokens = useLoad(() => call('listTokens'), []);
  const audit = useLoad(() => call('audit', { query: { limit: '100' } }), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState<'viewer' | 'operator' | 'admin'>('viewer');
  const [vms, setVms] = useState('');
  const [made, setMade] = useState<Made | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  if (me && !can(me, 'admin')) {
    return (
      <>
        <h1>Users and tokens</h1>
        <div className="card">
          You are signed in as <strong>{me.user}</strong> ({me.role}): only an admin manages tokens.
        </div>
      </>
    );
  }

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setFailure(null);
    setMade(null);
    try {
      setMade(await call('createToken', { body: { name: name.trim(), role, ...(vms.trim() ? { vms: vms.trim() } : {}) } }));
      setName('');
      setVms('');
    } catch (x) {
      setFailure(x);
    } finally {
      setBusy(false);
      tokens.reload();
      audit.reload();
    }
  };
  const remove = async (n: string) => {
    if (!window.confirm(`Revoke the token "${n}"? Whoever holds it is refused from the next request on.`)) return;
    setFailure(null);
    try {
      await call('deleteToken', { params: { name: n } });
    } catch (x) {
      setFailure(x);
    } finally {
      tokens.reload();
      audit.reload();
    }
  };

  return (
    <>
      <h1>Users and tokens</h1>
      <p className="muted">
        viewer: reads everything, no consoles · operator: also start, stop, reset, snapshots and the consoles · admin: also definitions, disks, networks, host and these tokens. A VM pattern
        limits a token to the VMs whose names match it.
      </p>
      <section className="card" aria-labelledby="h-new-token">
        <h2 id="h-new-token" style={{ marginTop: 0 }}>New token</h2>
        <form className="grid" onSubmit={add}>
          <label htmlFor="tok-name">Name</label>
          <input id="tok-name" value={name} onChange={(e) => setName(e.target.value)} required autoComplete="off" />
          <label htmlFor="tok-role">Role</label>
          <select id="tok-role" value={role} onChange={(e) => setRole(e.target.value as typeof role)}>
            <option value="viewer">viewer</option>
            <option value="operator">operator</option>
            <option value="admin">admin</option>
          </select>
          <label htmlFor="tok-vms">Only VMs matching</label>
          <input id="tok-vms" value={vms} onChange={(e) => setVms(e.target.value)} placeholder="optional, e.g. web-*" autoComplete="off" />
          <div className="full">
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Making…' : 'Make token'}
            </button>
          </div>
        </form>
        <ErrorBox error={failure} title="Token" />
        {made && (
          <div className="notice" role="status" data-testid="new-token">
            Token for <strong>{made.name}</strong> ({made.role}
            {made.vms ? `, VMs ${made.vms}` : ''}). It is shown only now — copy it:
            <pre className="mono wrap">{made.token}</pre>
          </div>
        )}
      </section>
      <section className="card" aria-labelledby="h-tokens">
        <h2 id="h-tokens" style={{ marginTop: 0 }}>Tokens</h2>
        <ErrorBox error={tokens.error} title="Could not list the tokens" />
        <p className="muted">
          The main token (<span className="mono">kvmctl serve token show</span>) is always an admin and is not listed.
        </p>
        <div className="scroll-x">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">VMs</th>
                <th scope="col">Made</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(tokens.data ?? []).map((t) => (
                <tr key={t.name} data-token={t.name}>
                  <th scope="row" className="mono">{t.name}</th>
                  <td>{t.role}</td>
                  <td className="mono">{t.vms ?? 'all'}</td>
                  <td>{new Date(t.createdAt).toLocaleString()}</td>
                  <td>
                    <button type="button" className="danger" onClick={() => remove(t.name)} aria-label={`Revoke ${t.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
              {tokens.data?.length === 0 && (
                <tr>
                  <td colSpan={5} className="muted">
                    No named tokens yet.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      <AuditLog audit={audit.data} error={audit.error} reload={audit.reload} />
    </>
  );
}

function AuditLog({ audit, error, reload }: { audit: Response<'audit'> | undefined; error: unknown; reload: () => void }) {
  return (
    <section className="card" aria-labelledby="h-audit">
      <div className="row">
        <h2 id="h-audit" style={{ margin: 0 }}>Audit log</h2>
        <span className="spacer" />
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      <p className="muted">Every change, console opened and refusal through the API, newest first (the last 100; reads are not logged).</p>
      <ErrorBox error={error} title="Could not read the audit log" />
      <div className="scroll-x">
        <table data-testid="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">User</th>
              <th scope="col">Request</th>
              <th scope="col">Target</th>
              <th scope="col" className="num">Result</th>
            </tr>
          </thead>
          <tbody>
            {[...(audit ?? [])].reverse().map((e, i) => (
              <tr key={i}>
                <td>{new Date(e.at).toLocaleTimeString()}</td>
                <td className="mono">{e.user}</td>
                <td className="mono">
                  {e.method} {e.route}
                </td>
                <td className="mono">{e.target ?? ''}</td>
                <td className={`num ${e.status >= 400 ? 'check-fail' : ''}`}>{e.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
