/**
 * The `ip` commands that build the same links as `kvmctl net up` (and, for VMs on macvtap
 * networks, the per-VM macvtaps with the seed's chown/chmod of /dev/tapN), one command per line.
 *
 * The text is valid sh, and also simple enough to parse back (parseScript) and run line by line
 * as argv arrays with no shell: words are separated by spaces, '…' quotes a word, and the only
 * substitution is `$(cat FILE)` inside a word (the seed's /dev/tap$(cat /sys/class/net/X/ifindex)).
 */
import { formatArgv } from '../../host/exec.js';
import { type NetworkSpec } from '../../definition/network.js';
import { bridgeIfname, uplinksOf } from '../../definition/network-views.js';
import type { VmSpec } from '../../definition/vm.js';
import { deriveMac } from '../attach.js';
import { bridgeAddArgs } from '../bridge.js';
import { ownerAlias } from '../ip.js';
import { vmLinkName } from '../tap.js';

export function scriptCommands(nets: NetworkSpec[], vms: VmSpec[] = []): string[][] {
  const cmds: string[][] = [];
  for (const n of nets) {
    const br = bridgeIfname(n);
    if (br && (n.type === 'bridge' || n.type === 'host-only')) {
      cmds.push(['ip', ...bridgeAddArgs(n)]);
      cmds.push(['ip', 'link', 'set', 'dev', br, 'alias', ownerAlias({ kind: 'net', net: n.name })]);
      if (n.mtu) cmds.push(['ip', 'link', 'set', 'dev', br, 'mtu', String(n.mtu)]);
      for (const t of n.taps) {
        cmds.push(['ip', 'tuntap', 'add', 'dev', t, 'mode', 'tap']);
        cmds.push(['ip', 'link', 'set', 'dev', t, 'alias', ownerAlias({ kind: 'net-tap', net: n.name })]);
        cmds.push(['ip', 'link', 'set', 'dev', t, ...(n.mtu ? ['mtu', String(n.mtu)] : []), 'master', br, 'up']);
      }
      for (const u of uplinksOf(n)) {
        cmds.push(['ip', 'link', 'set', 'dev', u, 'master', br]);
        cmds.push(['ip', 'link', 'set', 'dev', u, 'up']);
      }
      for (const a of n.addresses) cmds.push(['ip', 'addr', 'replace', a, 'dev', br]);
      cmds.push(['ip', 'link', 'set', 'dev', br, 'up']);
    } else if (n.type === 'macvtap') {
      cmds.push(['ip', 'link', 'set', 'dev', n.parent, 'up']);
      for (const vm of vms) {
        vm.nics.forEach((nic, i) => {
          if (nic.network !== n.name) return;
          const id = nic.id ?? `net${i}`;
          const x = vmLinkName(vm.name, i, 'macvtap');
          const mac = (nic.mac ?? deriveMac(vm.name, id)).toLowerCase();
          cmds.push(['ip', 'link', 'add', 'link', n.parent, 'name', x, 'address', mac, 'type', 'macvtap', 'mode', n.mode]);
          cmds.push(['ip', 'link', 'set', 'dev', x, 'alias', ownerAlias({ kind: 'vm', vm: vm.name, nic: id })]);
          cmds.push(['ip', 'link', 'set', 'dev', x, 'up']);
          const user = vm.runAs ? `${vm.runAs.user}:${vm.runAs.group ?? 'kvm'}` : 'root:kvm';
          cmds.push(['chown', user, `/dev/tap$(cat /sys/class/net/${x}/ifindex)`]);
          cmds.push(['chmod', '660', `/dev/tap$(cat /sys/class/net/${x}/ifindex)`]);
        });
      }
    }
  }
  return cmds;
}

/** Quote one word: plain, or '…' (a $(cat FILE) part is left outside the quotes). */
function quoteWord(w: string): string {
  return w
    .split(/(\$\(cat [^)]+\))/)
    .map((part) => (part.startsWith('$(cat ') ? part : part === '' ? '' : formatArgv([part])))
    .join('');
}

export function exportScript(nets: NetworkSpec[], vms: VmSpec[] = []): string {
  const head = [
    '#!/bin/sh',
    '# Written by kvmctl net export --format script: the links `kvmctl net up` makes (run as root).',
    '# One command per line; kvmctl can also run it without a shell.',
    'set -e',
  ];
  return `${[...head, ...scriptCommands(nets, vms).map((c) => c.map(quoteWord).join(' '))].join('\n')}\n`;
}

/** A word of a script line: literal text and $(cat FILE) parts. */
export type ScriptWord = (string | { cat: string })[];

/** Parse a script written by exportScript back into argv words (comments and `set -e` skipped). */
export function parseScript(text: string): ScriptWord[][] {
  const out: ScriptWord[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line === 'set -e') continue;
    const words: ScriptWord[] = [];
    let i = 0;
    while (i < line.length) {
      while (line[i] === ' ') i++;
      if (i >= line.length) break;
      const w: ScriptWord = [];
      let lit = '';
      while (i < line.length && line[i] !== ' ') {
        if (line[i] === "'") {
          const end = line.indexOf("'", i + 1);
          if (end < 0) throw new Error(`unterminated quote: ${line}`);
          lit += line.slice(i + 1, end);
          i = end + 1;
        } else if (line.startsWith('$(cat ', i)) {
          const end = line.indexOf(')', i);
          if (lit) { w.push(lit); lit = ''; }
          w.push({ cat: line.slice(i + 6, end) });
          i = end + 1;
        } else if (line[i] === '\\' && line[i + 1] === "'") {
          lit += "'";
          i += 2;
        } else {
          lit += line[i];
          i++;
        }
      }
      if (lit) w.push(lit);
      words.push(w);
    }
    out.push(words);
  }
  return out;
}
