/** One VM: status and metrics, power buttons, its definition (view/edit), snapshots, backups, logs, serial and VNC consoles. */
import { lazy, Suspense, useCallback, useEffect, useRef, useState } from 'react';
import { ApiFailure, call, fmtBytes, fmtDuration, wsUrl } from '../api.js';
import { ErrorBox, StateBadge } from '../components/ErrorBox.js';
import { Sparkline } from '../components/Sparkline.js';
import { VmManage } from '../components/VmManage.js';
import { VmAddresses } from '../components/VmAddresses.js';
import { VmHardware } from '../components/VmHardware.js';
import { YamlEditor, type Issue } from '../components/YamlEditor.js';
import { useLeaveGuard } from '../leave-guard.js';
import { useEvents, useMetrics } from '../live.js';
import { go, href, type VmTab } from '../router.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';
import { VmBackups } from './VmBackups.js';
import { VmDevices } from './VmDevices.js';
import { VmLogs } from './VmLogs.js';
import { VmSnapshots } from './VmSnapshots.js';

// The consoles are loaded when first opened (xterm.js and noVNC are most of the bundle).
const SerialConsole = lazy(() => import('../components/SerialConsole.js').then((m) => ({ default: m.SerialConsole })));
const MetricGraphs = lazy(() => import('./MetricGraphs.js').then((m) => ({ default: m.MetricGraphs })));
const VncConsole = lazy(() => import('../components/VncConsole.js').then((m) => ({ default: m.VncConsole })));

type Action = 'startVm' | 'stopVm' | 'killVm' | 'restartVm' | 'resetVm' | 'pauseVm' | 'resumeVm' | 'deleteVm';
const LABEL: Record<Action, [string, string]> = {
  startVm: ['Start', 'Starting…'],
  stopVm: ['Stop', 'Stopping…'],
  killVm: ['Force stop', 'Forcing off…'],
  restartVm: ['Restart', 'Restarting…'],
  resetVm: ['Reset', 'Resetting…'],
  pauseVm: ['Pause', 'Pausing…'],
  resumeVm: ['Resume', 'Resuming…'],
  deleteVm: ['Delete', 'Deleting…'],
};

export function VmDetail({ name, tab }: { name: string; tab: VmTab }) {
  const { data, error, reload } = useLoad(() => call('getVm', { params: { name } }), [name]);
  const [busy, setBusy] = useState<Action | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const me = useMe();
  useEvents(
    useCallback(
      (e) => {
        if (e.kind === 'reset' || ((e.kind === 'state' || e.kind === 'definition') && e.vm === name)) reload();
      },
      [reload, name],
    ),
  );

  const state = data?.status.state ?? 'stopped';
  const running = state === 'running' || state === 'paused';
  const display = (data?.spec.display as { type?: string } | undefined)?.type ?? 'none';
  const tabs: { id: VmTab; label: string; show: boolean }[] = [
    { id: 'overview', label: 'Overview', show: true },
    { id: 'graphs', label: 'Graphs', show: true },
    { id: 'definition', label: 'Definition', show: true },
    { id: 'hardware', label: 'Hardware', show: true },
    { id: 'snapshots', label: 'Snapshots', show: true },
    { id: 'backups', label: 'Backups', show: true },
    { id: 'logs', label: 'Logs', show: can(me, 'operator') },
    // Consoles are for operators and admins (a viewer's WebSocket is refused with 403).
    { id: 'serial', label: 'Serial console', show: (data?.spec.serial ?? 'socket') !== 'none' && can(me, 'operator') },
    { id: 'vnc', label: 'Graphical console', show: display === 'vnc' && can(me, 'operator') },
  ];

  const act = async (a: Action) => {
    if (a === 'deleteVm' && !window.confirm(`Delete the definition of ${name}? Its disk images are kept.`)) return;
    if (a === 'killVm' && !window.confirm(`Force ${name} off? The guest gets no chance to shut down cleanly.`)) return;
    if (a === 'resetVm' && !window.confirm(`Reset ${name}? Like pressing the reset button: the guest reboots at once, unsaved data in it is lost.`)) return;
    setBusy(a);
    setActionError(null);
    setNotice('');
    try {
      if (a === 'deleteVm') {
        await call('deleteVm', { params: { name } });
        go(href.vms());
        return;
      }
      const r = await call(a, { params: { name }, body: {} } as never);
      if (a === 'stopVm' || a === 'killVm') {
        const s = r as { how: string; tookMs: number };
        setNotice(`Stopped (${s.how}) in ${(s.tookMs / 1000).toFixed(1)} s.`);
      } else if (a === 'startVm') {
        const s = r as { accel: string; warnings: string[] };
        setNotice(`Started with ${s.accel.toUpperCase()}.${s.warnings.length ? ` Warnings: ${s.warnings.join('; ')}` : ''}`);
      }
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
      reload();
    }
  };

  const btn = (a: Action, enabled: boolean, cls = '') => (
    <button type="button" className={cls} disabled={!enabled || busy !== null || !can(me, a === 'deleteVm' ? 'admin' : 'operator')} onClick={() => act(a)}>
      {busy === a ? LABEL[a][1] : LABEL[a][0]}
    </button>
  );

  return (
    <>
      <p style={{ margin: 0 }}>
        <a href={href.vms()}>← All VMs</a>
      </p>
      <div className="row">
        <h1>
          VM <span className="mono" style={{ fontSize: 20 }}>{name}</span>
        </h1>
        {data && <StateBadge state={state} testId="vm-state" />}
        <span className="spacer" />
        <div className="row" role="group" aria-label="Power">
          {btn('startVm', !running && !!data, 'primary')}
          {btn('stopVm', running)}
          {btn('killVm', running, 'danger')}
          {btn('restartVm', !!data)}
          {btn('resetVm', state === 'running')}
          {state === 'paused' ? btn('resumeVm', true) : btn('pauseVm', state === 'running')}
          {btn('deleteVm', !running && !!data, 'danger')}
        </div>
      </div>
      <ErrorBox error={error} title={`Could not load ${name}`} />
      <ErrorBox error={actionError} title="Action failed" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      {data && (
        <>
          <div className="tabs" role="tablist" aria-label={`${name} views`}>
            {tabs
              .filter((t) => t.show)
              .map((t) => (
                <button
                  key={t.id}
                  type="button"
                  role="tab"
                  id={`tab-${t.id}`}
                  aria-selected={tab === t.id}
                  aria-controls="vm-panel"
                  onClick={() => go(href.vm(name, t.id))}
                  onKeyDown={(e) => {
                    // Arrow keys move between tabs, as in any tab list.
                    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
                    const all = [...e.currentTarget.parentElement!.querySelectorAll<HTMLButtonElement>('[role=tab]')];
                    const i = all.indexOf(e.currentTarget) + (e.key === 'ArrowRight' ? 1 : -1);
                    all[(i + all.length) % all.length]?.focus();
                  }}
                >
                  {t.label}
                </button>
              ))}
          </div>
          <div role="tabpanel" id="vm-panel" aria-labelledby={`tab-${tab}`}>
            <Suspense fallback={<p role="status">Loading…</p>}>
            {tab === 'overview' && (
              <>
                <Overview name={name} detail={data} />
                <VmManage name={name} spec={data.spec} running={running} onChanged={reload} />
              </>
            )}
            {tab === 'hardware' && <><VmHardware name={name} spec={data.spec} running={running} /><VmDevices name={name} running={running} onChanged={reload} /></>}
            {tab === 'snapshots' && <VmSnapshots name={name} running={running} />}
            {tab === 'logs' && <VmLogs name={name} running={running} />}
            {tab === 'graphs' && <MetricGraphs vm={name} />}
            {tab === 'definition' && <Definition name={name} yaml={data.yaml} running={running} onSaved={reload} />}
            {tab === 'backups' && <VmBackups name={name} />}
            {tab === 'serial' && (running ? <SerialConsole url={wsUrl('serial', { name })} name={name} /> : <NotRunning name={name} what="serial console" />)}
            {tab === 'vnc' &&
              (display !== 'vnc' ? (
                <div className="card">This VM has no graphical display. Set <span className="mono">display: vnc</span> in its definition.</div>
              ) : running ? (
                <VncConsole url={wsUrl('vnc', { name })} name={name} />
              ) : (
                <NotRunning name={name} what="graphical console" />
              ))}
            </Suspense>
          </div>
        </>
      )}
    </>
  );
}

function NotRunning({ name, what }: { name: string; what: string }) {
  return <div className="card">{name} is not running: start it to open its {what}.</div>;
}

type Detail = NonNullable<Awaited<ReturnType<typeof call<'getVm'>>>>;

function Overview({ name, detail }: { name: string; detail: Detail }) {
  const metrics = useMetrics();
  const m = metrics.latest?.vms.find((v) => v.name === name);
  const cpu = metrics.cpu[name] ?? [];
  const s = detail.status;
  const spec = detail.spec as { cpu?: { count?: number; model?: string }; memory?: number; machine?: { type?: string }; description?: string };
  return (
    <div className="row" style={{ alignItems: 'flex-start', gap: 14 }}>
      <section className="card" style={{ flex: '1 1 380px' }} aria-labelledby="h-status">
        <h2 id="h-status" style={{ marginTop: 0 }}>Status</h2>
        <dl className="kv">
          <dt>State</dt>
          <dd>
            <StateBadge state={s.state} /> {s.qemuStatus && <span className="muted">({s.qemuStatus})</span>}
          </dd>
          {s.reason && (
            <>
              <dt>Reason</dt>
              <dd>{s.reason}</dd>
            </>
          )}
          <dt>PID</dt>
          <dd className="mono">{s.pid ?? '–'}</dd>
          <dt>Accelerator</dt>
          <dd>{s.accel?.toUpperCase() ?? '–'}</dd>
          <dt>Uptime</dt>
          <dd>{fmtDuration(m?.uptimeSec ?? s.uptimeSec)}</dd>
          {s.lastExit && (
            <>
              <dt>Last exit</dt>
              <dd>
                {s.lastExit.how} at {new Date(s.lastExit.at).toLocaleString()}
                {s.lastExit.reason && ` — ${s.lastExit.reason}`}
              </dd>
            </>
          )}
          <dt>Machine</dt>
          <dd>
            {spec.machine?.type ?? '–'}, {spec.cpu?.count ?? '?'} vCPU ({spec.cpu?.model ?? '?'}), {fmtBytes(spec.memory)}
          </dd>
          {detail.supervision && (
            <>
              <dt>Restart policy</dt>
              <dd>
                {detail.supervision.policy}, {detail.supervision.restarts}/{detail.supervision.maxRetries} restarts
                {detail.supervision.gaveUp && ' (gave up)'}
              </dd>
            </>
          )}
        </dl>
      </section>
      {(s.state === 'running' || s.state === 'paused') && <VmAddresses name={name} />}
      {(s.state === 'running' || s.state === 'paused') && agentOn(detail.spec) && <AgentCard name={name} />}
      <section className="card" style={{ flex: '1 1 380px' }} aria-labelledby="h-metrics">
        <h2 id="h-metrics" style={{ marginTop: 0 }}>Metrics</h2>
        {!m ? (
          <p className="muted">No metrics: the VM is not running.</p>
        ) : (
          <dl className="kv">
            <dt>CPU</dt>
            <dd className="row">
              <Sparkline values={cpu} max={100} width={220} height={36} label={`CPU of ${name}`} /> {m.cpuPercent === null ? '…' : `${m.cpuPercent.toFixed(0)}%`}
            </dd>
            <dt>CPU time</dt>
            <dd>{m.cpuSec.toFixed(1)} s</dd>
            <dt>RSS</dt>
            <dd>{fmtBytes(m.rssBytes)}</dd>
            {m.block.map((b) => (
              <div key={b.device} style={{ display: 'contents' }}>
                <dt>Disk {b.device}</dt>
                <dd>
                  read {fmtBytes(b.rdBytes)}, written {fmtBytes(b.wrBytes)}
                </dd>
              </div>
            ))}
            {m.net.map((n) => (
              <div key={n.ifname} style={{ display: 'contents' }}>
                <dt>NIC {n.ifname}</dt>
                <dd>
                  rx {fmtBytes(n.rxBytes)}, tx {fmtBytes(n.txBytes)}
                </dd>
              </div>
            ))}
          </dl>
        )}
      </section>
      {detail.guestMounts.length > 0 && (
        <section className="card" style={{ flex: '1 1 100%' }}>
          <h2 style={{ marginTop: 0 }}>Mount the shares in the guest</h2>
          <pre className="mono">{detail.guestMounts.join('\n')}</pre>
        </section>
      )}
    </div>
  );
}

function Definition({ name, yaml, running, onSaved }: { name: string; yaml: string; running: boolean; onSaved: () => void }) {
  const [text, setText] = useState(yaml);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const dirty = text !== yaml;
  useLeaveGuard(dirty, `The definition of ${name} has unsaved changes. Leave and lose them?`);
  const base = useRef(yaml);
  useEffect(() => {
    // A change made elsewhere (CLI, another tab) replaces the text unless the user has edits.
    if (yaml !== base.current) {
      setText((t) => (t === base.current ? yaml : t));
      base.current = yaml;
    }
  }, [yaml]);

  const validate = async () => {
    setError(null);
    setNotice('');
    try {
      const r = await call('validate', { body: { yaml: text } });
      setIssues(r.issues);
      if (r.ok) setNotice('The definition is valid.');
    } catch (e) {
      setError(e);
    }
  };
  const save = async () => {
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      const r = await call('updateVm', { params: { name }, body: { yaml: text } });
      setIssues([]);
      setNotice(r.action === 'unchanged' ? 'No changes.' : `Saved (${r.action}).${running ? ' The running VM keeps its old settings until it is restarted.' : ''}`);
      base.current = text;
      onSaved();
    } catch (e) {
      if (e instanceof ApiFailure && e.issues?.length) setIssues(e.issues);
      else setIssues([]);
      setError(e instanceof ApiFailure && e.issues?.length ? null : e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-label="Definition">
      <YamlEditor id="vm-yaml" label={`Definition of ${name} (YAML)`} value={text} onChange={setText} issues={issues} />
      <ErrorBox error={error} title="Could not save" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <div className="row" style={{ marginTop: 8 }}>
        <button type="button" className="primary" onClick={save} disabled={busy || !dirty}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={validate}>Validate</button>
        <button type="button" onClick={() => (setText(yaml), setIssues([]), setNotice(''))} disabled={!dirty}>
          Revert
        </button>
        {dirty && <span className="muted">Unsaved changes</span>}
      </div>
    </section>
  );
}

/** The guest agent channel is on: `agent: true`, or the server/desktop profile without `agent: false`. */
function agentOn(spec: unknown): boolean {
  const v = spec as { agent?: boolean; profile?: string };
  return v.agent ?? (v.profile === 'server' || v.profile === 'desktop');
}

/** What the QEMU guest agent reports: OS, host name, addresses (GET /api/vms/NAME/agent[/interfaces]). */
function AgentCard({ name }: { name: string }) {
  const info = useLoad(() => call('agentInfo', { params: { name } }), [name]);
  const ifs = useLoad(() => call('agentInterfaces', { params: { name } }), [name]);
  // The agent starts late in a boot: ask again every 10 s until it answers.
  const { error, reload } = info;
  useEffect(() => {
    if (!error) return;
    const t = setInterval(() => {
      reload();
      ifs.reload();
    }, 10_000);
    return () => clearInterval(t);
  }, [error, reload, ifs.reload]);
  return (
    <section className="card" style={{ flex: '1 1 380px' }} aria-labelledby="h-agent">
      <h2 id="h-agent" style={{ marginTop: 0 }}>Guest agent</h2>
      {info.error ? (
        <p className="muted" data-testid="agent-none">
          No guest agent answers{info.error instanceof ApiFailure ? ` (${info.error.code})` : ''}: is qemu-guest-agent installed and running in the guest? Asking again every 10 s.
        </p>
      ) : !info.data ? (
        <p role="status">Asking the agent…</p>
      ) : (
        <dl className="kv" data-testid="agent-info">
          <dt>OS</dt>
          <dd>{info.data.os?.['pretty-name'] ?? info.data.os?.name ?? '–'}</dd>
          <dt>Host name</dt>
          <dd className="mono">{info.data.hostname ?? '–'}</dd>
          <dt>Agent</dt>
          <dd>qemu-ga {info.data.version}</dd>
          <dt>Filesystems</dt>
          <dd>{info.data.fsfreeze ?? '–'}</dd>
          <dt>Addresses</dt>
          <dd className="mono">{ifs.data?.flatMap((i) => i.addresses.map((a) => `${i.name} ${a}`)).join(', ') || '–'}</dd>
        </dl>
      )}
    </section>
  );
}
