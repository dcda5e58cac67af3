/**
 * A running VM's addresses from both sources, side by side and marked by source: the DHCP leases
 * of its NICs on nat networks (dnsmasq's lease files) and what its guest agent reports
 * (guest-network-get-interfaces). For `show`, `list --wide`, the API's VM detail and
 * `GET /api/vms/NAME/addresses`. Never hangs on a VM without an agent: the agent is asked with a
 * short timeout, and its last answer is kept for the run (src/vm/agent-cache.ts), so a list asks
 * each agent at most once per `maxAgeMs` and shows the last answer while the channel is busy.
 */
import type { Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import { effectiveAgent } from '../definition/vm-effective.js';
import { QgaClient } from '../qga/client.js';
import { guestAddresses, type GuestInterface } from '../qga/commands.js';
import { readAgentAddresses, writeAgentAddresses, type AgentInterface } from './agent-cache.js';
import { runtimePaths } from './runtime-paths.js';

export type AddressSource = 'lease' | 'agent';
export type AddressRow = { ip: string; prefix?: number; sources: AddressSource[]; nic?: string; network?: string; iface?: string; mac?: string };
export type LeaseRow = { nic: string; network: string; mac: string; ip?: string };
/**
 * agent: `answered` (just now, or within maxAgeMs), `cached` (it did not answer now: its last
 * answer of this run), `unavailable` (no answer this run), `off` (agent: false in the definition,
 * or the VM runs without the channel), `not-running`.
 */
export type AgentState = 'answered' | 'cached' | 'unavailable' | 'off' | 'not-running';
export type AddressReport = {
  addresses: AddressRow[];
  leases: LeaseRow[];
  agent?: AgentInterface[];
  agentState: AgentState;
  /** When the agent's addresses were reported (ISO time). */
  agentAt?: string;
  /** Why the agent did not answer. */
  agentNote?: string;
};

/** One row per address: a lease and the agent's address for the same IP become one row with both sources. Pure. */
export function mergeAddresses(leases: LeaseRow[], agent: AgentInterface[] | undefined): AddressRow[] {
  const rows: AddressRow[] = [];
  const byIp = new Map<string, AddressRow>();
  for (const l of leases) {
    if (!l.ip || byIp.has(l.ip)) continue;
    const r: AddressRow = { ip: l.ip, sources: ['lease'], nic: l.nic, network: l.network, mac: l.mac };
    rows.push(r);
    byIp.set(l.ip, r);
  }
  for (const i of agent ?? []) {
    for (const a of i.addresses) {
      const [ip, p] = a.split('/') as [string, string | undefined];
      const prefix = p !== undefined && /^\d+$/.test(p) ? Number(p) : undefined;
      const known = byIp.get(ip);
      if (known) {
        if (!known.sources.includes('agent')) known.sources.push('agent');
        known.iface ??= i.name;
        known.prefix ??= prefix;
        continue;
      }
      const r: AddressRow = { ip, ...(prefix !== undefined ? { prefix } : {}), sources: ['agent'], iface: i.name, ...(i.mac ? { mac: i.mac.toLowerCase() } : {}) };
      rows.push(r);
      byIp.set(ip, r);
    }
  }
  return rows;
}

/** `10.79.0.5 (lease, agent), fd00::5 (agent)`; `-` for none. Pure. */
export function formatAddresses(rows: AddressRow[]): string {
  return rows.length ? rows.map((r) => `${r.ip} (${r.sources.join(', ')})`).join(', ') : '-';
}

export type ReportOptions = {
  /** How long the agent may take to answer (default 1000 ms). */
  agentTimeoutMs?: number;
  /** Use the agent's last answer of this run when it is younger than this (default 15 s; 0 = always ask). */
  maxAgeMs?: number;
  /** The caller knows the VM's state (list, detail): skips reading it again. */
  running?: boolean;
};

/** Ask the agent (or take its recent answer). Never throws. */
async function agentPart(paths: Paths, name: string, o: ReportOptions): Promise<Pick<AddressReport, 'agent' | 'agentState' | 'agentAt' | 'agentNote'>> {
  const maxAge = o.maxAgeMs ?? 15_000;
  const cached = readAgentAddresses(paths, name);
  const fromCache = (c: NonNullable<typeof cached>, why?: string) =>
    c.interfaces
      ? { agent: c.interfaces, agentState: 'cached' as const, agentAt: new Date(c.at).toISOString(), ...(why ? { agentNote: why } : {}) }
      : { agentState: 'unavailable' as const, agentNote: why ?? c.why };
  if (cached && maxAge > 0 && Date.now() - cached.at < maxAge) {
    if (!cached.why && cached.interfaces) return { agent: cached.interfaces, agentState: 'answered', agentAt: new Date(cached.at).toISOString() };
    return fromCache(cached);
  }
  const sock = runtimePaths(paths, name).qga!;
  let a: QgaClient | undefined;
  try {
    const timeoutMs = o.agentTimeoutMs ?? 1_000;
    a = await QgaClient.connect(sock, { timeoutMs });
    const ifs = guestAddresses(await a.execute<GuestInterface[]>('guest-network-get-interfaces', undefined, { timeoutMs }));
    writeAgentAddresses(paths, name, { interfaces: ifs });
    return { agent: ifs, agentState: 'answered', agentAt: new Date().toISOString() };
  } catch (e) {
    const why = (e as Error).message;
    if ((e as { code?: string }).code === 'QGA_UNAVAILABLE' && /cannot connect/.test(why)) return { agentState: 'off', agentNote: 'the VM runs without an agent channel (started before agent was turned on)' };
    writeAgentAddresses(paths, name, { why });
    const c = readAgentAddresses(paths, name);
    return c ? fromCache(c, why) : { agentState: 'unavailable', agentNote: why };
  } finally {
    a?.close();
  }
}

/** A VM's addresses by source. A stopped VM has none (`not-running`). Never throws for an agent that does not answer. */
export async function vmAddressReport(paths: Paths, name: string, o: ReportOptions = {}): Promise<AddressReport> {
  const spec = readVm(paths, name);
  let running = o.running;
  if (running === undefined) {
    const { vmStatus } = await import('./status.js');
    const s = await vmStatus(paths, name);
    running = s.state === 'running' || s.state === 'paused';
  }
  if (!running) return { addresses: [], leases: [], agentState: 'not-running' };
  const leases: LeaseRow[] = spec.nics.some((n) => n.network)
    ? (await import('../net/nat/addresses.js')).vmAddresses(paths, name).filter((r) => r.ip).map((r) => ({ nic: r.nic, network: r.network, mac: r.mac, ip: r.ip }))
    : [];
  const agent = effectiveAgent(spec) ? await agentPart(paths, name, o) : { agentState: 'off' as const };
  return { addresses: mergeAddresses(leases, agent.agent), leases, ...agent };
}
