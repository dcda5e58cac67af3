/**
 * Live data shared by every page: one events WebSocket (resumes after a reconnect with
 * `?since=lastId`; a `reset` or a new server id means "reload everything") and one metrics poller
 * that keeps the last samples of each VM's CPU % for the sparklines.
 */
import { useEffect, useSyncExternalStore } from 'react';
import type { KvmEvent, Metrics, ServerMessage } from '../../src/api/contract.js';
import { call, wsUrl } from './api.js';

/* ------------------------------------------------------------------ events */

type Listener = (e: KvmEvent | { kind: 'reset' }) => void;
const listeners = new Set<Listener>();
let ws: WebSocket | null = null;
let lastId = 0;
let serverId = '';
let retry = 0;
let connected = false;
const connListeners = new Set<() => void>();
const setConnected = (v: boolean) => {
  connected = v;
  connListeners.forEach((f) => f());
};

function emit(e: KvmEvent | { kind: 'reset' }): void {
  for (const l of listeners) l(e);
}

function connect(): void {
  if (ws || listeners.size === 0) return;
  const sock = new WebSocket(wsUrl('events', {}, { since: String(lastId) }));
  ws = sock;
  sock.onmessage = (m) => {
    let msg: ServerMessage;
    try {
      msg = JSON.parse(String(m.data)) as ServerMessage;
    } catch {
      return;
    }
    if (msg.type === 'hello') {
      retry = 0;
      setConnected(true);
      if (serverId && msg.serverId !== serverId) {
        lastId = 0;
        emit({ kind: 'reset' });
      }
      serverId = msg.serverId;
    } else if (msg.type === 'reset') {
      lastId = msg.lastId;
      emit({ kind: 'reset' });
    } else if (msg.type === 'event') {
      lastId = Math.max(lastId, msg.event.id);
      emit(msg.event);
    }
  };
  sock.onclose = () => {
    ws = null;
    setConnected(false);
    if (listeners.size === 0) return;
    retry = Math.min(retry + 1, 6);
    setTimeout(connect, 250 * 2 ** retry);
  };
}

/** Connect now (after sign-in) instead of at the next back-off retry. */
export function reconnectEvents(): void {
  retry = 0;
  connect();
}

/** Calls `f` for every event (and `{kind:'reset'}` when the page should reload its data). */
export function useEvents(f: Listener): void {
  useEffect(() => {
    listeners.add(f);
    connect();
    return () => {
      listeners.delete(f);
      if (listeners.size === 0 && ws) {
        const s = ws;
        ws = null;
        s.onclose = null;
        s.close();
        setConnected(false);
      }
    };
  }, [f]);
}

// Subscribe functions must keep their identity: a new one on each render makes React unsubscribe
// and subscribe again on every render (for the metrics poller: a sample per render, in a loop).
const subscribeConnected = (cb: () => void) => {
  connListeners.add(cb);
  return () => {
    connListeners.delete(cb);
  };
};
const getConnected = () => connected;

export function useEventsConnected(): boolean {
  return useSyncExternalStore(subscribeConnected, getConnected);
}

/* ------------------------------------------------------------------ metrics */

const KEEP = 40;
export type MetricsState = { latest: Metrics | null; cpu: Record<string, number[]>; error: string | null };
let mstate: MetricsState = { latest: null, cpu: {}, error: null };
const mlisteners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | null = null;

async function sample(): Promise<void> {
  try {
    const m = await call('metrics');
    const cpu: Record<string, number[]> = {};
    for (const vm of m.vms) {
      const prev = mstate.cpu[vm.name] ?? [];
      cpu[vm.name] = vm.cpuPercent === null ? prev : [...prev, vm.cpuPercent].slice(-KEEP);
    }
    mstate = { latest: m, cpu, error: null };
  } catch (e) {
    mstate = { ...mstate, error: (e as Error).message };
  }
  mlisteners.forEach((f) => f());
}

const INTERVAL_MS = 2000;

function subscribeMetrics(cb: () => void): () => void {
  mlisteners.add(cb);
  if (!timer) {
    void sample();
    timer = setInterval(() => void sample(), INTERVAL_MS);
  }
  return () => {
    mlisteners.delete(cb);
    if (mlisteners.size === 0 && timer) {
      clearInterval(timer);
      timer = null;
    }
  };
}
const getMetrics = () => mstate;

/** The latest metrics and each VM's CPU % history, sampled every 2 s while a page shows them. */
export function useMetrics(): MetricsState {
  return useSyncExternalStore(subscribeMetrics, getMetrics);
}
