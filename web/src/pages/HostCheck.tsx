/** The host check (what this machine can run, and how to fix what is missing) and KSM. */
import { call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { useLoad } from '../useLoad.js';

const CLS = { PASS: 'check-ok', WARN: 'check-warn', FAIL: 'check-fail' } as const;

export function HostCheck() {
  const check = useLoad(() => call('hostCheck'), []);
  const ksm = useLoad(() => call('ksm'), []);
  const c = check.data;
  return (
    <>
      <div className="row">
        <h1>Host check</h1>
        <span className="spacer" />
        <button type="button" onClick={() => (check.reload(), ksm.reload())} disabled={check.loading}>
          Run again
        </button>
      </div>
      <ErrorBox error={check.error} title="Could not check the host" />
      {check.loading && !c && <p role="status">Checking the host…</p>}
      {c && (
        <>
          <p aria-label="Summary">
            Kernel <span className="mono">{c.kernel}</span> · accelerator <strong>{c.summary.accel.toUpperCase()}</strong> · <span className="check-ok">{c.summary.pass} pass</span>,{' '}
            <span className="check-warn">{c.summary.warn} warn</span>, <span className="check-fail">{c.summary.fail} fail</span>
          </p>
          <table aria-label="Host checks">
            <thead>
              <tr>
                <th scope="col">Result</th>
                <th scope="col">Check</th>
                <th scope="col">Detail</th>
                <th scope="col">How to fix</th>
              </tr>
            </thead>
            <tbody>
              {c.items.map((i) => (
                <tr key={i.id}>
                  <td className={CLS[i.status]}>{i.status}</td>
                  <th scope="row" style={{ fontWeight: 'normal' }}>{i.title}</th>
                  <td>
                    {i.detail}
                    {i.cost && <div className="muted" style={{ fontSize: 13 }}>{i.cost}</div>}
                  </td>
                  <td style={{ fontSize: 13 }}>
                    {i.fix}
                    {i.debian && <div className="mono">{i.debian}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h2>KSM (memory deduplication)</h2>
      <ErrorBox error={ksm.error} title="Could not read KSM" />
      {ksm.data && (
        <p>
          {ksm.data.run === 1 ? 'Running' : 'Stopped'} · saves <strong>{fmtBytes(ksm.data.savedBytes)}</strong> · {ksm.data.pagesSharing} pages sharing {ksm.data.pagesShared} · {ksm.data.fullScans} full scans
        </p>
      )}
    </>
  );
}
