/** Bridge and host-only networks for real, each test in its own network namespace. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/host/paths.js';
import { netDown, netStatus, netUp } from '../../src/net/networks.js';
import { getLink, listAddrs } from '../../src/net/ip.js';
import { networkSchema, type NetworkInput } from '../../src/definition/network.js';
import { canUseNetns, createNetns, tempHome, type Netns } from '../helpers/netns.js';

const can = canUseNetns();
const net = (x: Omit<NetworkInput, 'kind'>) => networkSchema.parse({ kind: 'network', ...x });

describe.skipIf(!can.ok)('bridge networks in a namespace', () => {
  let ns: Netns;
  let paths: Paths;
  beforeEach(async () => {
    ns = await createNetns();
    paths = resolvePaths({ KVMCTL_HOME: tempHome() });
  });
  afterEach(async () => {
    await ns.destroy();
  });

  it('bridge with a veth uplink: up enslaves it, down releases it and restores its state', async () => {
    await ns.ip('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'peer1');
    const br0 = net({ name: 'br0', type: 'bridge', uplinks: ['eth1'], taps: ['tap0'], forwardDelay: 0, helloTime: 10 });
    const t0 = performance.now();
    const up = await netUp(br0, { paths, netns: ns.name });
    const upMs = performance.now() - t0;
    expect(up.action).toBe('created');
    const br = await getLink('br0', { netns: ns.name });
    expect(br?.linkinfo?.info_kind).toBe('bridge');
    expect(br?.linkinfo?.info_data?.hello_time).toBe(1000);
    expect(br?.linkinfo?.info_data?.forward_delay).toBe(0);
    expect(br?.ifalias).toBe('kvmctl:net=br0');
    expect((await getLink('eth1', { netns: ns.name }))?.master).toBe('br0');
    expect((await getLink('tap0', { netns: ns.name }))?.master).toBe('br0');
    // idempotent
    expect((await netUp(br0, { paths, netns: ns.name })).action).toBe('already-up');
    const st = await netStatus(br0, { netns: ns.name });
    expect(st.state).toBe('up');
    expect(st.ports.sort()).toEqual(['eth1', 'tap0']);
    const t1 = performance.now();
    const down = await netDown(br0, { paths, netns: ns.name });
    const downMs = performance.now() - t1;
    expect(down.action).toBe('removed');
    expect(await getLink('br0', { netns: ns.name })).toBeUndefined();
    expect(await getLink('tap0', { netns: ns.name })).toBeUndefined();
    const eth1 = await getLink('eth1', { netns: ns.name });
    expect(eth1?.master).toBeUndefined();
    expect(eth1?.flags).not.toContain('UP'); // it was down before net up
    expect((await netDown(br0, { paths, netns: ns.name })).action).toBe('absent');
    console.log(`net up (bridge+uplink+tap): ${upMs.toFixed(0)} ms, net down: ${downMs.toFixed(0)} ms`);
  });

  it('host-only bridge gets the host address inside the namespace only', async () => {
    const local = net({ name: 'br_local0', type: 'host-only', addresses: ['192.168.1.1/24'], taps: ['tap_local0'], helloTime: 10 });
    await netUp(local, { paths, netns: ns.name });
    const addrs = await listAddrs({ netns: ns.name });
    expect(addrs.get('br_local0')?.map((a) => `${a.local}/${a.prefixlen}`)).toContain('192.168.1.1/24');
    const root = await listAddrs();
    expect([...root.values()].flat().some((a) => a.local === '192.168.1.1')).toBe(false);
    await netDown(local, { paths, netns: ns.name });
    expect(await getLink('br_local0', { netns: ns.name })).toBeUndefined();
  });

  it('refuses the uplink that carries the default route, one in another bridge, and overlapping addresses', async () => {
    await ns.veth('eth0', 'gw0');
    await ns.ip('addr', 'add', '10.9.0.2/24', 'dev', 'eth0');
    await ns.ip('route', 'add', 'default', 'via', '10.9.0.1');
    await expect(netUp(net({ name: 'brx', type: 'bridge', uplinks: ['eth0'] }), { paths, netns: ns.name })).rejects.toMatchObject({ code: 'UPLINK_DEFAULT_ROUTE' });
    expect(await getLink('brx', { netns: ns.name })).toBeUndefined(); // nothing was made

    await ns.ip('link', 'add', 'other', 'type', 'bridge');
    await ns.veth('eth2', 'peer2');
    await ns.ip('link', 'set', 'eth2', 'master', 'other');
    await expect(netUp(net({ name: 'bry', type: 'bridge', uplinks: ['eth2'] }), { paths, netns: ns.name })).rejects.toMatchObject({ code: 'UPLINK_IN_BRIDGE' });

    await expect(netUp(net({ name: 'brz', type: 'host-only', addresses: ['10.9.0.200/25'] }), { paths, netns: ns.name })).rejects.toMatchObject({ code: 'ADDRESS_OVERLAP' });
    await expect(netUp(net({ name: 'brq', type: 'bridge', uplinks: ['nope0'] }), { paths, netns: ns.name })).rejects.toMatchObject({ code: 'UPLINK_NOT_FOUND' });
  });

  it('a bridge kvmctl did not make is used as it is and never deleted', async () => {
    await ns.ip('link', 'add', 'br9', 'type', 'bridge');
    const n = net({ name: 'br9', type: 'bridge' });
    expect((await netUp(n, { paths, netns: ns.name })).action).toBe('foreign');
    expect((await netDown(n, { paths, netns: ns.name })).action).toBe('foreign');
    expect(await getLink('br9', { netns: ns.name })).toBeDefined();
  });

  it('undoes half-done work when a step fails (the kernel refuses to enslave lo)', async () => {
    const bad = net({ name: 'brm', type: 'bridge', uplinks: ['lo'], taps: ['tapm'] });
    await expect(netUp(bad, { paths, netns: ns.name })).rejects.toMatchObject({ code: 'IP_FAILED' });
    expect(await getLink('brm', { netns: ns.name })).toBeUndefined();
    expect(await getLink('tapm', { netns: ns.name })).toBeUndefined();
    expect((await getLink('lo', { netns: ns.name }))?.master).toBeUndefined();
  });
});
