/**
 * The UI's typed client of `kvmctl serve`. Imports only schemas/types and the route table from the
 * API contract (src/api/contract.ts), so the UI and the server cannot disagree on a path or a shape.
 *
 * Auth: on TCP the server wants `Authorization: Bearer TOKEN` (WebSockets: `?token=`). The token
 * comes from the page URL once (`/?token=…`, then removed from the address bar) or from the login
 * form, and is kept in sessionStorage for this tab only.
 */
import type { z } from 'zod';
import { apiErrorSchema, routePath, routes, type ApiError, type RouteName } from '../../src/api/contract.js';

type R = typeof routes;
type Schema<N extends RouteName, K extends string> = R[N] extends { [P in K]: infer S extends z.ZodType } ? S : never;
export type Response<N extends RouteName> = [Schema<N, 'response'>] extends [never] ? unknown : z.output<Schema<N, 'response'>>;
export type Body<N extends RouteName> = [Schema<N, 'body'>] extends [never] ? undefined : z.input<Schema<N, 'body'>>;
type Params<N extends RouteName> = R[N] extends { params: infer S extends z.ZodType } ? z.input<S> : undefined;

/** A failed request: the server's {code, message, hint, issues} plus the HTTP status. */
export class ApiFailure extends Error implements ApiError {
  code: string;
  hint?: string;
  issues?: { path: string; message: string }[];
  constructor(
    public status: number,
    e: ApiError,
  ) {
    super(e.message);
    this.code = e.code;
    this.hint = e.hint;
    this.issues = e.issues;
  }
}

const TOKEN_KEY = 'kvmctl.token';

export function takeTokenFromUrl(): void {
  const u = new URL(location.href);
  const t = u.searchParams.get('token');
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    u.searchParams.delete('token');
    history.replaceState(null, '', u.pathname + u.search + u.hash);
  }
}
export const getToken = (): string => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const setToken = (t: string): void => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY));

/** Called on every 401, so the app can ask for a token. */
let onUnauthorized: () => void = () => {};
export const setUnauthorizedHandler = (f: () => void): void => {
  onUnauthorized = f;
};

export async function call<N extends RouteName>(
  name: N,
  opts: { params?: Params<N>; query?: Record<string, string>; body?: Body<N>; signal?: AbortSignal } = {},
): Promise<Response<N>> {
  const route = routes[name];
  let url = routePath(route.path, (opts.params ?? {}) as Record<string, string>);
  if (opts.query) url += `?${new URLSearchParams(opts.query)}`;
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (route.method !== 'GET') {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body ?? {});
  }
  let res: globalThis.Response;
  try {
    res = await fetch(url, { method: route.method, headers, body, signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiFailure(0, { code: 'NETWORK', message: `cannot reach the kvmctl server (${(e as Error).message})`, hint: 'is `kvmctl serve` still running?' });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401) onUnauthorized();
    const e = apiErrorSchema.safeParse(json);
    throw new ApiFailure(res.status, e.success ? e.data : { code: `HTTP_${res.status}`, message: text.slice(0, 300) || res.statusText });
  }
  return json as Response<N>;
}

/**
 * A raw upload (a route with `upload:` in the contract): the file as the body, with upload
 * progress (XMLHttpRequest: fetch reports none). `abort()` stops it; the server keeps nothing.
 */
export function upload<N extends RouteName>(
  name: N,
  file: Blob,
  opts: { params?: Params<N>; query?: Record<string, string>; onProgress?: (sent: number, total: number) => void } = {},
): { done: Promise<Response<N>>; abort: () => void } {
  const route = routes[name] as { method: string; path: string; upload?: string };
  let url = routePath(route.path, (opts.params ?? {}) as Record<string, string>);
  if (opts.query) url += `?${new URLSearchParams(opts.query)}`;
  const xhr = new XMLHttpRequest();
  const done = new Promise<Response<N>>((resolve, reject) => {
    xhr.open(route.method, url);
    const token = getToken();
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', route.upload ?? 'application/octet-stream');
    xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onerror = () => reject(new ApiFailure(0, { code: 'NETWORK', message: 'the upload was cut off', hint: 'is `kvmctl serve` still running? nothing was kept' }));
    xhr.onabort = () => reject(new ApiFailure(0, { code: 'UPLOAD_CANCELLED', message: 'upload cancelled', hint: 'nothing was kept' }));
    xhr.onload = () => {
      let json: unknown;
      try {
        json = xhr.responseText ? JSON.parse(xhr.responseText) : undefined;
      } catch {
        json = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(json as Response<N>);
      if (xhr.status === 401) onUnauthorized();
      const e = apiErrorSchema.safeParse(json);
      reject(new ApiFailure(xhr.status, e.success ? e.data : { code: `HTTP_${xhr.status}`, message: xhr.responseText.slice(0, 300) || xhr.statusText }));
    };
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** ws(s)://this-host/PATH?token=… for a WebSocket route. */
export function wsUrl(name: 'serial' | 'vnc' | 'events', params: Record<string, string> = {}, query: Record<string, string> = {}): string {
  const u = new URL(routePath(routes[name].path, params), location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = getToken();
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  if (token) u.searchParams.set('token', token);
  return u.toString();
}

/** "nics[1].mac" ← ["nics", 1, "mac"]; also accepts the string form. */
export function pathKey(p: string | (string | number)[]): string {
  if (typeof p === 'string') return p;
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${u[i]}`;
}

export function fmtDuration(sec: number | undefined): string {
  if (sec === undefined) return '–';
  const s = Math.floor(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
