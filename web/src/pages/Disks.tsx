/** Image files in the images dir: list, details (qemu-img info), create; ISO images: upload, delete (components/IsoPanel.tsx). */
import { useState, type FormEvent } from 'react';
import { call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { IsoPanel } from '../components/IsoPanel.js';
import { useLoad } from '../useLoad.js';

export function Disks() {
  const { data, error, loading, reload } = useLoad(() => call('listDisks'), []);
  const [info, setInfo] = useState<{ path: string; text: string; inUse: boolean } | null>(null);
  const [infoError, setInfoError] = useState<unknown>(null);
  const [form, setForm] = useState({ path: '', size: '8G', format: 'qcow2' as 'qcow2' | 'raw' });
  const [createError, setCreateError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const showInfo = async (path: string) => {
    setInfoError(null);
    try {
      const r = await call('diskInfo', { query: { path } });
      setInfo({ path, text: JSON.stringify(r.info, null, 2), inUse: r.inUse });
      requestAnimationFrame(() => document.getElementById('disk-info')?.focus());
    } catch (e) {
      setInfoError(e);
    }
  };
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setCreateError(null);
    try {
      await call('createDisk', { body: { path: form.path.trim(), size: form.size.trim(), format: form.format } });
      setForm((f) => ({ ...f, path: '' }));
      reload();
    } catch (err) {
      setCreateError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <div className="row">
        <h1>Disks</h1>
        <span className="spacer" />
        <button type="button" onClick={reload} disabled={loading}>Refresh</button>
      </div>
      <ErrorBox error={error} title="Could not list disks" />
      {data && data.length === 0 && <div className="card">The images dir has no image files yet.</div>}
      {data && data.length > 0 && (
        <table aria-label="Disk images">
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col" className="num">Size on disk</th>
              <th scope="col">Modified</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {data.map((d) => (
              <tr key={d.path}>
                <th scope="row" className="mono">{d.path}</th>
                <td className="num">{fmtBytes(d.sizeBytes)}</td>
                <td>{new Date(d.modified).toLocaleString()}</td>
                <td>
                  <button type="button" onClick={() => showInfo(d.path)} aria-label={`Details of ${d.path}`}>
                    Info
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorBox error={infoError} title="Could not read the image" />
      {info && (
        <section className="card" style={{ marginTop: 14 }} aria-labelledby="disk-info">
          <h2 id="disk-info" tabIndex={-1} style={{ marginTop: 0 }}>
            <span className="mono">{info.path}</span> {info.inUse && <span className="state running">in use</span>}
          </h2>
          <pre className="mono" style={{ maxHeight: 300, overflow: 'auto' }}>{info.text}</pre>
          <button type="button" onClick={() => setInfo(null)}>Close</button>
        </section>
      )}
      <h2>Create an image</h2>
      <ErrorBox error={createError} title="Could not create the image" />
      <form className="grid card" onSubmit={create} aria-label="Create an image">
        <label htmlFor="disk-path">Path</label>
        <input id="disk-path" value={form.path} onChange={(e) => setForm({ ...form, path: e.target.value })} placeholder="data.qcow2" required />
        <label htmlFor="disk-size">Size</label>
        <input id="disk-size" value={form.size} onChange={(e) => setForm({ ...form, size: e.target.value })} required />
        <label htmlFor="disk-format">Format</label>
        <select id="disk-format" value={form.format} onChange={(e) => setForm({ ...form, format: e.target.value as 'qcow2' | 'raw' })}>
          <option value="qcow2">qcow2</option>
          <option value="raw">raw</option>
        </select>
        <span />
        <div>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create image'}
          </button>
        </div>
      </form>
      <IsoPanel />
    </>
  );
}
