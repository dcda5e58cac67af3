/**
 * ISO images in the images root's iso/ folder: the list, an upload with a progress bar (streamed
 * to the server, over its size limit refused before it starts), cancel, delete. Insert one into a
 * running VM's CD-ROM on the VM's Hardware tab.
 */
import { useRef, useState, type FormEvent } from 'react';
import { call, fmtBytes, upload } from '../api.js';
import { ErrorBox } from './ErrorBox.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,195}\.iso$/i;

export function IsoPanel() {
  const me = useMe();
  const admin = can(me, 'admin');
  const list = useLoad(() => call('listIsos'), []);
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [sent, setSent] = useState<{ sent: number; total: number } | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const abort = useRef<(() => void) | null>(null);
  const max = list.data?.maxUploadBytes;
  const nameOk = NAME_RE.test(name);
  const tooBig = !!file && max !== undefined && file.size > max;

  const pick = (f: File | null) => {
    setFile(f);
    setNotice('');
    setFailure(null);
    setName(f ? f.name.replace(/[^A-Za-z0-9_.+-]/g, '_').replace(/^[^A-Za-z0-9]+/, '') : '');
  };
  const start = async (e: FormEvent) => {
    e.preventDefault();
    if (!file || !nameOk || tooBig) return;
    setFailure(null);
    setNotice('');
    setSent({ sent: 0, total: file.size });
    const u = upload('uploadIso', file, { params: { file: name }, onProgress: (s, t) => setSent({ sent: s, total: t }) });
    abort.current = u.abort;
    try {
      const r = await u.done;
      pick(null);
      setNotice(`${r.name} uploaded (${fmtBytes(r.sizeBytes)}) to ${r.path}.`);
    } catch (err) {
      setFailure(err);
    } finally {
      abort.current = null;
      setSent(null);
      list.reload();
    }
  };
  const remove = async (n: string) => {
    if (!window.confirm(`Delete the ISO ${n}?`)) return;
    setFailure(null);
    try {
      await call('deleteIso', { params: { file: n } });
      setNotice(`${n} deleted.`);
    } catch (err) {
      setFailure(err);
    }
    list.reload();
  };

  return (
    <section className="card" aria-labelledby="h-isos" style={{ marginTop: 14 }}>
      <h2 id="h-isos" style={{ marginTop: 0 }}>ISO images</h2>
      <ErrorBox error={list.error} title="Could not list the ISOs" />
      <ErrorBox error={failure} title="ISO" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      {list.data && (
        <p className="muted">
          In <span className="mono">{list.data.dir}</span> (insert one into a running VM&apos;s CD-ROM on its Hardware tab).
        </p>
      )}
      <div className="scroll-x">
        <table aria-label="ISO images" data-testid="isos">
          <thead>
            <tr>
              <th scope="col">ISO</th>
              <th scope="col" className="num">Size</th>
              <th scope="col">Modified</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data?.isos.map((i) => (
              <tr key={i.name} data-iso={i.name}>
                <th scope="row" className="mono">{i.name}</th>
                <td className="num">{fmtBytes(i.sizeBytes)}</td>
                <td>{new Date(i.modified).toLocaleString()}</td>
                <td>
                  {admin && (
                    <button type="button" className="danger" onClick={() => remove(i.name)} aria-label={`Delete ${i.name}`}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {list.data?.isos.length === 0 && (
              <tr>
                <td colSpan={4} className="muted">
                  No ISO images yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {admin && (
        <form className="grid" onSubmit={start} aria-label="Upload an ISO" style={{ marginTop: 10 }}>
          <label htmlFor="iso-file">ISO file</label>
          <input id="iso-file" type="file" accept=".iso,application/x-iso9660-image" onChange={(e) => pick(e.target.files?.[0] ?? null)} disabled={!!sent} />
          <label htmlFor="iso-name">Save as</label>
          <div>
            <input id="iso-name" value={name} onChange={(e) => setName(e.target.value)} aria-invalid={!!name && !nameOk} aria-describedby="iso-name-help" disabled={!!sent} />
            <div id="iso-name-help" className={name && !nameOk ? 'field-error' : 'muted'}>
              {name && !nameOk ? 'letters, digits, "_", ".", "+" and "-", ending in .iso' : 'a plain file name ending in .iso'}
              {tooBig && max !== undefined && <> — {fmtBytes(file!.size)} is over the server&apos;s limit of {fmtBytes(max)}</>}
            </div>
          </div>
          <span />
          <div className="row">
            <button type="submit" className="primary" disabled={!file || !nameOk || tooBig || !!sent}>
              Upload
            </button>
            {sent && (
              <>
                <progress max={sent.total || 1} value={sent.sent} aria-label="Upload progress" data-testid="iso-progress" />
                <span role="status">
                  {fmtBytes(sent.sent)} of {fmtBytes(sent.total)} ({sent.total ? Math.floor((sent.sent / sent.total) * 100) : 0}%)
                </span>
                <button type="button" onClick={() => abort.current?.()}>
                  Cancel upload
                </button>
              </>
            )}
          </div>
        </form>
      )}
    </section>
  );
}
