/** On a VM's overview: the autostart switch (admins) and, for a running VM, what its edited definition changes at the next start. */
import { useState } from 'react';
import { call } from '../api.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';
import { ErrorBox } from './ErrorBox.js';

export function VmManage({ name, spec, running, onChanged }: { name: string; spec: Record<string, unknown>; running: boolean; onChanged: () => void }) {
  const me = useMe();
  const auto = (spec.autostart as { enabled?: boolean } | undefined)?.enabled ?? false;
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  // Asked again whenever the definition changes (the spec object is new then).
  const pending = useLoad(() => (running ? call('pendingChanges', { params: { name } }) : Promise.resolve(undefined)), [name, running, spec]);
  const toggle = async () => {
    setBusy(true);
    setFailure(null);
    try {
      await call('setAutostart', { params: { name }, body: { enabled: !auto } });
      onChanged();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(false);
    }
  };
  const p = pending.data;
  return (
    <section className="card" style={{ flex: '1 1 380px' }} aria-labelledby="h-manage">
      <h2 id="h-manage" style={{ marginTop: 0 }}>Settings</h2>
      <label className="row" style={{ fontWeight: 'normal' }}>
        <input type="checkbox" checked={auto} disabled={busy || !can(me, 'admin')} onChange={toggle} data-testid="autostart" />
        Start with the host (autostart)
      </label>
      <ErrorBox error={failure} title="Autostart" />
      {p?.pending && (
        <div className="notice" role="status" data-testid="pending">
          <strong>Pending until restart:</strong> the stored definition differs from what this VM runs.
          <ul className="mono small">
            {p.added.map((a) => (
              <li key={`+${a}`}>+ {a}</li>
            ))}
            {p.removed.map((a) => (
              <li key={`-${a}`}>− {a}</li>
            ))}
          </ul>
        </div>
      )}
      {running && p && !p.pending && <p className="muted">The running VM matches its stored definition.</p>}
    </section>
  );
}
