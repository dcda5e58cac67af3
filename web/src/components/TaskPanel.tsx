/**
 * The task log at the bottom of every page, as Proxmox has it: the newest tasks (every mutating
 * API call: starts, stops, disks, backups, …) with owner, state and a progress bar, updated live
 * from the event stream's `task` events; a row opens that task's log, which grows as lines come
 * in and stays after the task ended. A task whose operation can stop safely (a disk create or
 * convert, a backup's block jobs, an upload, a migration leaving this host) has a Cancel button in
 * its row and in its log. Collapsible; its height is reserved so it never covers the page.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { TaskDto, TaskSummaryDto } from '../../../src/api/contract-metrics.js';
import { call } from '../api.js';
import { ErrorBox } from './ErrorBox.js';
import { useEvents } from '../live.js';

const KEEP = 50;
const time = (iso?: string) => (iso ? new Date(iso).toLocaleTimeString() : '');
const took = (t: TaskSummaryDto) => (t.endedAt ? `${((Date.parse(t.endedAt) - Date.parse(t.startedAt)) / 1000).toFixed(1)} s` : '');

function Progress({ t }: { t: TaskSummaryDto }) {
  if (t.progress === null) return <span className="muted">{t.state === 'running' ? 'running…' : ''}</span>;
  return (
    <span className="task-progress">
      <progress max={100} value={t.progress} aria-label={`${t.kind} progress`} /> {Math.floor(t.progress)}%
    </span>
  );
}

export function TaskPanel() {
  // Open by default, but closed on a phone (it would take a third of the screen) unless opened there.
  const [open, setOpen] = useState(() => {
    const v = sessionStorage.getItem('kvmctl.tasks');
    return v ? v === 'open' : window.innerWidth > 700;
  });
  const [tasks, setTasks] = useState<TaskSummaryDto[]>([]);
  const [sel, setSel] = useState<TaskDto | null>(null);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const cancel = (id: string) => {
    setCancelError(null);
    call('cancelTask', { params: { id } }).catch(setCancelError);
  };
  const selId = useRef<string | null>(null);
  const logEnd = useRef<HTMLDivElement>(null);
  const reloadTimer = useRef<ReturnType<typeof setTimeout>>(undefined);

  const load = useCallback(() => {
    call('listTasks', { query: { limit: String(KEEP) } }).then(setTasks, () => undefined);
  }, []);
  useEffect(load, [load]);

  useEvents(
    useCallback(
      (e) => {
        if (e.kind === 'reset') return load();
        // Tasks of kvmctl CLI commands are files, not events: a state change (their start or stop) reloads the list.
        if (e.kind === 'state') {
          clearTimeout(reloadTimer.current);
          reloadTimer.current = setTimeout(load, 500);
          return;
        }
        if (e.kind !== 'task') return;
        const t = e.task;
        // A task never runs again once it ended: an older event (the stream replays its recent ones to a
        // freshly loaded page) must not turn an ended row back to running.
        setTasks((old) => {
          const had = old.find((x) => x.id === t.id);
          if (had && had.state !== 'running' && t.state === 'running') return old;
          return [t, ...old.filter((x) => x.id !== t.id)].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, KEEP);
        });
        if (selId.current === t.id) {
          setSel((s) => {
            if (!s || s.id !== t.id || (s.state !== 'running' && t.state === 'running')) return s;
            const log = e.action === 'log' && e.line && s.log.length < t.logLines ? [...s.log, e.line] : s.log;
            return { ...s, ...t, log };
          });
          // A finished task's result is only in the full record.
          if (e.action === 'ended') call('getTask', { params: { id: t.id } }).then((full) => selId.current === t.id && setSel(full), () => undefined);
        }
      },
      [load],
    ),
  );

  const pick = (id: string) => {
    if (selId.current === id) {
      selId.current = null;
      setSel(null);
      return;
    }
    selId.current = id;
    call('getTask', { params: { id } }).then((t) => selId.current === id && setSel(t), () => undefined);
  };
  // A block body: newer Chromium returns a Promise from scrollIntoView, and an effect may return only a cleanup.
  useEffect(() => {
    void logEnd.current?.scrollIntoView({ block: 'nearest' });
  }, [sel?.log.length]);

  const toggle = () => {
    sessionStorage.setItem('kvmctl.tasks', open ? 'closed' : 'open');
    setOpen(!open);
  };
  const running = tasks.filter((t) => t.state === 'running').length;

  return (
    <>
      <div className={`tasks-spacer${open ? ' open' : ''}`} aria-hidden="true" />
      <section className={`tasks-panel${open ? ' open' : ''}`} aria-label="Tasks" data-testid="task-panel">
        <div className="tasks-head">
          <button type="button" aria-expanded={open} aria-controls="tasks-body" onClick={toggle}>
            {open ? '▾' : '▸'} Tasks
          </button>
          <span className="muted" role="status">
            {running ? `${running} running` : tasks.length ? `last: ${tasks[0]!.kind} ${tasks[0]!.target ?? ''} ${tasks[0]!.state}` : 'no tasks yet'}
          </span>
        </div>
        {open && (
          <div id="tasks-body" className="tasks-body">
            <ErrorBox error={cancelError} title="Could not cancel the task" />
            <div className="tasks-list">
              <table>
                <thead>
                  <tr>
                    <th>Started</th>
                    <th>Task</th>
                    <th>Target</th>
                    <th>Owner</th>
                    <th>State</th>
                    <th>Progress</th>
                    <th className="num">Took</th>
                  </tr>
                </thead>
                <tbody>
                  {tasks.map((t) => (
                    <tr key={t.id} data-task={t.id} data-state={t.state} aria-selected={sel?.id === t.id} className={sel?.id === t.id ? 'selected' : ''}>
                      <td className="mono">{time(t.startedAt)}</td>
                      <td>
                        <button type="button" className="link" onClick={() => pick(t.id)} aria-label={`${t.kind} ${t.target ?? ''}: show log`}>
                          {t.kind}
                        </button>
                      </td>
                      <td className="mono">{t.target ?? '–'}</td>
                      <td>{t.owner}</td>
                      <td>
                        <span className={`task-state ${t.state}`} title={t.error ? `${t.error.code}: ${t.error.message}` : undefined}>
                          {t.state}
                        </span>
                        {t.cancellable && t.state === 'running' && (
                          <>
                            {' '}
                            <button type="button" className="link danger" onClick={() => cancel(t.id)} aria-label="Cancel this task" title={`Cancel ${t.kind} ${t.target ?? ''}`.trim()}>
                              cancel
                            </button>
                          </>
                        )}
                      </td>
                      <td>
                        <Progress t={t} />
                      </td>
                      <td className="num">{took(t)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {sel && (
              <div className="tasks-log" data-testid="task-log" data-task={sel.id} data-state={sel.state} aria-label={`Log of ${sel.kind}`}>
                <div className="row">
                  <strong>
                    {sel.kind} <span className="mono">{sel.target}</span>
                  </strong>
                  <span className={`task-state ${sel.state}`}>{sel.state}</span>
                  <Progress t={{ ...sel, logLines: sel.log.length }} />
                  <span className="spacer" />
                  {sel.cancellable && sel.state === 'running' && (
                    <button type="button" className="danger" onClick={() => cancel(sel.id)}>
                      Cancel
                    </button>
                  )}
                </div>
                <pre className="mono">
                  {sel.log.map((l) => `${time(l.at)}  ${l.line}`).join('\n')}
                  {sel.error ? `\n${sel.error.hint ? `hint: ${sel.error.hint}` : ''}` : ''}
                </pre>
                <div ref={logEnd} />
              </div>
            )}
          </div>
        )}
      </section>
    </>
  );
}
