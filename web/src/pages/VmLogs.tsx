/** A VM's logs: the end of its qemu.log (QEMU's own messages) and of its serial.log (what the guest printed). */
import { useEffect, useRef, useState } from 'react';
import { ApiFailure, call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { useLoad } from '../useLoad.js';

/** A terminal's bytes as plain text: escape sequences (colours, cursor queries) and other control characters out. */
export const plainText = (t: string): string =>
  t
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '')
    .replace(/\r\n?/g, '\n')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');

export function VmLogs({ name, running }: { name: string; running: boolean }) {
  const [which, setWhich] = useState<'qemu' | 'serial'>('serial');
  const { data, error, reload } = useLoad(() => call('vmLog', { params: { name, which } }), [name, which]);
  const pre = useRef<HTMLPreElement>(null);
  // Follow the log while the VM runs.
  useEffect(() => {
    if (!running) return;
    const t = setInterval(reload, 3000);
    return () => clearInterval(t);
  }, [running, reload]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [data?.text]);
  const none = error instanceof ApiFailure && error.status === 404;
  return (
    <section className="card" aria-labelledby="h-logs">
      <div className="row">
        <h2 id="h-logs" style={{ margin: 0 }}>Logs</h2>
        <span className="spacer" />
        <div role="group" aria-label="Which log" className="row">
          <button type="button" aria-pressed={which === 'serial'} className={which === 'serial' ? 'primary' : ''} onClick={() => setWhich('serial')}>
            Serial log
          </button>
          <button type="button" aria-pressed={which === 'qemu'} className={which === 'qemu' ? 'primary' : ''} onClick={() => setWhich('qemu')}>
            QEMU log
          </button>
          <button type="button" onClick={reload}>
            Refresh
          </button>
        </div>
      </div>
      {none ? <p className="muted">{error.message}.</p> : <ErrorBox error={error} title="Could not read the log" />}
      {data && (
        <>
          <p className="muted">
            <span className="mono">{data.file}</span>, {fmtBytes(data.sizeBytes)}
            {data.truncated ? ' (the last 64 KiB)' : ''}
            {running ? '; refreshed every 3 s' : ''}
          </p>
          <pre ref={pre} className="log mono" data-testid={`log-${which}`} tabIndex={0} aria-label={`${which} log of ${name}`}>
            {plainText(data.text) || '(empty)'}
          </pre>
        </>
      )}
    </section>
  );
}
