/**
 * kvmctl's nftables rules for a nat network, in a table of its own (`table inet kvmctl-NAME`):
 * filter on forward (guests out, replies and port forwards in, nothing else in), masquerade on
 * postrouting, DNAT for port forwards on prerouting/output. Applied and removed atomically with
 * `nft -f` from generated text; the table is replaced as a whole (`table X` + `delete table X` +
 * its definition in one transaction), so a table deleted or changed behind kvmctl's back is
 * repaired by the next `net up`, and nobody else's table is ever flushed. Rules kvmctl adds to
 * Docker's DOCKER-USER chain go in the same transaction, each tagged `comment "kvmctl:net=NAME"`.
 */
import { run } from '../../host/exec.js';
import { subnetOf } from './ipv4.js';

export type ResolvedForward = { proto: 'tcp' | 'udp'; hostAddr?: string; hostPort: number; ip: string; port: number };

export type NatRulesInput = { name: string; bridge: string; address: string; uplink?: string; forwards: ResolvedForward[] };

export const tableName = (net: string) => `kvmctl-${net}`;
export const ruleTag = (net: string) => `kvmctl:net=${net}`;
const q = (s: string) => JSON.stringify(s);

/** The table definition (pure). */
export function natTable(r: NatRulesInput): string {
  const s = subnetOf(r.address);
  const br = q(r.bridge);
  const out = r.uplink ? `oifname ${q(r.uplink)}` : `oifname != ${br}`;
  const dnat = (chain: 'pre' | 'out') =>
    r.forwards.map((f) => {
      const match = f.hostAddr ? `ip daddr ${f.hostAddr}` : 'fib daddr type local';
      const from = chain === 'pre' ? `iifname != ${br} ` : '';
      return `\t\t${from}${match} ${f.proto} dport ${f.hostPort} dnat ip to ${f.ip}:${f.port}`;
    });
  return [
    `table inet ${tableName(r.name)} {`,
    `\tcomment ${q(`kvmctl nat network ${r.name}; managed by kvmctl net up/down`)}`,
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${br} oifname ${br} accept`,
    `\t\tiifname ${br} ip saddr ${s.cidr} ${out} accept`,
    `\t\tiifname ${br} drop`,
    `\t\toifname ${br} ct state established,related accept`,
    `\t\toifname ${br} ct status dnat accept`,
    `\t\toifname ${br} drop`,
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\tip saddr ${s.cidr} ip daddr != ${s.cidr} ${out} masquerade`,
    '\t}',
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...dnat('pre'),
    '\t}',
    '\tchain output {',
    '\t\ttype nat hook output priority -100; policy accept;',
    ...dnat('out'),
    '\t}',
    '}',
  ].join('\n');
}

export type DockerRuleRef = { family: 'ip' | 'ip6'; handle: number };

/** `nft -f` text that (re)creates the table and kvmctl's DOCKER-USER rules in one transaction. */
export function applyText(r: NatRulesInput, docker: { families: ('ip' | 'ip6')[]; stale: DockerRuleRef[] }): string {
  const t = tableName(r.name);
  const lines = [`table inet ${t}`, `delete table inet ${t}`, natTable(r)];
  for (const x of docker.stale) lines.push(`delete rule ${x.family} filter DOCKER-USER handle ${x.handle}`);
  for (const f of docker.families) {
    // insert = at the top; the second insert lands above the first.
    lines.push(`insert rule ${f} filter DOCKER-USER oifname ${q(r.bridge)} accept comment ${q(ruleTag(r.name))}`);
    lines.push(`insert rule ${f} filter DOCKER-USER iifname ${q(r.bridge)} accept comment ${q(ruleTag(r.name))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `nft -f` text that removes the table (if present) and the given DOCKER-USER rules. */
export function removeText(net: string, docker: DockerRuleRef[], tablePresent: boolean): string {
  const t = tableName(net);
  const lines = tablePresent ? [`delete table inet ${t}`] : [];
  for (const x of docker) lines.push(`delete rule ${x.family} filter DOCKER-USER handle ${x.handle}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

const nftArgv = (netns: string | undefined, args: string[]) => (netns ? ['ip', 'netns', 'exec', netns, 'nft', ...args] : ['nft', ...args]);

export async function nftApply(text: string, netns?: string): Promise<void> {
  if (!text) return;
  await run(nftArgv(netns, ['-f', '-']), { input: text, timeoutMs: 20_000, errorCode: 'NFT_FAILED' });
}

/** `nft -j list ruleset` as its list of objects ({table}, {chain}, {rule}, …). */
export async function nftRuleset(netns?: string): Promise<NftObject[]> {
  const r = await run(nftArgv(netns, ['-j', 'list', 'ruleset']), { timeoutMs: 20_000, errorCode: 'NFT_FAILED' });
  const j = JSON.parse(r.stdout || '{"nftables":[]}') as { nftables: NftObject[] };
  return j.nftables;
}

export type NftChain = { family: string; table: string; name: string; handle: number; type?: string; hook?: string; prio?: number; policy?: string };
export type NftRule = { family: string; table: string; chain: string; handle: number; comment?: string; expr: Record<string, unknown>[] };
export type NftObject = { table?: { family: string; name: string }; chain?: NftChain; rule?: NftRule; metainfo?: unknown };

/** kvmctl's rules in DOCKER-USER chains, for one network (or every network when `net` is omitted). */
export function dockerUserRules(rs: NftObject[], net?: string): (DockerRuleRef & { net: string })[] {
  const out: (DockerRuleRef & { net: string })[] = [];
  for (const o of rs) {
    const r = o.rule;
    if (!r || r.table !== 'filter' || r.chain !== 'DOCKER-USER' || (r.family !== 'ip' && r.family !== 'ip6')) continue;
    const m = /^kvmctl:net=(.+)$/.exec(r.comment ?? '');
    if (m && (net === undefined || m[1] === net)) out.push({ family: r.family, handle: r.handle, net: m[1]! });
  }
  return out;
}

export function hasTable(rs: NftObject[], family: string, name: string): boolean {
  return rs.some((o) => o.table?.family === family && o.table.name === name);
}
