/**
 * A VM's addresses by source (src/vm/addresses.ts, src/vm/agent-cache.ts): the merge of DHCP
 * leases and agent-reported addresses (pure), and the report against a fake qemu-ga on the VM's
 * agent socket: an answer is kept for the run, a second ask within maxAgeMs does not reach the
 * agent, an agent that does not answer costs the short timeout and shows its last answer marked
 * `cached`, a new QEMU run never shows the previous run's addresses, agent: false never connects.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defPath } from '../../../src/definition/store.js';
import { resolvePaths, type Paths } from '../../../src/host/paths.js';
import { formatAddresses, mergeAddresses, vmAddressReport } from '../../../src/vm/addresses.js';
import { readAgentAddresses, writeAgentAddresses } from '../../../src/vm/agent-cache.js';
import { runtimePaths } from '../../../src/vm/runtime-paths.js';
import { tempHome } from '../../helpers/netns.js';

describe('mergeAddresses / formatAddresses', () => {
  it('one row per IP, marked lease, agent or both; agent-only addresses (IPv6, other NICs) follow', () => {
    const rows = mergeAddresses(
      [
        { nic: 'net0', network: 'nat0', mac: '52:54:00:aa:00:01', ip: '10.79.0.23' },
        { nic: 'net1', network: 'nat1', mac: '52:54:00:aa:00:02' }, // no lease yet
      ],
      [
        { name: 'enp0s2', mac: '52:54:00:AA:00:01', addresses: ['10.79.0.23/24', 'fd00::23/64'] },
        { name: 'docker0', addresses: ['172.17.0.1/16'] },
      ],
    );
    expect(rows).toEqual([
      { ip: '10.79.0.23', prefix: 24, sources: ['lease', 'agent'], nic: 'net0', network: 'nat0', mac: '52:54:00:aa:00:01', iface: 'enp0s2' },
      { ip: 'fd00::23', prefix: 64, sources: ['agent'], iface: 'enp0s2', mac: '52:54:00:aa:00:01' },
      { ip: '172.17.0.1', prefix: 16, sources: ['agent'], iface: 'docker0' },
    ]);
    expect(formatAddresses(rows)).toBe('10.79.0.23 (lease, agent), fd00::23 (agent), 172.17.0.1 (agent)');
    expect(formatAddresses(mergeAddresses([{ nic: 'n', network: 'x', mac: 'm', ip: '10.0.0.2' }], undefined))).toBe('10.0.0.2 (lease)');
    expect(formatAddresses([])).toBe('-');
  });
});

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A fake agent on the VM's qga.sock; `silent` accepts and never answers (a guest without qemu-ga). */
async function fakeAgent(sock: string, mode: { silent: boolean }): Promise<{ connections: () => number }> {
  let n = 0;
  const srv = net.createServer((c) => {
    n++;
    c.on('error', () => undefined);
    let buf = '';
    c.on('data', (b) => {
      if (mode.silent) return;
      buf += b.toString('latin1').replace(/\xff/g, '');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, i)) as { execute: string; arguments?: { id: number } };
        buf = buf.slice(i + 1);
        if (cmd.execute === 'guest-sync-delimited') c.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${cmd.arguments!.id}}\n`)]));
        else if (cmd.execute === 'guest-network-get-interfaces')
          c.write(`${JSON.stringify({ return: [{ name: 'lo', 'ip-addresses': [{ 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 }] }, { name: 'enp0s2', 'hardware-address': '52:54:00:12:34:56', 'ip-addresses': [{ 'ip-address': '192.168.7.9', 'ip-address-type': 'ipv4', prefix: 24 }] }] })}\n`);
      }
    });
  });
  servers.push(srv);
  fs.mkdirSync(path.dirname(sock), { recursive: true });
  await new Promise<void>((r) => srv.listen(sock, r));
  return { connections: () => n };
}

function setup(agent: boolean): { paths: Paths; name: string; newRun: (starttime: number) => void } {
  const paths = resolvePaths({ KVMCTL_HOME: tempHome() });
  const name = 'ga1';
  fs.mkdirSync(path.dirname(defPath(paths, 'vm', name)), { recursive: true });
  fs.writeFileSync(defPath(paths, 'vm', name), `name: ${name}\nmemory: 256M\nagent: ${agent}\nkernel: { builtin: test-guest }\n`);
  const rt = runtimePaths(paths, name);
  fs.mkdirSync(rt.dir, { recursive: true });
  const newRun = (starttime: number) => fs.writeFileSync(path.join(rt.dir, 'state.json'), JSON.stringify({ name, pid: 4242, starttime, startedAt: new Date().toISOString(), accel: 'tcg', warnings: [] }));
  newRun(1000);
  return { paths, name, newRun };
}

describe('vmAddressReport', () => {
  it('asks the agent once per maxAgeMs, shows its last answer (cached) when it does not answer, forgets it with the run', async () => {
    const { paths, name, newRun } = setup(true);
    const mode = { silent: false };
    const agent = await fakeAgent(runtimePaths(paths, name).qga!, mode);
    const first = await vmAddressReport(paths, name, { running: true, agentTimeoutMs: 1_000 });
    expect(first).toMatchObject({ agentState: 'answered', leases: [], addresses: [{ ip: '192.168.7.9', prefix: 24, sources: ['agent'], iface: 'enp0s2' }] });
    expect(readAgentAddresses(paths, name)?.interfaces).toEqual([{ name: 'enp0s2', mac: '52:54:00:12:34:56', addresses: ['192.168.7.9/24'] }]);

    const again = await vmAddressReport(paths, name, { running: true });
    expect(again.agentState).toBe('answered');
    expect(agent.connections()).toBe(1); // within maxAgeMs: from the kept answer

    mode.silent = true;
    const t0 = Date.now();
    const busy = await vmAddressReport(paths, name, { running: true, agentTimeoutMs: 300, maxAgeMs: 0 });
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(2_500); // the short timeout, not the client's 3 s sync default
    expect(busy).toMatchObject({ agentState: 'cached', addresses: [{ ip: '192.168.7.9', sources: ['agent'] }], agentNote: expect.stringMatching(/no guest agent answers/) });
    // The failure is remembered too: the next list within maxAgeMs does not wait again.
    const t1 = Date.now();
    expect((await vmAddressReport(paths, name, { running: true, agentTimeoutMs: 3_000 })).agentState).toBe('cached');
    expect(Date.now() - t1).toBeLessThan(1_500); // asking would have waited the 3 s
    expect(agent.connections()).toBe(2);

    newRun(2000); // QEMU restarted: the old run's addresses are not this run's
    expect(readAgentAddresses(paths, name)).toBeUndefined();
    const fresh = await vmAddressReport(paths, name, { running: true, agentTimeoutMs: 300 });
    expect(fresh).toMatchObject({ agentState: 'unavailable', addresses: [] });
  });

  it('agent: false never connects; a stopped VM has no addresses; a VM started without the channel says so', async () => {
    const off = setup(false);
    const agent = await fakeAgent(runtimePaths(off.paths, off.name).qga!, { silent: false });
    expect(await vmAddressReport(off.paths, off.name, { running: true })).toEqual({ addresses: [], leases: [], agentState: 'off' });
    expect(agent.connections()).toBe(0);
    expect(await vmAddressReport(off.paths, off.name, { running: false })).toEqual({ addresses: [], leases: [], agentState: 'not-running' });
    const on = setup(true); // no qga.sock at all
    expect(await vmAddressReport(on.paths, on.name, { running: true })).toMatchObject({ agentState: 'off', agentNote: expect.stringMatching(/without an agent channel/) });
  });

  it('writeAgentAddresses keeps the last interfaces across a failed attempt and writes nothing without a run', () => {
    const { paths, name } = setup(true);
    writeAgentAddresses(paths, name, { interfaces: [{ name: 'eth0', addresses: ['10.0.0.2/24'] }] }, 1_000);
    writeAgentAddresses(paths, name, { why: 'busy' }, 2_000);
    expect(readAgentAddresses(paths, name)).toMatchObject({ at: 2_000, why: 'busy', interfaces: [{ name: 'eth0', addresses: ['10.0.0.2/24'] }] });
    const other = resolvePaths({ KVMCTL_HOME: tempHome() });
    writeAgentAddresses(other, name, { why: 'x' });
    expect(fs.existsSync(path.join(runtimePaths(other, name).dir, 'agent-addresses.json'))).toBe(false);
  });
});
