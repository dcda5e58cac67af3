/**
 * Metrics of running VMs and of the host: QEMU's CPU time and RSS (/proc/PID/stat), block I/O
 * (QMP query-blockstats, over whatever QMP connection the caller holds), NIC byte counters (the
 * host side of the VM's taps/macvtaps: /sys/class/net/IF/statistics, or `ip -n NS -s -j link`
 * for a VM in a network namespace; rx = what the host side received = what the guest sent),
 * uptime; host CPU, memory and KSM savings. A `MetricsSampler` keeps the previous sample to
 * turn CPU counters into percentages. Prometheus text rendering is here too (pure).
 */
import fs from 'node:fs';
import os from 'node:os';
import { KSM_ROOT, readKsm } from '../host/ksm.js';
import type { Paths } from '../host/paths.js';
import { vmLinkName } from '../net/tap.js';
import { readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { procStat } from './proc.js';
import { observe, type VmState } from './state.js';

export type BlockStat = { device: string; rdBytes: number; wrBytes: number; rdOps: number; wrOps: number };
export type NetStat = { ifname: string; rxBytes: number; txBytes: number; rxPackets: number; txPackets: number };
export type VmMetrics = {
  name: string;
  pid: number;
  state: VmState;
  uptimeSec: number;
  cpuSec: number;
  cpuPercent: number | null;
  rssBytes: number;
  block: BlockStat[];
  net: NetStat[];
};
export type HostMetrics = {
  cpus: number;
  cpuPercent: number | null;
  loadavg: [number, number, number];
  memTotalBytes: number;
  memAvailableBytes: number;
  ksmSavedBytes: number;
  ksmRun: number | null;
};
export type Metrics = { at: string; host: HostMetrics; vms: VmMetrics[] };

const TICK = 100; // USER_HZ on Linux
const PAGE = 4096;

/** The host-side interface names a VM's NICs get (kvmctl's own taps/macvtaps, or a named tap). */
export function vmInterfaces(vm: Pick<VmSpec, 'name' | 'nics'>): string[] {
  return vm.nics.flatMap((n, i) => (n.tap ? [n.tap] : n.network ? [vmLinkName(vm.name, i, 'tap'), vmLinkName(vm.name, i, 'macvtap')] : []));
}

/** query-blockstats → per-device totals. Pure. */
export function parseBlockstats(ret: unknown): BlockStat[] {
  if (!Array.isArray(ret)) return [];
  return ret.map((d: { device?: string; qdev?: string; node_name?: string; stats?: Record<string, number> }) => ({
    device: d.device || d.qdev || d.node_name || '?',
    rdBytes: d.stats?.rd_bytes ?? 0,
    wrBytes: d.stats?.wr_bytes ?? 0,
    rdOps: d.stats?.rd_operations ?? 0,
    wrOps: d.stats?.wr_operations ?? 0,
  }));
}

function readNum(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function sysNetStats(ifnames: string[]): NetStat[] {
  const out: NetStat[] = [];
  for (const ifname of ifnames) {
    const dir = `/sys/class/net/${ifname}/statistics`;
    if (!fs.existsSync(dir)) continue;
    out.push({ ifname, rxBytes: readNum(`${dir}/rx_bytes`), txBytes: readNum(`${dir}/tx_bytes`), rxPackets: readNum(`${dir}/rx_packets`), txPackets: readNum(`${dir}/tx_packets`) });
  }
  return out;
}

/** `ip -s -j link` output → counters of the named interfaces. Pure. */
export function parseIpStats(json: unknown, ifnames: string[]): NetStat[] {
  if (!Array.isArray(json)) return [];
  const want = new Set(ifnames);
  return json
    .filter((l: { ifname?: string }) => l.ifname && want.has(l.ifname))
    .map((l: { ifname: string; stats64?: { rx?: { bytes?: number; packets?: number }; tx?: { bytes?: number; packets?: number } } }) => ({
      ifname: l.ifname,
      rxBytes: l.stats64?.rx?.bytes ?? 0,
      txBytes: l.stats64?.tx?.bytes ?? 0,
      rxPackets: l.stats64?.rx?.packets ?? 0,
      txPackets: l.stats64?.tx?.packets ?? 0,
    }));
}

async function netnsStats(netns: string, ifnames: string[]): Promise<NetStat[]> {
  const { run } = await import('../host/exec.js');
  const r = await run(['ip', '-n', netns, '-s', '-j', 'link', 'show'], { timeoutMs: 5000 });
  return parseIpStats(JSON.parse(r.stdout || '[]'), ifnames);
}

/** /proc/stat first line → busy and total jiffies. Pure. */
export function parseProcStat(text: string): { busy: number; total: number } {
  const f = (text.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + (b || 0), 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** /proc/meminfo → bytes. Pure. */
export function parseMeminfo(text: string): { total: number; available: number } {
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { total: get('MemTotal'), available: get('MemAvailable') };
}

export class MetricsSampler {
  private prevHost?: { busy: number; total: number };
  private readonly prevVm = new Map<string, { cpuSec: number; at: number; pid: number }>();

  constructor(
    private readonly paths: Paths,
    private readonly blockstats: (name: string) => Promise<unknown> = async () => [],
    private readonly ksmRoot = process.env.KVMCTL_KSM_ROOT || KSM_ROOT,
  ) {}

  host(): HostMetrics {
    let cpuPercent: number | null = null;
    try {
      const now = parseProcStat(fs.readFileSync('/proc/stat', 'utf8'));
      if (this.prevHost && now.total > this.prevHost.total) cpuPercent = round1((100 * (now.busy - this.prevHost.busy)) / (now.total - this.prevHost.total));
      this.prevHost = now;
    } catch {
      /* not Linux */
    }
    let mem = { total: os.totalmem(), available: os.freemem() };
    try {
      mem = parseMeminfo(fs.readFileSync('/proc/meminfo', 'utf8'));
    } catch {
      /* keep os.* */
    }
    let ksmSavedBytes = 0;
    let ksmRun: number | null = null;
    try {
      const k = readKsm(this.ksmRoot);
      ksmSavedBytes = k.savedBytes;
      ksmRun = k.run;
    } catch {
      /* no KSM on this kernel */
    }
    const la = os.loadavg();
    return { cpus: os.cpus().length, cpuPercent, loadavg: [la[0]!, la[1]!, la[2]!], memTotalBytes: mem.total, memAvailableBytes: mem.available, ksmSavedBytes, ksmRun };
  }

  /** Metrics of one VM, or undefined when it is not running. */
  async vm(name: string, state: VmState = 'running'): Promise<VmMetrics | undefined> {
    const o = observe(this.paths, name);
    if (o.phase !== 'alive' || !o.pid) return undefined;
    const st = procStat(o.pid);
    if (!st) return undefined;
    const cpuSec = (st.utime + st.stime) / TICK;
    const now = Date.now();
    const prev = this.prevVm.get(name);
    const cpuPercent = prev && prev.pid === o.pid && now > prev.at ? round1((100 * (cpuSec - prev.cpuSec)) / ((now - prev.at) / 1000)) : null;
    this.prevVm.set(name, { cpuSec, at: now, pid: o.pid });
    let spec: VmSpec | undefined;
    try {
      spec = readVm(this.paths, name);
    } catch {
      spec = undefined;
    }
    const ifs = spec ? vmInterfaces(spec) : [];
    const [block, net] = await Promise.all([
      this.blockstats(name).then(parseBlockstats, () => []),
      (o.run?.netns ? netnsStats(o.run.netns, ifs) : Promise.resolve(sysNetStats(ifs))).catch(() => []),
    ]);
    return {
      name,
      pid: o.pid,
      state,
      uptimeSec: o.run ? Math.max(0, Math.round((now - Date.parse(o.run.startedAt)) / 1000)) : 0,
      cpuSec,
      cpuPercent,
      rssBytes: st.rssPages * PAGE,
      block,
      net,
    };
  }

  async sample(names: { name: string; state: VmState }[]): Promise<Metrics> {
    const vms = (await Promise.all(names.map((n) => this.vm(n.name, n.state)))).filter((v): v is VmMetrics => !!v);
    for (const k of this.prevVm.keys()) if (!vms.some((v) => v.name === k)) this.prevVm.delete(k);
    return { at: new Date().toISOString(), host: this.host(), vms };
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const VM_STATES: readonly VmState[] = ['running', 'paused', 'stopped', 'crashed', 'starting', 'stopping'];

/**
 * Prometheus text exposition format (version 0.0.4). Pure. `all` is every defined VM with its
 * state (stopped ones included; default: the sampled ones): each gets `kvmctl_vm_up` 1 when its
 * QEMU process is there (running or paused, i.e. it has a sample in `m`) and 0 otherwise, and
 * `kvmctl_vm_state{state=…}` 1 for its state and 0 for the others (one series per state, as
 * node_exporter's systemd collector does), so a query never has to decode a magic value.
 */
export function toPrometheus(m: Metrics, all: { name: string; state: VmState }[] = m.vms): string {
  const out: string[] = [];
  const fam = (name: string, type: 'gauge' | 'counter', help: string, rows: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(v) ? v : 0}`);
    }
  };
  const h = m.host;
  fam('kvmctl_host_cpus', 'gauge', 'Number of host CPUs.', [[{}, h.cpus]]);
  if (h.cpuPercent !== null) fam('kvmctl_host_cpu_percent', 'gauge', 'Host CPU busy percent since the previous sample.', [[{}, h.cpuPercent]]);
  fam('kvmctl_host_load1', 'gauge', 'Host 1-minute load average.', [[{}, h.loadavg[0]]]);
  fam('kvmctl_host_memory_total_bytes', 'gauge', 'Host memory.', [[{}, h.memTotalBytes]]);
  fam('kvmctl_host_memory_available_bytes', 'gauge', 'Host memory available.', [[{}, h.memAvailableBytes]]);
  fam('kvmctl_host_ksm_saved_bytes', 'gauge', 'Memory saved by KSM (pages_sharing x page size).', [[{}, h.ksmSavedBytes]]);
  const vm = (f: (v: VmMetrics) => number) => m.vms.map((v): [Record<string, string>, number] => [{ vm: v.name }, f(v)]);
  const sampled = new Map(m.vms.map((v) => [v.name, v]));
  // A VM without a sample has no QEMU process, whatever a stale state says (the server without a watcher says "running").
  const stateOf = (a: { name: string; state: VmState }): VmState => sampled.get(a.name)?.state ?? (a.state === 'running' || a.state === 'paused' ? 'stopped' : a.state);
  fam('kvmctl_vm_up', 'gauge', 'VM has a QEMU process (running or paused): 1, or not (stopped, crashed): 0.', all.map((a): [Record<string, string>, number] => [{ vm: a.name }, sampled.has(a.name) ? 1 : 0]));
  fam('kvmctl_vm_state', 'gauge', 'VM state: 1 for the state the VM is in, 0 for the others.', all.flatMap((a) => VM_STATES.map((st): [Record<string, string>, number] => [{ vm: a.name, state: st }, stateOf(a) === st ? 1 : 0])));
  fam('kvmctl_vm_uptime_seconds', 'gauge', 'Seconds since the VM started.', vm((v) => v.uptimeSec));
  fam('kvmctl_vm_cpu_seconds_total', 'counter', 'QEMU user+system CPU time.', vm((v) => v.cpuSec));
  fam('kvmctl_vm_rss_bytes', 'gauge', 'QEMU resident memory.', vm((v) => v.rssBytes));
  const blk = (f: (b: BlockStat) => number) => m.vms.flatMap((v) => v.block.map((b): [Record<string, string>, number] => [{ vm: v.name, device: b.device }, f(b)]));
  fam('kvmctl_vm_block_read_bytes_total', 'counter', 'Bytes read by the guest from a block device.', blk((b) => b.rdBytes));
  fam('kvmctl_vm_block_written_bytes_total', 'counter', 'Bytes written by the guest to a block device.', blk((b) => b.wrBytes));
  const net = (f: (n: NetStat) => number) => m.vms.flatMap((v) => v.net.map((n): [Record<string, string>, number] => [{ vm: v.name, interface: n.ifname }, f(n)]));
  fam('kvmctl_vm_net_host_rx_bytes_total', 'counter', 'Bytes received by the host side of the NIC (sent by the guest).', net((n) => n.rxBytes));
  fam('kvmctl_vm_net_host_tx_bytes_total', 'counter', 'Bytes sent by the host side of the NIC (received by the guest).', net((n) => n.txBytes));
  return `${out.join('\n')}\n`;
}
