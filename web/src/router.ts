/** Hash routes (`#/vms/NAME/serial`): bookmarkable, no server-side routing needed. */
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'vms' }
  | { page: 'vm'; name: string; tab: VmTab }
  | { page: 'create' }
  | { page: 'networks' }
  | { page: 'disks' }
  | { page: 'host' }
  | { page: 'notfound'; path: string };

export const VM_TABS = ['overview', 'definition', 'backups', 'serial', 'vnc'] as const;
export type VmTab = (typeof VM_TABS)[number];

export function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts[0] === 'vms' && parts.length === 1)) return { page: 'vms' };
  if (parts[0] === 'vms' && parts.length <= 3) {
    const tab = (parts[2] ?? 'overview') as VmTab;
    if (VM_TABS.includes(tab)) return { page: 'vm', name: parts[1], tab };
  }
  if (parts.length === 1 && ['create', 'networks', 'disks', 'host'].includes(parts[0])) return { page: parts[0] as 'create' };
  return { page: 'notfound', path: parts.join('/') };
}

export const href = {
  vms: () => '#/vms',
  vm: (name: string, tab: VmTab = 'overview') => `#/vms/${encodeURIComponent(name)}${tab === 'overview' ? '' : `/${tab}`}`,
  create: () => '#/create',
  networks: () => '#/networks',
  disks: () => '#/disks',
  host: () => '#/host',
};

export const go = (h: string): void => {
  location.hash = h;
};

export function useRoute(): Route {
  const [r, setR] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const f = () => setR(parseHash(location.hash));
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return r;
}
