/**
 * Who the signed-in token is (GET /api/whoami), asked once per token: the pages use it to show
 * only the buttons that token may press. The server decides regardless (src/api/auth.ts): this
 * only spares the user a 403.
 */
import { useEffect, useState } from 'react';
import { call, getToken, type Response } from './api.js';

export type Me = Response<'whoami'>;
const RANK = { viewer: 0, operator: 1, admin: 2 } as const;

let cached: { token: string; me: Promise<Me> } | undefined;
const listeners = new Set<() => void>();

function load(): Promise<Me> {
  const token = getToken();
  if (!cached || cached.token !== token) cached = { token, me: call('whoami') };
  return cached.me;
}

/** Forget the identity (after a sign-in with another token). */
export function resetMe(): void {
  cached = undefined;
  for (const l of listeners) l();
}

export function useMe(): Me | undefined {
  const [me, setMe] = useState<Me>();
  const [n, setN] = useState(0);
  useEffect(() => {
    const l = () => setN((x) => x + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  useEffect(() => {
    let live = true;
    load().then(
      (m) => live && setMe(m),
      () => live && setMe(undefined),
    );
    return () => {
      live = false;
    };
  }, [n]);
  return me;
}

/** May `me` do what needs `role`? Unknown (still loading): yes — the server still decides. */
export const can = (me: Me | undefined, role: keyof typeof RANK): boolean => !me || RANK[me.role] >= RANK[role];
