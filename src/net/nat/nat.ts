/**
 * NAT networks: up / down / status / gc. `net up`, in order, each step recorded so that a crash
 * half-way leaves nothing `net gc` cannot find:
 *   1. read the whole nftables ruleset and judge who else filters forwarding (firewall.ts); refuse
 *      before changing anything when a foreign chain would drop the guests' traffic;
 *   2. state.json {phase: starting} in `<run>/networks/NAME/`;
 *   3. the bridge with the host address (bridge.ts, marked kvmctl:net=NAME);
 *   4. net.ipv4.ip_forward on (previous value recorded);
 *   5. dnsmasq (config with the static leases of every VM definition on the network), restarted
 *      when its config changed or it died;
 *   6. kvmctl's table + DOCKER-USER rules in one `nft -f` transaction; firewalld zone;
 *   7. state.json {phase: up}.
 * `net down` removes exactly that (DOCKER-USER rules are found by their comment, dnsmasq by its
 * command line) and restores ip_forward when it was the namespace's last nat network.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KvmError } from '../../errors.js';
import type { Paths } from '../../host/paths.js';
import type { NatSpec } from '../../definition/network.js';
import { bridgeIfname, natBridgeView } from '../../definition/network-views.js';
import { listNames, readVm } from '../../definition/store.js';
import type { VmSpec } from '../../definition/vm.js';
import { bridgeDown, bridgeStatus, bridgeUp, type DownResult, type NetCtx, type NetStatus, type UpResult } from '../bridge.js';
import { defaultRouteDevs, deleteLink, getLink, parseOwner } from '../ip.js';
import { withNetLock } from '../net-lock.js';
import { dnsmasqConfig, dnsmasqPids, startDnsmasq, staticLeases, stopPids } from './dnsmasq.js';
import { allNatStates, natFiles, readNatState, writeJsonAtomic, type NatState } from './files.js';
import { firewalldAddBridge, firewalldRemoveBridge, firewalldRunning, planFirewall } from './firewall.js';
import { IPV4_RE } from './ipv4.js';
import { applyText, dockerUserRules, hasTable, nftApply, nftRuleset, removeText, tableName, type ResolvedForward } from './nft.js';
import { enableIpForward, restoreIpForward } from './sysctl.js';

/** Crash tests: KVMCTL_FAULT=nat-up:STEP kills this process with SIGKILL at that step. */
function fault(step: string): void {
  if (process.env.KVMCTL_FAULT === `nat-up:${step}`) process.kill(process.pid, 'SIGKILL');
}

export function readVmDefs(paths: Paths): VmSpec[] {
  const out: VmSpec[] = [];
  for (const n of listNames(paths, 'vm')) {
    try {
      out.push(readVm(paths, n));
    } catch {
      /* a broken file: kvmctl validate reports it */
    }
  }
  return out;
}

export function resolveForwards(net: NatSpec, vms: VmSpec[]): ResolvedForward[] {
  return net.forwards.map((f, i) => {
    let ip = f.guest;
    if (!IPV4_RE.test(f.guest)) {
      const vm = vms.find((v) => v.name === f.guest);
      const nic = vm?.nics.find((n) => n.network === net.name && n.ip);
      if (!vm) throw new KvmError('FORWARD_TARGET', `network "${net.name}" forwards[${i}]: no VM named "${f.guest}"`, { hint: 'name a defined VM, or give the guest IPv4 address', exit: 2 });
      if (!nic?.ip) throw new KvmError('FORWARD_TARGET', `network "${net.name}" forwards[${i}]: VM "${f.guest}" has no fixed address on this network`, { hint: `give its NIC on ${net.name} an ip: (a static lease), so the forward has a stable target`, exit: 2 });
      ip = nic.ip;
    }
    return { proto: f.proto, hostAddr: f.hostAddr, hostPort: f.hostPort, ip, port: f.guestPort ?? f.hostPort };
  });
}

function blockedError(net: NatSpec, br: string, plan: ReturnType<typeof planFirewall>): KvmError {
  const b = plan.blockers;
  const where = b.map((x) => `table ${x.family} ${x.table} chain ${x.chain} (hook ${x.hook}): ${x.why}`);
  return new KvmError('NAT_BLOCKED_BY_FIREWALL', `network "${net.name}": another firewall would drop the guests' traffic on ${br} — ${where.join('; ')}; nothing was changed`, {
    hint: `allow it in that table (kvmctl adds rules only to its own table, Docker's DOCKER-USER or a firewalld zone), e.g.:\n  ${[...new Set(b.flatMap((x) => x.fix))].join('\n  ')}`,
    details: { blockers: b },
  });
}

export async function natUp(net: NatSpec, ctx: NetCtx): Promise<UpResult> {
  return withNetLock(ctx.paths, net.name, () => natUpLocked(net, ctx));
}

async function natUpLocked(net: NatSpec, ctx: NetCtx): Promise<UpResult> {
  const br = bridgeIfname(net)!;
  const f = natFiles(ctx.paths, net.name);
  const warn = ctx.warn ?? (() => undefined);
  const steps: string[] = [];
  const vms = readVmDefs(ctx.paths);
  const forwards = resolveForwards(net, vms);
  const table = tableName(net.name);

  // 1. Who else filters forwarding? Decide before changing anything.
  const rs = await nftRuleset(ctx.netns);
  const fwd = ctx.netns ? false : await firewalldRunning();
  const plan = planFirewall(rs, { bridge: br, ownTable: table, firewalldRunning: fwd });
  if (plan.blockers.length) throw blockedError(net, br, plan);
  if (net.egress && !(await getLink(net.egress, ctx))) throw new KvmError('UPLINK_NOT_FOUND', `network "${net.name}": egress interface "${net.egress}" does not exist`, { hint: 'check the interface name (ip link) or remove egress:', exit: 2 });
  if (!net.egress && !(await defaultRouteDevs(ctx)).size) warn(`network ${net.name}: the host has no default route; guests reach only the host until it has one`);

  const prev = readNatState(f.state);
  if (prev && (prev.netns ?? '') !== (ctx.netns ?? '')) {
    throw new KvmError('NETWORK_ELSEWHERE', `network "${net.name}" is up in ${prev.netns ? `namespace ${prev.netns}` : 'the host namespace'}`, { hint: `kvmctl net down ${net.name}${prev.netns ? ` --netns ${prev.netns}` : ''} first` });
  }
  const st: NatState = { network: net.name, netns: ctx.netns, phase: 'starting', bridge: br, table, dockerUser: prev?.dockerUser ?? [], firewalldZone: prev?.firewalldZone, at: new Date().toISOString() };
  fs.mkdirSync(f.dir, { recursive: true, mode: 0o755 });
  const wasUp = prev?.phase === 'up';
  writeJsonAtomic(f.state, st);
  fault('after-state');
  try {
    // 3. bridge
    const b = await bridgeUp(natBridgeView(net), ctx);
    if (b.action === 'foreign') throw new KvmError('IFACE_CONFLICT', `network "${net.name}": bridge ${br} exists and was not made by kvmctl`, { hint: 'a nat network needs its own bridge: give it another interface: name', exit: 2 });
    steps.push(...b.steps);
    fault('after-bridge');
    // 4. forwarding
    const s = await enableIpForward(ctx.paths, ctx.netns);
    if (s) steps.push(s);
    // 5. dnsmasq
    const conf = dnsmasqConfig(net, br, staticLeases(net, vms), { pidFile: f.pid, leaseFile: f.leases, logFile: f.log });
    const running = dnsmasqPids(f.conf);
    const same = fs.existsSync(f.conf) && fs.readFileSync(f.conf, 'utf8') === conf;
    if (!running.length || !same || running.length > 1) {
      if (running.length) await stopPids(running);
      fs.writeFileSync(f.conf, conf, { mode: 0o644 });
      st.dnsmasqPid = await startDnsmasq(f.conf, f.log, f.pid, ctx.netns);
      writeJsonAtomic(f.state, st);
      steps.push(`${running.length ? 're' : ''}started dnsmasq (pid ${st.dnsmasqPid})`);
    } else st.dnsmasqPid = running[0];
    fault('after-dnsmasq');
    // 6. nftables (own table + DOCKER-USER, one transaction), firewalld
    const stale = dockerUserRules(rs, net.name);
    const text = applyText({ name: net.name, bridge: br, address: net.address, uplink: net.egress, forwards }, { families: plan.dockerUser, stale });
    st.dockerUser = plan.dockerUser;
    writeJsonAtomic(f.state, st);
    await nftApply(text, ctx.netns);
    fs.writeFileSync(f.rules, text);
    if (!hasTable(rs, 'inet', table)) steps.push(`${wasUp ? 'repaired' : 'created'} nftables table inet ${table}`);
    if (plan.dockerUser.length && !stale.length) steps.push(`accept rules for ${br} in DOCKER-USER (${plan.dockerUser.join(', ')})`);
    if (plan.firewalld && !st.firewalldZone) {
      st.firewalldZone = await firewalldAddBridge(br);
      steps.push(`firewalld: ${br} in zone ${st.firewalldZone}`);
    }
    fault('after-nft');
    st.phase = 'up';
    writeJsonAtomic(f.state, st);
  } catch (e) {
    await natTeardown(ctx.paths, net.name, { netns: ctx.netns }).catch(() => undefined);
    throw e;
  }
  return { network: net.name, bridge: br, action: wasUp && !steps.length ? 'already-up' : 'created', steps };
}

/**
 * Remove everything kvmctl made for a nat network, from its state and from what is there now:
 * its table, its tagged DOCKER-USER rules, the firewalld zone entry, dnsmasq (found by its
 * config path), the bridge (only if marked as this network's), and ip_forward when no other nat
 * network of the namespace is up. Works without the definition (gc after the file was removed).
 */
export async function natTeardown(paths: Paths, name: string, o: { netns?: string }): Promise<string[]> {
  const f = natFiles(paths, name);
  const st = readNatState(f.state);
  const netns = st?.netns ?? o.netns;
  const steps: string[] = [];
  if (st) writeJsonAtomic(f.state, { ...st, phase: 'stopping' });
  const rs = await nftRuleset(netns);
  const table = tableName(name);
  const mine = dockerUserRules(rs, name);
  const present = hasTable(rs, 'inet', table);
  await nftApply(removeText(name, mine, present), netns);
  if (present) steps.push(`removed nftables table inet ${table}`);
  if (mine.length) steps.push(`removed ${mine.length} kvmctl rule${mine.length > 1 ? 's' : ''} from DOCKER-USER`);
  if (st?.firewalldZone) {
    await firewalldRemoveBridge(st.bridge, st.firewalldZone);
    steps.push(`firewalld: ${st.bridge} out of zone ${st.firewalldZone}`);
  }
  const pids = dnsmasqPids(f.conf);
  if (pids.length) {
    await stopPids(pids);
    steps.push(`stopped dnsmasq (pid ${pids.join(', ')})`);
  }
  const br = st?.bridge;
  if (br) {
    const l = await getLink(br, { netns });
    const owner = parseOwner(l?.ifalias);
    if (l && owner?.kind === 'net' && owner.net === name) {
      await deleteLink(br, { netns });
      steps.push(`removed bridge ${br}`);
    }
  }
  for (const x of [f.state, f.pid, f.conf, f.rules, `${f.state}.tmp`]) fs.rmSync(x, { force: true });
  fs.rmSync(path.join(paths.run, 'net', `${name}.json`), { force: true });
  const others = [...allNatStates(paths).values()].filter((s) => s.network !== name && (s.netns ?? '') === (netns ?? ''));
  if (!others.length) {
    const r = await restoreIpForward(paths, netns);
    if (r) steps.push(r);
  }
  return steps;
}

export async function natDown(net: NatSpec, ctx: NetCtx & { force?: boolean; isRunning?: (vm: string) => boolean }): Promise<DownResult> {
  return withNetLock(ctx.paths, net.name, async () => {
    const br = bridgeIfname(net)!;
    const f = natFiles(ctx.paths, net.name);
    const st = readNatState(f.state);
    const netns = st?.netns ?? ctx.netns;
    const status = await bridgeStatus(natBridgeView(net), { netns });
    const running = status.users.filter((vm) => ctx.isRunning?.(vm) ?? true);
    if (running.length && !ctx.force) {
      throw new KvmError('NETWORK_BUSY', `network "${net.name}" is used by running VM${running.length > 1 ? 's' : ''} ${running.map((v) => `"${v}"`).join(', ')}`, {
        hint: `stop ${running.length > 1 ? 'them' : 'it'} first (kvmctl stop ${running[0]}), or pass --force to cut ${running.length > 1 ? 'their' : 'its'} network`,
      });
    }
    if (status.state === 'foreign') return { network: net.name, bridge: br, action: 'foreign', steps: [] };
    if (status.state !== 'absent') await bridgeDown(natBridgeView(net), { ...ctx, netns, force: true }).catch(() => undefined);
    const steps = await natTeardown(ctx.paths, net.name, { netns });
    if (status.state !== 'absent' && !steps.includes(`removed bridge ${br}`)) steps.push(`removed bridge ${br}`);
    return { network: net.name, bridge: br, action: steps.length || status.state !== 'absent' ? 'removed' : 'absent', steps };
  });
}

export type NatStatus = NetStatus & { dnsmasq?: number; table?: boolean; problems?: string[] };

export async function natStatus(net: NatSpec, opts: { paths: Paths; netns?: string }): Promise<NatStatus> {
  const f = natFiles(opts.paths, net.name);
  const st = readNatState(f.state);
  const netns = st?.netns ?? opts.netns;
  const base = await bridgeStatus(natBridgeView(net), { netns });
  const out: NatStatus = { ...base, type: 'nat' };
  if (base.state !== 'up' && base.state !== 'down') return out;
  const pids = dnsmasqPids(f.conf);
  const rs = await nftRuleset(netns).catch(() => undefined);
  out.dnsmasq = pids[0];
  out.table = rs ? hasTable(rs, 'inet', tableName(net.name)) : undefined;
  const problems: string[] = [];
  if (!pids.length) problems.push('dnsmasq is not running');
  if (out.table === false) problems.push(`nftables table inet ${tableName(net.name)} is missing`);
  if (st?.phase !== 'up') problems.push(`net up did not finish (phase ${st?.phase ?? 'none'})`);
  if (problems.length) {
    out.state = 'degraded';
    out.problems = problems.map((p) => `${p}; kvmctl net up ${net.name} repairs it`);
  }
  return out;
}

export type NatGcResult = { network: string; steps: string[] }[];

/**
 * Leftovers of nat networks: a `net up` that never finished (phase not 'up'), tables named
 * kvmctl-* and tagged DOCKER-USER rules with no network up, dnsmasq processes of this runtime dir
 * whose network is not up, and an ip_forward record with no nat network up.
 */
export async function natGc(paths: Paths, o: { netns?: string }): Promise<NatGcResult> {
  const out: NatGcResult = [];
  const states = allNatStates(paths);
  const here = (s: NatState) => (s.netns ?? '') === (o.netns ?? '');
  for (const [name, st] of states) {
    if (!here(st) || st.phase === 'up') continue;
    const steps = await natTeardown(paths, name, { netns: st.netns });
    out.push({ network: name, steps: [...steps, `cleared the state of a net up that did not finish (phase ${st.phase})`] });
    states.delete(name);
  }
  const up = new Set([...states.values()].filter(here).map((s) => s.network));
  const rs = await nftRuleset(o.netns);
  const tables = rs.flatMap((x) => (x.table?.family === 'inet' && x.table.name.startsWith('kvmctl-') ? [x.table.name.slice('kvmctl-'.length)] : []));
  const docker = dockerUserRules(rs).filter((r) => !up.has(r.net));
  for (const name of new Set([...tables.filter((t) => !up.has(t)), ...docker.map((d) => d.net)])) {
    const mine = docker.filter((d) => d.net === name);
    const present = tables.includes(name);
    await nftApply(removeText(name, mine, present), o.netns);
    out.push({ network: name, steps: [...(present ? [`removed nftables table inet kvmctl-${name}`] : []), ...(mine.length ? [`removed ${mine.length} kvmctl rule(s) from DOCKER-USER`] : [])] });
  }
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(path.join(paths.run, 'networks'));
  } catch {
    /* none */
  }
  for (const name of dirs) {
    if (up.has(name) || states.has(name)) continue;
    const pids = dnsmasqPids(natFiles(paths, name).conf);
    if (pids.length) {
      await stopPids(pids);
      out.push({ network: name, steps: [`stopped dnsmasq (pid ${pids.join(', ')})`] });
    }
  }
  if (![...states.values()].some(here)) {
    const r = await restoreIpForward(paths, o.netns);
    if (r) out.push({ network: '-', steps: [r] });
  }
  return out;
}
