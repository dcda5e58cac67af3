/** Every VM with its state, CPU sparkline and memory; start/stop right from the list. */
import { useCallback, useState } from 'react';
import { call, fmtBytes, fmtDuration } from '../api.js';
import { ErrorBox, StateBadge } from '../components/ErrorBox.js';
import { Sparkline } from '../components/Sparkline.js';
import { useEvents, useMetrics } from '../live.js';
import { href } from '../router.js';
import { useLoad } from '../useLoad.js';

export function VmList() {
  const { data: vms, error, loading, reload } = useLoad(() => call('listVms'), []);
  const metrics = useMetrics();
  const [busy, setBusy] = useState<Record<string, 'startVm' | 'stopVm'>>({});
  const [actionError, setActionError] = useState<unknown>(null);
  useEvents(
    useCallback(
      (e) => {
        if (e.kind === 'reset' || e.kind === 'state' || e.kind === 'definition') reload();
      },
      [reload],
    ),
  );

  const act = async (name: string, what: 'startVm' | 'stopVm') => {
    setBusy((b) => ({ ...b, [name]: what }));
    setActionError(null);
    try {
      await call(what, { params: { name }, body: {} });
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy((b) => {
        const { [name]: _, ...rest } = b;
        return rest;
      });
      reload();
    }
  };

  const byName = new Map((metrics.latest?.vms ?? []).map((m) => [m.name, m]));
  const host = metrics.latest?.host;
  return (
    <>
      <div className="row">
        <h1>Virtual machines</h1>
        <span className="spacer" />
        <a className="button" href={href.create()}>New VM</a>
        <button type="button" onClick={reload} disabled={loading}>Refresh</button>
      </div>
      {host && (
        <p className="muted" aria-label="Host summary">
          Host: {host.cpus} CPUs, CPU {host.cpuPercent === null ? '–' : `${host.cpuPercent.toFixed(0)}%`}, load {host.loadavg.map((l) => l.toFixed(2)).join(' ')}, memory{' '}
          {fmtBytes(host.memTotalBytes - host.memAvailableBytes)} used of {fmtBytes(host.memTotalBytes)}, KSM saves {fmtBytes(host.ksmSavedBytes)}
        </p>
      )}
      <ErrorBox error={error} title="Could not list VMs" />
      <ErrorBox error={actionError} title="Action failed" />
      {vms && vms.length === 0 && (
        <div className="card">
          No VMs are defined yet. <a href={href.create()}>Create one</a>.
        </div>
      )}
      {vms && vms.length > 0 && (
        <table aria-label="Virtual machines">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col" className="num">vCPUs</th>
              <th scope="col" className="num">Memory</th>
              <th scope="col" className="num">Uptime</th>
              <th scope="col">CPU (last 80 s)</th>
              <th scope="col" className="num">RSS</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {vms.map((vm) => {
              const m = byName.get(vm.name);
              const cpu = metrics.cpu[vm.name] ?? [];
              const running = vm.state === 'running' || vm.state === 'paused';
              const last = cpu[cpu.length - 1];
              const inFlight = busy[vm.name];
              return (
                <tr key={vm.name} data-vm={vm.name}>
                  <th scope="row">
                    <a href={href.vm(vm.name)}>{vm.name}</a>
                    {vm.description && <div className="muted" style={{ fontWeight: 'normal', fontSize: 13 }}>{vm.description}</div>}
                    {vm.definitionError && <div className="field-error">{vm.definitionError}</div>}
                  </th>
                  <td>
                    <StateBadge state={vm.state} />
                  </td>
                  <td className="num">{vm.cpus ?? '–'}</td>
                  <td className="num">{fmtBytes(vm.memory)}</td>
                  <td className="num">{running ? fmtDuration(m?.uptimeSec ?? vm.uptimeSec) : '–'}</td>
                  <td>
                    {running ? (
                      <span className="row" style={{ flexWrap: 'nowrap' }}>
                        <Sparkline values={cpu} max={100} label={`CPU of ${vm.name}: ${last === undefined ? 'no sample yet' : `${last.toFixed(0)}%`}`} />
                        <span className="mono">{last === undefined ? '…' : `${last.toFixed(0)}%`}</span>
                      </span>
                    ) : (
                      <span className="muted">–</span>
                    )}
                  </td>
                  <td className="num">{running ? fmtBytes(m?.rssBytes ?? vm.rssBytes) : '–'}</td>
                  <td>
                    {/* The button of the action in flight stays while its state changes under it
                        (a stop passes through "stopping"/"stopped" before the call returns), each
                        labelled with its own action: never "Starting…" on a stop. */}
                    {(inFlight ? inFlight === 'stopVm' : running) ? (
                      <button type="button" onClick={() => act(vm.name, 'stopVm')} disabled={!!inFlight} aria-label={`Stop ${vm.name}`}>
                        {inFlight === 'stopVm' ? 'Stopping…' : 'Stop'}
                      </button>
                    ) : (
                      <button type="button" onClick={() => act(vm.name, 'startVm')} disabled={!!inFlight || !!vm.definitionError} aria-label={`Start ${vm.name}`}>
                        {inFlight === 'startVm' ? 'Starting…' : 'Start'}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </>
  );
}
