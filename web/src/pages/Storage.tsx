/**
 * Named storages (GET /api/storage: where each is, never a key) with a check; an rbd storage's
 * volumes: size, snapshots, parent; create, resize, delete (admin; asks before deleting).
 * Storages themselves are defined on the host only (kvmctl storage define), never here.
 */
import { useState, type FormEvent } from 'react';
import { call, fmtBytes, type Response } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { can, useMe } from '../session.js';
import { useAction } from '../useAction.js';
import { useLoad } from '../useLoad.js';

type Summary = Response<'listStorages'>[number];

const where = (s: Summary): string =>
  s.error ? `invalid: ${s.error}` : s.type === 'dir' ? (s.path ?? '') : `pool ${s.pool}${s.namespace ? `/${s.namespace}` : ''} as client.${s.user}${s.monitors ? ` @ ${s.monitors.join(', ')}` : ''}`;

export function Storage() {
  const me = useMe();
  const { data, error, loading, reload } = useLoad(() => call('listStorages'), []);
  const [selected, setSelected] = useState('');
  const [check, setCheck] = useState<Response<'checkStorage'> | null>(null);
  const [checkError, setCheckError] = useState<unknown>(null);
  const [checking, setChecking] = useState('');

  const runCheck = async (name: string) => {
    setChecking(name);
    setCheck(null);
    setCheckError(null);
    try {
      setCheck(await call('checkStorage', { params: { storage: name } }));
    } catch (e) {
      setCheckError(e);
    } finally {
      setChecking('');
    }
  };

  return (
    <>
      <div className="row">
        <h1>Storage</h1>
        <span className="spacer" />
        <button type="button" onClick={reload} disabled={loading}>Refresh</button>
      </div>
      <p className="muted">Named storages are defined on the host (kvmctl storage define -f FILE), not here.</p>
      <ErrorBox error={error} title="Could not list the storages" />
      {data && data.length === 0 && <div className="card">No named storages yet.</div>}
      {data && data.length > 0 && (
        <table aria-label="Storages" data-testid="storages">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Where</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.map((s) => (
              <tr key={s.name} data-storage={s.name} aria-selected={selected === s.name}>
                <th scope="row" className="mono">{s.name}</th>
                <td>{s.type ?? '?'}</td>
                <td className="mono">{where(s)}</td>
                <td>
                  <div className="row">
                    {s.type === 'rbd' && (
                      <button type="button" onClick={() => setSelected(s.name)} aria-label={`Volumes of ${s.name}`} aria-pressed={selected === s.name}>
                        Volumes
                      </button>
                    )}
                    {can(me, 'operator') && !s.error && (
                      <button type="button" onClick={() => void runCheck(s.name)} disabled={!!checking} aria-label={`Check ${s.name}`}>
                        {checking === s.name ? 'Checking…' : 'Check'}
                      </button>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorBox error={checkError} title="Could not check the storage" />
      {check && (
        <section className="card" style={{ marginTop: 14 }} aria-label={`Check of ${check.storage}`} data-testid="storage-check">
          <h2 style={{ marginTop: 0 }}>
            <span className="mono">{check.storage}</span> <span className={`state ${check.ok ? 'running' : 'crashed'}`}>{check.ok ? 'ok' : 'problems'}</span>
          </h2>
          <ul className="small">
            {check.checks.map((c) => (
              <li key={c.check}>
                {c.ok ? 'ok' : 'FAIL'} — {c.check}: {c.detail}
              </li>
            ))}
          </ul>
          <button type="button" onClick={() => setCheck(null)}>Close</button>
        </section>
      )}
      {selected && <Volumes key={selected} storage={selected} admin={can(me, 'admin')} />}
    </>
  );
}

function Volumes({ storage, admin }: { storage: string; admin: boolean }) {
  const { data, error, reload } = useLoad(() => call('listVolumes', { params: { storage } }), [storage]);
  const { busy, failure, notice, run } = useAction(reload);
  const [form, setForm] = useState({ volume: '', size: '1G' });
  const [resizing, setResizing] = useState<{ volume: string; size: string } | null>(null);

  // rbd ls -l gives a row per image and one per snapshot: one row per volume here.
  const volumes = (data ?? []).filter((r) => !r.snapshot);
  const snaps = (v: string) => (data ?? []).filter((r) => r.snapshot && r.volume === v).length;

  const create = (e: FormEvent) => {
    e.preventDefault();
    void run('create', async () => {
      const r = await call('createVolume', { params: { storage }, body: { volume: form.volume.trim(), size: form.size.trim() } });
      setForm((f) => ({ ...f, volume: '' }));
      return `Created ${r.volume} (${fmtBytes(r.size)}).`;
    });
  };
  const resize = (e: FormEvent) => {
    e.preventDefault();
    if (!resizing) return;
    const { volume, size } = resizing;
    void run(`resize-${volume}`, async () => {
      const r = await call('resizeVolume', { params: { storage, volume }, body: { size: size.trim() } });
      setResizing(null);
      return `Resized ${storage}/${volume}: ${fmtBytes(r.from)} → ${fmtBytes(r.to)}${r.live ? ` (${r.live})` : ''}.`;
    });
  };
  const remove = (volume: string) => {
    if (!window.confirm(`Delete the volume ${storage}/${volume}? Its data is gone for good.`)) return;
    void run(`delete-${volume}`, async () => {
      const r = await call('deleteVolume', { params: { storage, volume } });
      return `Deleted ${r.removed}.`;
    });
  };

  return (
    <section className="card" style={{ marginTop: 14 }} aria-labelledby="h-volumes">
      <h2 id="h-volumes" style={{ marginTop: 0 }}>
        Volumes of <span className="mono">{storage}</span>
      </h2>
      <ErrorBox error={error} title="Could not list the volumes" />
      <ErrorBox error={failure} title="Volume" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      {data && volumes.length === 0 && <p>No volumes in this storage.</p>}
      {volumes.length > 0 && (
        <table aria-label={`Volumes of ${storage}`} data-testid="volumes">
          <thead>
            <tr>
              <th scope="col">Volume</th>
              <th scope="col" className="num">Size</th>
              <th scope="col" className="num">Snapshots</th>
              <th scope="col">Parent</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {volumes.map((v) => (
              <tr key={v.volume} data-volume={v.volume}>
                <th scope="row" className="mono">{v.volume}</th>
                <td className="num" data-testid="volume-size">{fmtBytes(v.size)}</td>
                <td className="num">{snaps(v.volume)}</td>
                <td className="mono">{v.parent ?? '–'}</td>
                <td>
                  {admin && (
                    <div className="row">
                      <button type="button" disabled={!!busy} onClick={() => setResizing({ volume: v.volume, size: fmtBytes(v.size).replace(/ ?([KMGT])iB$/, '$1').replace(/ B$/, '') })} aria-label={`Resize ${v.volume}`}>
                        Resize
                      </button>
                      <button type="button" className="danger" disabled={!!busy} onClick={() => remove(v.volume)} aria-label={`Delete ${v.volume}`}>
                        {busy === `delete-${v.volume}` ? 'Deleting…' : 'Delete'}
                      </button>
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {admin && resizing && (
        <form className="row" onSubmit={resize} aria-label={`Resize ${resizing.volume}`} style={{ marginTop: 10 }}>
          <label htmlFor="vol-resize">New size of {resizing.volume}</label>
          <input id="vol-resize" value={resizing.size} onChange={(e) => setResizing({ ...resizing, size: e.target.value })} required style={{ maxWidth: 120 }} />
          <button type="submit" className="primary" disabled={!!busy}>
            {busy === `resize-${resizing.volume}` ? 'Resizing…' : 'Resize'}
          </button>
          <button type="button" onClick={() => setResizing(null)}>Cancel</button>
        </form>
      )}
      {admin && (
        <>
          <h3>Create a volume</h3>
          <form className="grid" onSubmit={create} aria-label="Create a volume">
            <label htmlFor="vol-name">Name</label>
            <input id="vol-name" value={form.volume} onChange={(e) => setForm({ ...form, volume: e.target.value })} placeholder="web0" autoComplete="off" required />
            <label htmlFor="vol-size">Size</label>
            <input id="vol-size" value={form.size} onChange={(e) => setForm({ ...form, size: e.target.value })} required />
            <span />
            <div>
              <button type="submit" className="primary" disabled={!!busy}>
                {busy === 'create' ? 'Creating…' : 'Create volume'}
              </button>
            </div>
          </form>
        </>
      )}
    </section>
  );
}
