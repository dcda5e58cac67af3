/**
 * Who else filters forwarded traffic, and what kvmctl does about it. An accept in kvmctl's own
 * table cannot override a drop in anyone else's base chain (in nftables every base chain on a hook
 * sees the packet; a drop anywhere is final), so before `net up` claims success the whole ruleset
 * is read and each foreign base chain on the forward and input hooks is judged (pure, below):
 *   - Docker (table ip/ip6 filter with a DOCKER-USER chain): accept rules for the bridge go into
 *     DOCKER-USER, the chain Docker provides for this, tagged `kvmctl:net=NAME`;
 *   - firewalld (table inet firewalld): when firewalld runs, the bridge is put in a zone through
 *     firewall-cmd (libvirt's zone when it exists, else trusted); when it does not run, its table
 *     is judged like any other;
 *   - anything else: a chain whose policy is drop, or which has an unconditional drop/reject, or a
 *     drop/reject for the bridge, before any accept for the bridge, blocks: `net up` fails naming
 *     the table and chain and the rule that would allow the traffic.
 * The judgment is static (it follows jumps and gotos, but does not evaluate matches other than the
 * interface names and `ct state`): a rule such as `ip saddr 10.0.0.0/8 drop` is not treated as
 * blocking. docs/networking.md says so.
 */
import { run } from '../../host/exec.js';
import type { NftChain, NftObject, NftRule } from './nft.js';

export type Blocker = { family: string; table: string; chain: string; hook: string; why: string; fix: string[] };
export type FirewallPlan = { dockerUser: ('ip' | 'ip6')[]; firewalld: boolean; blockers: Blocker[]; notes: string[] };

type Dir = 'out' | 'in' | 'input';
type Verdict = 'accept' | 'block' | undefined;

const VERDICTS = ['accept', 'drop', 'reject', 'jump', 'goto', 'return', 'queue'] as const;

function verdictOf(r: NftRule): { kind: string; target?: string } | undefined {
  for (const e of r.expr) {
    for (const v of VERDICTS) {
      if (v in e) {
        const t = (e[v] as { target?: string } | null)?.target;
        return { kind: v, target: t };
      }
    }
  }
  return undefined;
}

type Match = { left: unknown; right: unknown; op: string };
const matchesOf = (r: NftRule): Match[] => r.expr.filter((e) => 'match' in e).map((e) => e.match as Match);
const metaKey = (m: Match) => (m.left as { meta?: { key?: string } })?.meta?.key;

function nameMatches(right: unknown, ifname: string): boolean {
  const one = (v: unknown) => typeof v === 'string' && (v === ifname || (v.endsWith('*') && ifname.startsWith(v.slice(0, -1))));
  if (one(right)) return true;
  const set = (right as { set?: unknown[] })?.set;
  return Array.isArray(set) && set.some(one);
}

/** Does the rule's interface match say it is about our bridge (true), about others only (false), or not about interfaces (undefined)? */
function ifaceFits(r: NftRule, dir: Dir, br: string): boolean | undefined {
  const want = dir === 'in' ? ['oifname', 'oif'] : ['iifname', 'iif'];
  let verdict: boolean | undefined;
  for (const m of matchesOf(r)) {
    const k = metaKey(m);
    if (!k || !['iifname', 'oifname', 'iif', 'oif'].includes(k)) continue;
    if (!want.includes(k)) continue;
    const hit = nameMatches(m.right, br);
    const ok = m.op === '!=' ? !hit : hit;
    if (!ok) return false;
    verdict = true;
  }
  return verdict;
}

const onlyCtEstablished = (r: NftRule) => {
  const ms = matchesOf(r);
  return ms.length > 0 && ms.every((m) => (m.left as { ct?: { key?: string } })?.ct?.key === 'state') && JSON.stringify(ms).includes('established');
};

function judgeChain(rs: NftObject[], c: { family: string; table: string; name: string }, dir: Dir, br: string, depth = 0): Verdict {
  if (depth > 8) return undefined;
  const rules = rs.flatMap((o) => (o.rule && o.rule.family === c.family && o.rule.table === c.table && o.rule.chain === c.name ? [o.rule] : []));
  for (const r of rules) {
    const v = verdictOf(r);
    if (!v) continue;
    const fits = ifaceFits(r, dir, br);
    if (fits === false) continue;
    const unconditional = matchesOf(r).length === 0;
    if (v.kind === 'accept') {
      if (fits || (dir === 'in' && onlyCtEstablished(r)) || unconditional) return 'accept';
    } else if (v.kind === 'drop' || v.kind === 'reject') {
      if (fits || unconditional) return 'block';
    } else if ((v.kind === 'jump' || v.kind === 'goto') && v.target && (fits || unconditional)) {
      const sub = judgeChain(rs, { family: c.family, table: c.table, name: v.target }, dir, br, depth + 1);
      if (sub) return sub;
      if (v.kind === 'goto') return undefined;
    } else if (v.kind === 'return' && (fits || unconditional)) return undefined;
  }
  return undefined;
}

const WHAT: Record<Dir, string> = { out: 'traffic from the guests to the outside', in: 'replies to the guests', input: 'DHCP and DNS from the guests to the host' };

function fixFor(c: NftChain, dir: Dir, br: string): string[] {
  const at = `${c.family} ${c.table} ${c.name}`;
  if (dir === 'out') return [`nft insert rule ${at} iifname "${br}" accept`];
  if (dir === 'in') return [`nft insert rule ${at} oifname "${br}" ct state established,related accept`, `nft insert rule ${at} oifname "${br}" ct status dnat accept`];
  return [`nft insert rule ${at} iifname "${br}" udp dport { 53, 67 } accept`, `nft insert rule ${at} iifname "${br}" tcp dport 53 accept`];
}

/** Decide, from `nft -j list ruleset`, what kvmctl must do (or cannot do) for bridge `br`. Pure. */
export function planFirewall(rs: NftObject[], o: { bridge: string; ownTable: string; firewalldRunning: boolean; ipv6?: boolean }): FirewallPlan {
  const plan: FirewallPlan = { dockerUser: [], firewalld: false, blockers: [], notes: [] };
  const chains = rs.flatMap((x) => (x.chain ? [x.chain] : []));
  const has = (family: string, table: string, name: string) => chains.some((c) => c.family === family && c.table === table && c.name === name);
  const docker = new Set<string>();
  for (const f of ['ip', 'ip6'] as const) {
    if (has(f, 'filter', 'DOCKER-USER')) {
      docker.add(`${f} filter`);
      if (f === 'ip' || o.ipv6) plan.dockerUser.push(f);
    }
  }
  if (docker.size) plan.notes.push(`Docker's DOCKER-USER chain found (${[...docker].join(', ')}): kvmctl's accept rules go there`);
  const firewalldTable = rs.some((x) => x.table?.family === 'inet' && x.table.name === 'firewalld');
  if (firewalldTable && o.firewalldRunning) {
    plan.firewalld = true;
    plan.notes.push('firewalld runs: the bridge goes into a firewalld zone');
  }
  for (const c of chains) {
    if (!c.hook || (c.hook !== 'forward' && c.hook !== 'input')) continue;
    if (c.family === 'inet' && c.table === o.ownTable) continue;
    if (!['ip', 'inet', 'ip6'].includes(c.family)) continue;
    if (c.family === 'ip6' && !o.ipv6) continue;
    if (docker.has(`${c.family} ${c.table}`) && c.hook === 'forward') continue;
    if (plan.firewalld && c.family === 'inet' && c.table === 'firewalld') continue;
    const dirs: Dir[] = c.hook === 'forward' ? ['out', 'in'] : ['input'];
    for (const dir of dirs) {
      const v = judgeChain(rs, c, dir, o.bridge) ?? (c.policy === 'drop' ? 'block' : undefined);
      if (v !== 'block') continue;
      const why = c.policy === 'drop' && judgeChain(rs, c, dir, o.bridge) === undefined ? `policy drop, and no rule accepts ${WHAT[dir]}` : `a rule drops ${WHAT[dir]}`;
      const hint = firewalldTable && c.table === 'firewalld' ? ['start firewalld (kvmctl then puts the bridge in a zone), or remove its table: nft delete table inet firewalld'] : fixFor(c, dir, o.bridge);
      plan.blockers.push({ family: c.family, table: c.table, chain: c.name, hook: c.hook, why, fix: hint });
    }
  }
  return plan;
}

/* ---- firewalld, through its own command (D-Bus underneath). Not installed on the test machine: untested for real. ---- */

export async function firewalldRunning(): Promise<boolean> {
  const r = await run(['firewall-cmd', '--state'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined);
  return !!r && r.exitCode === 0 && r.stdout.trim() === 'running';
}

/** The zone kvmctl uses: libvirt's (made for exactly this) when it exists, else trusted. */
export function pickZone(zones: string[]): string {
  return zones.includes('libvirt') ? 'libvirt' : 'trusted';
}

export async function firewalldAddBridge(bridge: string): Promise<string> {
  const zones = (await run(['firewall-cmd', '--get-zones'], { timeoutMs: 10_000, errorCode: 'FIREWALLD_FAILED' })).stdout.trim().split(/\s+/);
  const zone = pickZone(zones);
  // --change-interface adds it, or moves it from the zone it is in (runtime only, never --permanent).
  await run(['firewall-cmd', `--zone=${zone}`, `--change-interface=${bridge}`], { timeoutMs: 10_000, errorCode: 'FIREWALLD_FAILED' });
  return zone;
}

export async function firewalldRemoveBridge(bridge: string, zone: string): Promise<void> {
  await run(['firewall-cmd', `--zone=${zone}`, `--remove-interface=${bridge}`], { allowFailure: true, timeoutMs: 10_000 });
}
