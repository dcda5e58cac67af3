/** Hash routes (`#/vms/NAME/serial`): bookmarkable, no server-side routing needed. */
import { useEffect, useRef, useState } from 'react';
import { leaveMessage } from './leave-guard.js';

export type Route =
  | { page: 'vms' }
  | { page: 'vm'; name: string; tab: VmTab }
  | { page: 'create' }
  | { page: 'networks' }
  | { page: 'disks' }
  | { page: 'storage' }
  | { page: 'host' }
  | { page: 'users' }
  | { page: 'graphs' }
  | { page: 'cluster' }
  | { page: 'notfound'; path: string };

export const VM_TABS = ['overview', 'graphs', 'definition', 'hardware', 'snapshots', 'backups', 'logs', 'serial', 'vnc'] as const;
export type VmTab = (typeof VM_TABS)[number];

export function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts[0] === 'vms' && parts.length === 1)) return { page: 'vms' };
  if (parts[0] === 'vms' && parts.length <= 3) {
    const tab = (parts[2] ?? 'overview') as VmTab;
    if (VM_TABS.includes(tab)) return { page: 'vm', name: parts[1], tab };
  }
  if (parts.length === 1 && ['create', 'networks', 'disks', 'storage', 'host', 'users', 'graphs', 'cluster'].includes(parts[0])) return { page: parts[0] as 'create' };
  return { page: 'notfound', path: parts.join('/') };
}

export const href = {
  vms: () => '#/vms',
  vm: (name: string, tab: VmTab = 'overview') => `#/vms/${encodeURIComponent(name)}${tab === 'overview' ? '' : `/${tab}`}`,
  create: () => '#/create',
  networks: () => '#/networks',
  disks: () => '#/disks',
  storage: () => '#/storage',
  host: () => '#/host',
  users: () => '#/users',
  graphs: () => '#/graphs',
  cluster: () => '#/cluster',
};

export const go = (h: string): void => {
  location.hash = h;
};

export function useRoute(): Route {
  const [r, setR] = useState(() => parseHash(location.hash));
  const current = useRef(location.hash);
  useEffect(() => {
    const f = () => {
      if (location.hash === current.current) return;
      // Unsaved edits (src/leave-guard.ts): ask, and on "no" put the address back.
      const m = leaveMessage();
      if (m && !window.confirm(m)) {
        history.replaceState(null, '', current.current || '#/');
        return;
      }
      current.current = location.hash;
      setR(parseHash(location.hash));
    };
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return r;
}
