/** The kvmctl web UI: a header with the pages, the current page, and a token prompt on 401. */
import { lazy, StrictMode, Suspense, useEffect, useState, type FormEvent } from 'react';
import { createRoot } from 'react-dom/client';
import { call, getToken, setToken, setUnauthorizedHandler, takeTokenFromUrl } from './api.js';
import { reconnectEvents, useEvents, useEventsConnected } from './live.js';
import { CreateVm } from './pages/CreateVm.js';
import { Disks } from './pages/Disks.js';
import { Storage } from './pages/Storage.js';
import { HostCheck } from './pages/HostCheck.js';
import { Users } from './pages/Users.js';
import { Networks } from './pages/Networks.js';
import { VmDetail } from './pages/VmDetail.js';
import { VmList } from './pages/VmList.js';
import { TaskPanel } from './components/TaskPanel.js';
import { Cluster } from './pages/Cluster.js';
import { href, useRoute, type Route } from './router.js';
import { can, resetMe, useMe } from './session.js';
import './style.css';
import './manage.css';

// Graphs load uPlot: only when the page is opened.
const HostGraphs = lazy(() => import('./pages/MetricGraphs.js').then((m) => ({ default: m.HostGraphs })));

takeTokenFromUrl();

const NAV: { label: string; to: string; pages: Route['page'][] }[] = [
  { label: 'VMs', to: href.vms(), pages: ['vms', 'vm'] },
  { label: 'New VM', to: href.create(), pages: ['create'] },
  { label: 'Networks', to: href.networks(), pages: ['networks'] },
  { label: 'Disks', to: href.disks(), pages: ['disks'] },
  { label: 'Storage', to: href.storage(), pages: ['storage'] },
  { label: 'Host', to: href.host(), pages: ['host'] },
  { label: 'Users', to: href.users(), pages: ['users'] },
  { label: 'Graphs', to: href.graphs(), pages: ['graphs'] },
  { label: 'Cluster', to: href.cluster(), pages: ['cluster'] },
];

const TITLES: Record<Route['page'], string> = { vms: 'VMs', vm: 'VM', create: 'New VM', networks: 'Networks', disks: 'Disks', storage: 'Storage', host: 'Host check', users: 'Users', graphs: 'Host graphs', cluster: 'Cluster', notfound: 'Not found' };

function App() {
  const route = useRoute();
  const [needToken, setNeedToken] = useState(false);
  const me = useMe();
  useEffect(() => setUnauthorizedHandler(() => setNeedToken(true)), []);
  useEffect(() => {
    document.title = `${route.page === 'vm' ? route.name : TITLES[route.page]} · kvmctl`;
    // Move focus to the new page's heading so keyboard and screen reader users start there.
    requestAnimationFrame(() => {
      const h = document.querySelector('main h1') as HTMLElement | null;
      if (!h || document.activeElement?.closest('main')) return;
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    });
  }, [route]);
  if (needToken) return <Login onDone={() => setNeedToken(false)} />;
  return (
    <>
      <a className="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header className="top">
        <span className="brand">kvmctl</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => n.to !== href.users() || can(me, 'admin')).map((n) => (
              <li key={n.to}>
                <a href={n.to} aria-current={n.pages.includes(route.page) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <Connection />
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
      <TaskPanel />
    </>
  );
}

const ignore = () => {};

function Connection() {
  // Keeps the one events WebSocket open on every page (pages add their own listeners).
  useEvents(ignore);
  const live = useEventsConnected();
  const me = useMe();
  return (
    <span className="right">
      {me && (
        <span className="who" data-testid="who" title={me.vms ? `only VMs matching ${me.vms}` : undefined}>
          {me.user} · {me.role}
          {me.vms ? ` · ${me.vms}` : ''}
        </span>
      )}
      <span role="status" aria-live="polite">{live ? 'live' : 'connecting…'}</span>
    </span>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'vms':
      return <VmList />;
    case 'vm':
      return <VmDetail key={route.name} name={route.name} tab={route.tab} />;
    case 'create':
      return <CreateVm />;
    case 'networks':
      return <Networks />;
    case 'disks':
      return <Disks />;
    case 'storage':
      return <Storage />;
    case 'host':
      return <HostCheck />;
    case 'users':
      return <Users />;
    case 'cluster':
      return <Cluster />;
    case 'graphs':
      return (
        <Suspense fallback={<p role="status">Loading…</p>}>
          <HostGraphs />
        </Suspense>
      );
    default:
      return (
        <>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            No page at <span className="mono">{route.path}</span>. <a href={href.vms()}>Go to the VM list</a>.
          </p>
        </>
      );
  }
}

function Login({ onDone }: { onDone: () => void }) {
  const [t, setT] = useState(getToken());
  const [err, setErr] = useState('');
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setToken(t.trim());
    try {
      await call('listVms');
      resetMe();
      reconnectEvents();
      onDone();
    } catch (x) {
      setErr((x as Error).message);
    }
  };
  return (
    <main id="main" style={{ maxWidth: 520 }}>
      <h1>kvmctl: sign in</h1>
      <p>This server wants its API token (printed by <span className="mono">kvmctl serve</span>, or set with KVMCTL_TOKEN).</p>
      <form onSubmit={submit} className="card">
        <label htmlFor="token">API token</label>
        <input id="token" type="password" value={t} onChange={(e) => setT(e.target.value)} autoFocus autoComplete="current-password" aria-invalid={!!err} aria-describedby={err ? 'token-err' : undefined} />
        {err && (
          <p id="token-err" className="field-error" role="alert">
            {err}
          </p>
        )}
        <p>
          <button type="submit" className="primary">Sign in</button>
        </p>
      </form>
    </main>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
