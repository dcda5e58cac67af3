/**
 * On a running VM's overview: its addresses, each marked by where it was seen — the DHCP lease of
 * a nat network, the guest agent, or both (GET /api/vms/NAME/addresses; the server asks the agent
 * for 1 s at most and keeps its answer 15 s). Asked again every 15 s while shown.
 */
import { useEffect } from 'react';
import { ApiFailure, call } from '../api.js';
import { useLoad } from '../useLoad.js';

const AGENT_NOTE: Record<string, string> = {
  off: 'No guest agent channel',
  unavailable: 'The guest agent does not answer',
  cached: 'The guest agent does not answer now: its last report',
};

export function VmAddresses({ name }: { name: string }) {
  const r = useLoad(() => call('vmAddresses', { params: { name } }), [name]);
  const { reload } = r;
  useEffect(() => {
    const t = setInterval(reload, 15_000);
    return () => clearInterval(t);
  }, [reload]);
  const d = r.data;
  return (
    <section className="card" style={{ flex: '1 1 380px' }} aria-labelledby="h-addresses" data-testid="vm-addresses">
      <h2 id="h-addresses" style={{ marginTop: 0 }}>Addresses</h2>
      {r.error ? (
        <p className="muted">Could not read the addresses{r.error instanceof ApiFailure ? ` (${r.error.code})` : ''}.</p>
      ) : !d ? (
        <p role="status">Looking…</p>
      ) : (
        <>
          {d.addresses.length ? (
            <table className="small">
              <thead>
                <tr>
                  <th scope="col">Address</th>
                  <th scope="col">Seen by</th>
                  <th scope="col">Interface</th>
                </tr>
              </thead>
              <tbody>
                {d.addresses.map((a) => (
                  <tr key={a.ip}>
                    <td className="mono">{a.prefix !== undefined ? `${a.ip}/${a.prefix}` : a.ip}</td>
                    <td data-testid="address-source">{a.sources.map((s) => (s === 'lease' ? `DHCP lease${a.network ? ` (${a.network})` : ''}` : 'guest agent')).join(', ')}</td>
                    <td className="mono">{[a.nic, a.iface, a.mac].filter(Boolean).join(' · ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p className="muted">No addresses known.</p>
          )}
          {AGENT_NOTE[d.agentState] && (
            <p className="muted small">
              {AGENT_NOTE[d.agentState]}
              {d.agentState === 'cached' && d.agentAt ? ` (${new Date(d.agentAt).toLocaleTimeString()})` : ''}.
            </p>
          )}
        </>
      )}
    </section>
  );
}
