/**
 * `net export --format script` run for real: each line executed as an argv (no shell) inside a
 * namespace gives the same links as `kvmctl net up` in another namespace with the same starting
 * point; the macvtap lines make the VM's macvtap and chown/chmod its /dev/tapN.
 */
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { resolvePaths } from '../../src/host/paths.js';
import { exportScript, parseScript } from '../../src/net/export/script.js';
import { listAddrs, listLinks, readNsFile } from '../../src/net/ip.js';
import { tapDevOf } from '../../src/net/macvtap.js';
import { netUp } from '../../src/net/networks.js';
import { vmLinkName } from '../../src/net/tap.js';
import { parseDefinitions } from '../../src/definition/load.js';
import { networkSchema, type NetworkSpec } from '../../src/definition/network.js';
import { vmSchema } from '../../src/definition/vm.js';
import { canUseNetns, createNetns, tempHome, type Netns } from '../helpers/netns.js';

const can = canUseNetns();
const examNets = parseDefinitions(fs.readFileSync(new URL('../fixtures/net/exam_vm-networks.yaml', import.meta.url), 'utf8')).map((d) => d.spec as NetworkSpec);

async function runScriptIn(ns: string, text: string): Promise<number> {
  let n = 0;
  for (const words of parseScript(text)) {
    const argv: string[] = [];
    for (const w of words) {
      let s = '';
      for (const part of w) s += typeof part === 'string' ? part : await readNsFile(part.cat, { netns: ns });
      argv.push(s);
    }
    await run(argv[0] === 'ip' ? ['ip', '-n', ns, ...argv.slice(1)] : ['ip', 'netns', 'exec', ns, ...argv]);
    n++;
  }
  return n;
}

/** What matters about the links of a namespace, comparable across namespaces. */
async function snapshot(ns: string) {
  const [links, addrs] = await Promise.all([listLinks({ netns: ns }), listAddrs({ netns: ns })]);
  return links
    .filter((l) => l.ifname !== 'lo')
    .map((l) => ({
      ifname: l.ifname,
      kind: l.linkinfo?.info_kind,
      master: l.master,
      alias: l.ifalias,
      up: l.flags.includes('UP'),
      addrs: (addrs.get(l.ifname) ?? []).filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`),
      bridge: l.linkinfo?.info_kind === 'bridge' ? ['stp_state', 'forward_delay', 'hello_time'].map((k) => l.linkinfo?.info_data?.[k]) : undefined,
    }))
    .sort((a, b) => a.ifname.localeCompare(b.ifname));
}

describe.skipIf(!can.ok)('script export, run for real', () => {
  let a: Netns;
  let b: Netns;
  beforeEach(async () => {
    a = await createNetns();
    b = await createNetns();
    for (const ns of [a, b]) await ns.ip('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'peer1');
  });
  afterEach(async () => {
    await a.destroy();
    await b.destroy();
  });

  it("the seed's layout: script in one namespace == net up in another", async () => {
    const paths = resolvePaths({ KVMCTL_HOME: tempHome() });
    const t0 = performance.now();
    const lines = await runScriptIn(a.name, exportScript(examNets));
    const scriptMs = performance.now() - t0;
    for (const n of examNets) await netUp(n, { paths, netns: b.name });
    const sa = await snapshot(a.name);
    expect(sa).toEqual(await snapshot(b.name));
    expect(sa.find((l) => l.ifname === 'br_local0')?.addrs).toEqual(['192.168.1.1/24']);
    expect(sa.find((l) => l.ifname === 'br0')?.bridge).toEqual([0, 0, 1000]);
    console.log(`script: ${lines} commands in ${scriptMs.toFixed(0)} ms`);
  });

  it('macvtap lines: the VM macvtap with its MAC, and /dev/tapN chowned and chmod 660', async () => {
    const mv = networkSchema.parse({ kind: 'network', name: 'mv', type: 'macvtap', parent: 'eth1' });
    const vm = vmSchema.parse({ name: 'mvm', nics: [{ network: 'mv', mac: '52:54:00:00:12:34' }], runAs: { user: 'nobody', group: 'nogroup' } });
    await runScriptIn(a.name, exportScript([mv], [vm]));
    const x = vmLinkName('mvm', 0, 'macvtap');
    const l = (await listLinks({ netns: a.name })).find((k) => k.ifname === x);
    expect(l?.linkinfo?.info_kind).toBe('macvtap');
    expect(l?.address).toBe('52:54:00:00:12:34');
    expect(l?.ifalias).toBe('kvmctl:vm=mvm,nic=net0');
    const dev = await tapDevOf(x, { netns: a.name });
    const st = fs.statSync(dev.node);
    // The script (like the seed) goes by /dev/tapN; only when no other namespace's macvtap took
    // that node (a parallel test) is it this macvtap's, which is what the chown/chmod touched.
    if (st.rdev === dev.rdev) {
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.uid).toBe(65534);
    }
  });
});
