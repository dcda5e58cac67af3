/**
 * `kvmctl autostart`: start every VM whose definition says `autostart`, at host boot.
 *   1. networks first: every network the autostart VMs name is brought up once (net up), so that
 *      VMs starting in parallel never race to create the same bridge;
 *   2. then groups by `autostart.order`, ascending; the VMs of a group start in parallel (at most
 *      `parallel` at a time: boots are CPU-bound), and after a group kvmctl waits the group's
 *      largest `delay` before the next one.
 * A VM already running is skipped, a VM that fails is reported and the rest go on.
 */
import { isKvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import type { NetworkSpec } from '../definition/network.js';
import { listNames, readNetwork, readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';

export type ErrInfo = { code: string; message: string; hint?: string };

export function errInfo(e: unknown): ErrInfo {
  if (isKvmError(e)) return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

export type AutostartGroup = { order: number; delaySec: number; vms: string[] };

/** Pure: the start groups (ascending order; names sorted inside a group) and the networks they name. */
export function autostartPlan(vms: VmSpec[]): { groups: AutostartGroup[]; networks: string[] } {
  const byOrder = new Map<number, VmSpec[]>();
  for (const vm of vms) {
    if (!vm.autostart.enabled) continue;
    const g = byOrder.get(vm.autostart.order) ?? [];
    g.push(vm);
    byOrder.set(vm.autostart.order, g);
  }
  const groups = [...byOrder.entries()]
    .sort(([a], [b]) => a - b)
    .map(([order, g]) => ({ order, delaySec: Math.max(...g.map((v) => v.autostart.delay)), vms: g.map((v) => v.name).sort() }));
  const networks = new Set<string>();
  for (const g of byOrder.values()) for (const vm of g) for (const n of vm.nics) if (n.network) networks.add(n.network);
  return { groups, networks: [...networks].sort() };
}

/** Every VM definition that reads; the broken ones separately (they are reported, not guessed at). */
export function readAllVms(paths: Paths): { vms: VmSpec[]; unreadable: { name: string; error: ErrInfo }[] } {
  const vms: VmSpec[] = [];
  const unreadable: { name: string; error: ErrInfo }[] = [];
  for (const name of listNames(paths, 'vm')) {
    try {
      vms.push(readVm(paths, name));
    } catch (e) {
      unreadable.push({ name, error: errInfo(e) });
    }
  }
  return { vms, unreadable };
}

/** Run `fn` over `items`, at most `limit` at a time; results in input order. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

export type NetOutcome = { name: string; result: 'up' | 'already-up' | 'foreign' | 'failed' | 'would-up' | 'n/a'; state?: string; steps?: string[]; error?: ErrInfo };

export type VmOutcome = {
  name: string;
  order: number;
  result: 'started' | 'skipped' | 'failed' | 'would-start';
  /** For skipped VMs: the state they were found in. */
  state?: string;
  pid?: number;
  accel?: 'kvm' | 'tcg';
  /** When the start began, ms after autostart began; and how long it took. */
  atMs?: number;
  tookMs?: number;
  warnings?: string[];
  error?: ErrInfo;
};

export type AutostartResult = {
  dryRun: boolean;
  parallel: number;
  networks: NetOutcome[];
  groups: (AutostartGroup & { waitedMs?: number; outcomes: VmOutcome[] })[];
  unreadable: { name: string; error: ErrInfo }[];
  started: number;
  skipped: number;
  failed: number;
  tookMs: number;
};

export type AutostartOptions = {
  dryRun?: boolean;
  /** VMs of one group started at once (default 4). */
  parallel?: number;
  netns?: string;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function autostart(paths: Paths, opts: AutostartOptions = {}): Promise<AutostartResult> {
  const t0 = Date.now();
  const parallel = opts.parallel ?? 4;
  const log = opts.log ?? (() => undefined);
  const { vms, unreadable } = readAllVms(paths);
  for (const u of unreadable) log(`${u.name}: definition does not read (${u.error.message}); not started`);
  const plan = autostartPlan(vms);
  const specs = new Map(vms.map((v) => [v.name, v]));
  const { startVm } = await import('./start.js');
  const { vmStatus } = await import('./status.js');

  // 1. networks
  const networks: NetOutcome[] = [];
  const failedNets = new Map<string, ErrInfo>();
  for (const name of plan.networks) {
    let net: NetworkSpec;
    try {
      net = readNetwork(paths, name);
    } catch (e) {
      const error = errInfo(e);
      failedNets.set(name, error);
      networks.push({ name, result: 'failed', error });
      continue;
    }
    if (net.type === 'user') {
      networks.push({ name, result: 'n/a' });
      continue;
    }
    try {
      if (opts.dryRun) {
        const { netStatus } = await import('../net/networks.js');
        const st = await netStatus(net, { paths, netns: opts.netns });
        networks.push({ name, result: st.state === 'up' ? 'already-up' : 'would-up', state: st.state });
      } else {
        const { upNetwork } = await import('../net/service.js');
        const r = await upNetwork({ paths, netns: opts.netns, warn: opts.warn }, name);
        networks.push({ name, result: r.action === 'created' ? 'up' : r.action, steps: r.steps });
        log(`network ${name}: ${r.action === 'created' ? r.steps.join('; ') : r.action}`);
      }
    } catch (e) {
      const error = errInfo(e);
      failedNets.set(name, error);
      networks.push({ name, result: 'failed', error });
      log(`network ${name}: failed: ${error.message}`);
    }
  }

  // 2. VM groups
  const groups: AutostartResult['groups'] = [];
  for (const [gi, g] of plan.groups.entries()) {
    const outcomes = await pool(g.vms, parallel, async (name): Promise<VmOutcome> => {
      const vm = specs.get(name)!;
      const base = { name, order: g.order };
      const badNet = vm.nics.map((n) => n.network).find((n) => n !== undefined && failedNets.has(n));
      if (badNet) {
        const cause = failedNets.get(badNet)!;
        return { ...base, result: 'failed', error: { code: 'NETWORK_FAILED', message: `network "${badNet}" could not be brought up: ${cause.message}`, hint: cause.hint } };
      }
      const st = await vmStatus(paths, name, { cleanup: !opts.dryRun });
      if (st.state !== 'stopped' && st.state !== 'crashed') return { ...base, result: 'skipped', state: st.state, pid: st.pid };
      if (opts.dryRun) return { ...base, result: 'would-start', state: st.state };
      const atMs = Date.now() - t0;
      log(`${name}: starting (order ${g.order})`);
      try {
        const r = await startVm(paths, name, { netns: opts.netns });
        log(`${name}: started (pid ${r.pid}) in ${r.qmpReadyMs} ms`);
        return { ...base, result: 'started', pid: r.pid, accel: r.accel, atMs, tookMs: Date.now() - t0 - atMs, ...(r.warnings.length ? { warnings: r.warnings } : {}) };
      } catch (e) {
        const error = errInfo(e);
        // Someone started it between our look and our start: that is "already running".
        if (error.code === 'VM_RUNNING') return { ...base, result: 'skipped', state: 'running', atMs };
        log(`${name}: failed: ${error.message}`);
        return { ...base, result: 'failed', atMs, tookMs: Date.now() - t0 - atMs, error };
      }
    });
    const group: AutostartResult['groups'][number] = { ...g, outcomes };
    groups.push(group);
    const more = gi < plan.groups.length - 1;
    // The delay lets the group's services come up before the next group; nothing was started,
    // nothing to wait for.
    if (more && g.delaySec > 0 && !opts.dryRun && outcomes.some((o) => o.result === 'started')) {
      log(`waiting ${g.delaySec} s after order ${g.order}`);
      const w0 = Date.now();
      await sleep(g.delaySec * 1000);
      group.waitedMs = Date.now() - w0;
    }
  }
  const all = groups.flatMap((g) => g.outcomes);
  return {
    dryRun: !!opts.dryRun,
    parallel,
    networks,
    groups,
    unreadable,
    started: all.filter((o) => o.result === 'started').length,
    skipped: all.filter((o) => o.result === 'skipped').length,
    failed: all.filter((o) => o.result === 'failed').length + unreadable.length,
    tookMs: Date.now() - t0,
  };
}
