/** Cluster pure parts: placement (most uncommitted memory wins, constraints exclude hosts with a reason), migration refusals, -incoming. */
import { describe, expect, it } from 'vitest';
import { localDisks, place, storageProblem, type Placed } from '../../../src/cluster/placement.js';
import { mergeReach } from '../../../src/cluster/storage-reach.js';
import type { HostInfo } from '../../../src/cluster/etcd.js';
import { validateVm } from '../../../src/definition/load.js';

const G = 2 ** 30;
const host = (name: string, memTotal = 4 * G, extra: Partial<HostInfo> = {}): HostInfo => ({ name, memTotal, cpus: 2, networks: [], storage: [], agentPid: 1, leaseId: '1', at: '', ...extra });
const vm = (y: Record<string, unknown>) => validateVm({ name: 'v', memory: '1G', ...y });

describe('place', () => {
  it('spreads VMs: most uncommitted memory, then fewer VMs, then name', () => {
    const hosts = [host('h1'), host('h2'), host('h3')];
    const placed: Placed[] = [];
    for (const n of ['a', 'b', 'c', 'd']) {
      const r = place(vm({ name: n }), hosts, placed);
      placed.push({ vm: n, host: r.host, memory: G });
    }
    expect(placed.map((p) => p.host)).toEqual(['h1', 'h2', 'h3', 'h1']);
  });

  it('honours hosts:, anti-affinity, networks, shared storage and memory, and explains a refusal', () => {
    const hosts = [host('h1', 4 * G, { networks: ['lan'] }), host('h2', 4 * G), host('h3', 512 * 2 ** 20, { networks: ['lan'] })];
    expect(place(vm({ hosts: ['h2'] }), hosts, []).host).toBe('h2');
    expect(place(vm({ antiAffinity: 'db' }), hosts, [{ vm: 'x', host: 'h1', memory: 0, antiAffinity: 'db' }, { vm: 'y', host: 'h2', memory: G, antiAffinity: 'web' }]).host).toBe('h2');
    expect(place(vm({ nics: [{ network: 'lan' }] }), hosts, []).host).toBe('h1');
    const shared = vm({ disks: [{ file: '/srv/vm/a.qcow2' }] });
    expect(place(shared, [host('h1'), host('h2', 4 * G, { storage: ['/srv/vm'] })], [], { sharedStorage: ['/srv/vm'] }).host).toBe('h2');
    expect(() => place(vm({ nics: [{ network: 'lan' }], memory: '1G', hosts: ['h2', 'h3'] }), hosts, [])).toThrow(expect.objectContaining({ code: 'NO_HOST', hint: expect.stringMatching(/h1: not in the definition's hosts list.*h2: lacks network lan.*h3: only 512 MiB uncommitted/) }));
    expect(() => place(vm({}), [], [])).toThrow(/no agent is alive/);
  });

  it('localDisks: relative paths and paths outside shared storage are local', () => {
    expect(localDisks(vm({ disks: [{ file: 'a.qcow2' }, { file: '/srv/vm/b.qcow2' }, { file: '/data/c.raw' }] }), ['/srv/vm'])).toEqual(['a.qcow2', '/data/c.raw']);
  });
});

describe('placement knows which hosts reach which storage (#21)', () => {
  const vm = { name: 'r', memory: G, nics: [], disks: [{ storage: 'ceph1', volume: 'r0' }, { storage: 'ceph1', volume: 'r1' }] } as unknown as Parameters<typeof place>[0];
  const ok = { name: 'ceph1', type: 'rbd', ok: true };
  it('leaves out hosts that have not reported, do not define the storage, or cannot reach it, each with its reason', () => {
    const hosts = [
      host('h1', 8 * G),
      host('h2', 8 * G, { storages: [{ name: 'other', type: 'rbd', ok: true }] }),
      host('h3', 8 * G, { storages: [{ ...ok, ok: false, why: 'rbd ls timed out' }] }),
      host('h4', 2 * G, { storages: [ok] }),
    ];
    const r = place(vm, hosts, []);
    expect(r.host).toBe('h4');
    expect(r.considered.map((c) => [c.host, c.why])).toEqual([
      ['h1', expect.stringMatching(/has not reported which storages it reaches yet \(needs ceph1/)],
      ['h2', 'does not define storage ceph1 (kvmctl storage define -f FILE on that host)'],
      ['h3', 'cannot reach storage ceph1: rbd ls timed out'],
      ['h4', undefined],
    ]);
    expect(() => place(vm, hosts.slice(0, 3), [])).toThrow(/no host can run VM "r"/);
  });
  it('a VM without volume disks does not care; mergeReach writes only a changed report', () => {
    expect(storageProblem({ disks: [{ file: 'a.qcow2' }] } as never, host('h1'))).toBeUndefined();
    const h = host('h1', G, { storages: [ok] });
    expect(mergeReach(h, [ok], 'now')).toBeUndefined();
    expect(mergeReach(h, [{ ...ok, ok: false, why: 'x' }], 'now')).toMatchObject({ name: 'h1', leaseId: '1', storages: [{ ok: false, why: 'x' }], storagesAt: 'now' });
    expect(mergeReach(host('h2'), [], 'now')).toMatchObject({ storages: [] });
  });
});

describe('live migration, pure parts', () => {
  it('says what QEMU would refuse before trying: a 9p share, CD-ROMs (local disks are copied)', async () => {
    const { migrationBlockers } = await import('../../../src/cluster/migrate.js');
    expect(migrationBlockers(vm({ kernel: { builtin: 'test-guest' } }), [])).toEqual([]);
    const b = migrationBlockers(vm({ shares: [{ path: '/srv/x', tag: 'x' }], disks: [{ file: 'a.qcow2' }], cdroms: ['/iso/d.iso'] }), []);
    expect(b.join('\n')).toMatch(/9p share \(x → \/srv\/x\).*Migration is disabled when VirtFS export path/);
    expect(b.join('\n')).not.toMatch(/a\.qcow2/);
    expect(b.join('\n')).toMatch(/CD-ROM \/iso\/d.iso/);
  });

  it('UEFI vars and kvmctl-kept TPM state travel in the stream; a TPM in a user state file is refused', async () => {
    const { migrationBlockers } = await import('../../../src/cluster/migrate.js');
    const k = { kernel: { builtin: 'test-guest' } };
    expect(migrationBlockers(vm({ ...k, tpm: { version: '2.0' } }), [])).toEqual([]);
    expect(migrationBlockers(vm({ ...k, firmware: { type: 'uefi' } }), ['/shared'])).toEqual([]);
    expect(migrationBlockers(vm({ ...k, firmware: { type: 'uefi', vars: '/shared/vm1.fd' } }), ['/shared'])).toEqual([]);
    expect(migrationBlockers(vm({ ...k, machine: 'q35', tpm: { version: '2.0', state: '/srv/tpm.raw' } }), []).join('\n')).toMatch(/TPM state is the file \/srv\/tpm\.raw/);
  });

  it('the destination QEMU gets -incoming; without it the argv is unchanged', async () => {
    const { buildArgv } = await import('../../../src/qemu/argv.js');
    const { TCG_HOST_FACTS } = await import('../../../src/host/facts.js');
    const rt = { dir: '/r', qmp: '/r/q', serial: '/r/s', serialLog: '/r/l', pidfile: '/r/p', vnc: '/r/v' };
    const base = buildArgv(vm({}), TCG_HOST_FACTS, { runtime: rt, imagesDir: '/i', attachments: [] }).argv;
    const inc = buildArgv(vm({}), TCG_HOST_FACTS, { runtime: rt, imagesDir: '/i', attachments: [], incoming: 'tcp:10.0.0.2:49200' }).argv;
    expect(base).not.toContain('-incoming');
    expect(inc.slice(inc.indexOf('-incoming'), inc.indexOf('-incoming') + 2)).toEqual(['-incoming', 'tcp:10.0.0.2:49200']);
    expect(inc.filter((a) => a !== '-incoming' && a !== 'tcp:10.0.0.2:49200')).toEqual(base);
  });
});
