/** A VM's backups (the host's default repository): back up now (incremental when safe, or full), verify, restore as a new VM. */
import { useAction } from '../useAction.js';
import { call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { go, href } from '../router.js';
import { useLoad } from '../useLoad.js';

export function VmBackups({ name }: { name: string }) {
  const { data, error, reload } = useLoad(() => call('listBackups', { params: { name } }), [name]);
  const { busy, failure, notice, run } = useAction(() => {
    reload();
  });
  const create = (mode: 'auto' | 'full') =>
    run(mode, async () => {
      const r = await call('createBackup', { params: { name }, body: { mode } });
      const m = r.manifest;
      return `Backup ${m.id}: ${m.kind}, ${fmtBytes(r.bytes)} written in ${(m.durationMs / 1000).toFixed(1)} s${r.reason && mode !== 'full' ? ` — full because ${r.reason}` : ''}. ${m.frozen ? 'Filesystems were frozen (application-consistent).' : (m.note ?? '')}`;
    });
  const verify = (id: string) =>
    run(`verify-${id}`, async () => {
      const r = await call('verifyBackup', { params: { name, id } });
      return r.ok ? `Backup ${id} verified: every chain file checks clean and the content matches its SHA-256.` : `Backup ${id} FAILED verification: ${r.problems.join('; ')}`;
    });
  const restore = (id: string) => {
    const as = window.prompt(`Restore ${name}@${id} as a new VM named:`, `${name}-restored`);
    if (!as) return;
    void run(`restore-${id}`, async () => {
      const r = await call('restoreBackup', { params: { name, id }, body: { as } });
      go(href.vm(r.vm));
      return `Restored as ${r.vm}.`;
    });
  };
  const list = data ?? [];
  return (
    <section className="card" aria-labelledby="h-backups">
      <div className="row">
        <h2 id="h-backups" style={{ margin: 0 }}>Backups</h2>
        <span className="spacer" />
        <button type="button" className="primary" disabled={!!busy} onClick={() => create('auto')}>
          {busy === 'auto' ? 'Backing up…' : 'Back up now'}
        </button>
        <button type="button" disabled={!!busy} onClick={() => create('full')}>
          {busy === 'full' ? 'Backing up…' : 'Full backup'}
        </button>
      </div>
      <p className="muted">Incremental whenever the disks' persistent dirty bitmaps can be trusted; otherwise full, with the reason. Restore over the VM itself with <span className="mono">kvmctl backup restore</span> on the host.</p>
      <ErrorBox error={error} title="Could not list the backups" />
      <ErrorBox error={failure} title="Backup action failed" />
      {notice && (
        <div className="notice" role="status" data-testid="backup-notice">
          {notice}
        </div>
      )}
      {data && list.length === 0 && <p data-testid="backups-none">No backups of {name} yet.</p>}
      {list.length > 0 && (
        <table aria-label="Backups">
          <thead>
            <tr>
              <th>ID</th>
              <th>Kind</th>
              <th>Size</th>
              <th>Consistency</th>
              <th>Parent</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {[...list].reverse().map((m) => (
              <tr key={m.id} data-testid="backup-row">
                <td className="mono">{m.id}</td>
                <td>{m.kind}</td>
                <td>{fmtBytes(m.disks.reduce((s, d) => s + d.fileSize, 0))}</td>
                <td>{m.frozen ? 'frozen (application-consistent)' : m.vmState === 'stopped' ? 'at rest (VM stopped)' : 'crash-consistent'}</td>
                <td className="mono">{m.parent ?? '–'}</td>
                <td>
                  <button type="button" disabled={!!busy} onClick={() => verify(m.id)}>
                    {busy === `verify-${m.id}` ? 'Verifying…' : 'Verify'}
                  </button>{' '}
                  <button type="button" disabled={!!busy} onClick={() => restore(m.id)}>
                    {busy === `restore-${m.id}` ? 'Restoring…' : 'Restore as…'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
