/**
 * The pure parts of RBD storage (#21): storage definitions (every problem with its path), disks
 * that name a volume, the -blockdev rbd argv (secret object from a file, cache/discard mapping,
 * no key anywhere), the rbd tool's argv, keyring parsing, volume references, and `apply` refusing
 * storage definitions (host configuration only).
 */
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { rbdCache, serverOf, type RbdVolumeArg } from '../../../src/qemu/argv-rbd.js';
import { vmSchema, type VmInput } from '../../../src/definition/vm.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { parseStorage } from '../../../src/definition/storage.js';
import { imageSpec, keyFromKeyring, monHost, toolArgv } from '../../../src/storage/rbd.js';
import { parseRef } from '../../../src/storage/volumes.js';
import { vmPathIssues } from '../../../src/vm/path-check.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { tempHome } from '../../helpers/netns.js';
import fs from 'node:fs';
import path from 'node:path';

const KEY = 'AQBzXmNlAAAAABAAm0ZsJt1yPZk1Ac3vDHuIXw==';
const rt = (d: string) => ({ dir: d, qmp: `${d}/qmp.sock`, serial: `${d}/serial.sock`, serialLog: `${d}/serial.log`, pidfile: `${d}/qemu.pid`, vnc: `${d}/vnc.sock` });
const vol = (x: Partial<RbdVolumeArg> = {}): RbdVolumeArg => ({ storage: 'ceph1', pool: 'rbd', image: 'web0', servers: [{ host: '10.0.0.1', port: '3300' }], user: 'kvmctl', keyFile: '/run/k/vms/v/rbd-ceph1.key', cache: 'writeback', discard: 'unmap', ...x });
const vm = (x: Partial<VmInput>) => vmSchema.parse({ name: 'v', ...x });
const argv = (vmIn: Partial<VmInput>, volumes: Record<string, RbdVolumeArg>, c: Partial<ArgvContext> = {}) =>
  buildArgv(vm(vmIn), TCG_HOST_FACTS, { runtime: rt('/run/k/vms/v'), imagesDir: '/img', attachments: [], volumes, ...c }).argv;
const blockdevs = (a: string[]) => a.flatMap((x, i) => (x === '-blockdev' ? [JSON.parse(a[i + 1]!) as Record<string, unknown>] : []));

const RBD = `kind: storage
name: ceph1
type: rbd
pool: rbd
monitors: [10.0.0.1, "10.0.0.2:6789", "[fd00::1]:3300"]
user: kvmctl
keyring: /etc/ceph/ceph.client.kvmctl.keyring
`;

describe('storage definitions', () => {
  it('an rbd storage: defaults for user-independent settings (cache writeback, discard unmap)', () => {
    const s = parseStorage(RBD, 'ceph1.yaml');
    expect(s).toMatchObject({ type: 'rbd', pool: 'rbd', user: 'kvmctl', cache: 'writeback', discard: 'unmap' });
  });

  it('reports every problem at once, each with its path', () => {
    const bad = 'kind: storage\nname: ceph1\ntype: rbd\npool: "a b"\nuser: client.admin\nkeyring: rel/keyring\nmonitors: ["not a monitor!"]\ncach: none\n';
    try {
      parseStorage(bad, 'bad.yaml');
      expect.unreachable();
    } catch (e) {
      const paths = ((e as KvmError).issues ?? []).map((i) => i.path).sort();
      expect(paths).toEqual(['cach', 'keyring', 'monitors[0]', 'pool', 'user']);
      expect((e as KvmError).message).toMatch(/did you mean "cache"/);
    }
  });

  it('an rbd storage needs monitors or a conf', () => {
    expect(() => parseStorage('kind: storage\nname: c\ntype: rbd\npool: rbd\nkeyring: /k\n', 'x')).toThrow(/monitors: give monitors: \(addresses\) or conf:/);
    expect(parseStorage('kind: storage\nname: c\ntype: rbd\npool: rbd\nkeyring: /k\nconf: /etc/ceph/ceph.conf\n', 'x').type).toBe('rbd');
  });

  it('a dir storage is a named absolute path; kind must be storage', () => {
    expect(parseStorage('kind: storage\nname: local\ntype: dir\npath: /srv/vms\n', 'x')).toMatchObject({ type: 'dir', path: '/srv/vms' });
    expect(() => parseStorage('kind: storage\nname: local\ntype: dir\npath: /srv/../etc\n', 'x')).toThrow(/path: .*absolute path without/);
    expect(() => parseStorage('kind: network\nname: local\ntype: dir\npath: /srv/vms\n', 'x')).toThrow(/kind: must be "storage"/);
  });

  it('apply (and so the API) refuses kind: storage, pointing at kvmctl storage define', () => {
    const [d] = parseDefinitions(RBD, 'ceph1.yaml');
    expect(d!.issues).toEqual([{ path: 'kind', message: expect.stringMatching(/kvmctl storage define -f FILE/) }]);
  });
});

describe('disks naming a volume', () => {
  it('storage + volume, or file: one of the two', () => {
    expect(vm({ disks: [{ storage: 'ceph1', volume: 'web0' }] }).disks[0]).toMatchObject({ storage: 'ceph1', volume: 'web0', interface: 'virtio' });
    const r = vmSchema.safeParse({ name: 'v', disks: [{ storage: 'ceph1' }, { file: 'a.qcow2', volume: 'x' }, {}, { storage: 'c', volume: 'v', create: { size: '1G' } }, { storage: 'c', volume: 'bad/name' }] });
    expect(r.success).toBe(false);
    const issues = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues).toEqual(expect.arrayContaining([
      expect.stringMatching(/^disks\.0\.volume: is required with storage:/),
      expect.stringMatching(/^disks\.1\.volume: a disk is either a file or a volume/),
      expect.stringMatching(/^disks\.2\.file: is required/),
      expect.stringMatching(/^disks\.3\.create: volumes are made with kvmctl volume create/),
      expect.stringMatching(/^disks\.4\.volume: /),
    ]));
  });

  it('apply/validate/start: the storage must be defined on this host', () => {
    const paths = resolvePaths({ KVMCTL_HOME: tempHome() });
    const v = vm({ disks: [{ storage: 'ceph1', volume: 'web0' }, { storage: 'ceph2', volume: 'x' }] });
    fs.mkdirSync(path.join(paths.config, 'storage'), { recursive: true });
    fs.writeFileSync(path.join(paths.config, 'storage/ceph1.yaml'), RBD);
    expect(vmPathIssues(v, paths)).toEqual([{ path: 'disks[1].storage', message: expect.stringMatching(/no storage named "ceph2" on this host/) }]);
  });

  it('the same volume twice in one VM is refused', () => {
    const r = vmSchema.safeParse({ name: 'v', disks: [{ storage: 'c', volume: 'a' }, { storage: 'c', volume: 'a', id: 'd2' }] });
    expect(r.error!.issues.map((i) => i.message)).toContain('duplicate volume "c/a" (also disks[0])');
  });
});

describe('argv: RBD volumes', () => {
  it('a secret object from the key file, an rbd protocol node and a raw format node, a device on the format node', () => {
    const a = argv({ disks: [{ storage: 'ceph1', volume: 'web0' }] }, { disk0: vol() });
    const line = a.join(' ');
    expect(line).toContain('-object secret,id=sec-ceph1,file=/run/k/vms/v/rbd-ceph1.key,format=base64');
    const [proto, fmt] = blockdevs(a);
    expect(proto).toEqual({
      driver: 'rbd', 'node-name': 'disk0-rbd', pool: 'rbd', image: 'web0', server: [{ host: '10.0.0.1', port: '3300' }], user: 'kvmctl',
      'key-secret': 'sec-ceph1', 'auth-client-required': ['cephx'], cache: { direct: false, 'no-flush': false }, discard: 'unmap', 'read-only': false,
    });
    expect(fmt).toMatchObject({ driver: 'raw', 'node-name': 'disk0', file: 'disk0-rbd' });
    expect(line).toContain('-device virtio-blk-pci,drive=disk0,write-cache=on');
    expect(line).not.toContain(KEY);
    expect(line).not.toContain('-drive');
  });

  it('one secret per storage; scsi and nvme devices; a namespace and a conf are passed', () => {
    const a = argv(
      { disks: [{ storage: 'ceph1', volume: 'a', interface: 'scsi' }, { storage: 'ceph1', volume: 'b', interface: 'nvme', id: 'fast' }] },
      { disk0: vol({ image: 'a', namespace: 'tenant1', conf: '/etc/ceph/c.conf', servers: undefined }), fast: vol({ image: 'b' }) },
    );
    expect(a.filter((x) => x.startsWith('secret,'))).toHaveLength(1);
    const line = a.join(' ');
    expect(line).toContain('-device virtio-scsi-pci,id=scsi0 -device scsi-hd,drive=disk0,bus=scsi0.0,write-cache=on');
    expect(line).toContain('-device nvme,drive=fast,serial=fast');
    expect(blockdevs(a)[0]).toMatchObject({ namespace: 'tenant1', conf: '/etc/ceph/c.conf' });
    expect(blockdevs(a)[0]).not.toHaveProperty('server');
  });

  it('cache: the disk wins over the storage; none turns librbd cache off (direct), directsync also the device cache', () => {
    expect(rbdCache('writeback')).toEqual({ cache: { direct: false, 'no-flush': false }, writeCache: 'on' });
    expect(rbdCache('none')).toEqual({ cache: { direct: true, 'no-flush': false }, writeCache: 'on' });
    expect(rbdCache('writethrough')).toEqual({ cache: { direct: false, 'no-flush': false }, writeCache: 'off' });
    expect(rbdCache('directsync')).toEqual({ cache: { direct: true, 'no-flush': false }, writeCache: 'off' });
    expect(rbdCache('unsafe').cache['no-flush']).toBe(true);
    const a = argv({ disks: [{ storage: 'ceph1', volume: 'web0', cache: 'directsync', discard: 'ignore', readOnly: true }] }, { disk0: vol() });
    expect(blockdevs(a)[0]).toMatchObject({ cache: { direct: true }, discard: 'ignore', 'read-only': true });
    expect(a.join(' ')).toContain('write-cache=off');
  });

  it('a volume disk without a resolved volume is an internal error, not a silent skip', () => {
    expect(() => argv({ disks: [{ storage: 'ceph1', volume: 'web0' }] }, {})).toThrow(/no resolved volume/);
  });

  it('monitor addresses: default port 3300, IPv6 in brackets', () => {
    expect(serverOf('10.0.0.1')).toEqual({ host: '10.0.0.1', port: '3300' });
    expect(serverOf('mon1.example:6789')).toEqual({ host: 'mon1.example', port: '6789' });
    expect(serverOf('[fd00::1]:3300')).toEqual({ host: 'fd00::1', port: '3300' });
    expect(serverOf('[fd00::1]')).toEqual({ host: 'fd00::1', port: '3300' });
  });
});

describe('the rbd tool', () => {
  const s = parseStorage(RBD, 'x');
  it('names user, keyring file, monitors and never /etc/ceph/ceph.conf implicitly; runs in the namespace', () => {
    if (s.type !== 'rbd') throw new Error('rbd');
    expect(monHost(s)).toBe('10.0.0.1:3300,10.0.0.2:6789,[fd00::1]:3300');
    expect(toolArgv('rbd', { storage: s, netns: 'ns1' })).toEqual(['ip', 'netns', 'exec', 'ns1', 'rbd', '-c', '/dev/null', '-m', '10.0.0.1:3300,10.0.0.2:6789,[fd00::1]:3300', '--id', 'kvmctl', '--keyring', '/etc/ceph/ceph.client.kvmctl.keyring', '--client-mount-timeout', '15']);
    expect(toolArgv('ceph', { storage: { ...s, conf: '/c.conf', monitors: undefined } })).toEqual(['ceph', '-c', '/c.conf', '--id', 'kvmctl', '--keyring', '/etc/ceph/ceph.client.kvmctl.keyring', '--connect-timeout', '15']);
    expect(imageSpec({ pool: 'rbd', namespace: 'ns' }, 'img', 's1')).toBe('rbd/ns/img@s1');
  });

  it('reads the key of the right client from a keyring', () => {
    const text = `[client.admin]\n\tkey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n[client.kvmctl]\n\tkey = ${KEY}\n\tcaps mon = "profile rbd"\n`;
    expect(keyFromKeyring(text, 'kvmctl')).toBe(KEY);
    expect(keyFromKeyring(text, 'nobody')).toBeUndefined();
    expect(keyFromKeyring('[client.kvmctl]\nkey = not base64!\n', 'kvmctl')).toBeUndefined();
  });

  it('volume references', () => {
    expect(parseRef('ceph1/web0')).toEqual({ storage: 'ceph1', volume: 'web0', snap: undefined });
    expect(parseRef('ceph1/web0@s1', { snap: 'required' })).toEqual({ storage: 'ceph1', volume: 'web0', snap: 's1' });
    expect(() => parseRef('web0')).toThrow(/STORAGE\/VOLUME/);
    expect(() => parseRef('ceph1/web0@s1')).toThrow(/names a snapshot/);
    expect(() => parseRef('ceph1/web0', { snap: 'required' })).toThrow(/names no snapshot/);
    expect(() => parseRef('ceph1/-bad')).toThrow(KvmError);
  });
});
