/**
 * The named storages' list (src/storage/defs.ts listStorages: `kvmctl storage list`, GET /api/storage):
 * where each storage is, never its keyring (path or contents); a definition that no longer
 * validates is listed with its error, the others still are. Definitions are written as files here
 * (a real keyring file beside them); the browser test runs the route against a real Ceph.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolvePaths } from '../../../src/host/paths.js';
import { listStorages, storageDefsDir } from '../../../src/storage/defs.js';
import { storageListSchema } from '../../../src/api/contract-volumes.js';
import { tempHome } from '../../helpers/netns.js';

const KEY = 'AQBzXmNlAAAAABAAm0ZsJt1yPZk1Ac3vDHuIXw==';

describe('listStorages', () => {
  it('lists dir and rbd storages without key material; an invalid one with its error', async () => {
    const home = tempHome();
    const paths = resolvePaths({ KVMCTL_HOME: home });
    const keyring = path.join(home, 'ceph.client.kvmctl.keyring');
    fs.writeFileSync(keyring, `[client.kvmctl]\n\tkey = ${KEY}\n`, { mode: 0o600 });
    const dir = storageDefsDir(paths);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'ceph1.yaml'), `kind: storage\nname: ceph1\ntype: rbd\npool: vms\nnamespace: web\nmonitors: [10.0.0.1, '10.0.0.2:3300']\nuser: kvmctl\nkeyring: ${keyring}\ndescription: the cluster\n`);
    fs.writeFileSync(path.join(dir, 'local.yaml'), `kind: storage\nname: local\ntype: dir\npath: /srv/vms\n`);
    fs.writeFileSync(path.join(dir, 'broken.yaml'), `kind: storage\nname: broken\ntype: rbd\npool: vms\n`);
    const list = await listStorages(paths);
    expect(list.map((s) => s.name)).toEqual(['broken', 'ceph1', 'local']);
    expect(list[1]).toEqual({ name: 'ceph1', type: 'rbd', description: 'the cluster', pool: 'vms', namespace: 'web', monitors: ['10.0.0.1', '10.0.0.2:3300'], user: 'kvmctl' });
    expect(list[2]).toEqual({ name: 'local', type: 'dir', path: '/srv/vms' });
    expect(list[0]!.type).toBeUndefined();
    expect(list[0]!.error).toMatch(/broken\.yaml/);
    const text = JSON.stringify(list);
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(keyring);
    expect(text).not.toMatch(/keyring/i);
    // It is what the route's response schema says.
    expect(storageListSchema.parse(list)).toEqual(list);
  });

  it('no storage dir: an empty list', async () => {
    expect(await listStorages(resolvePaths({ KVMCTL_HOME: tempHome() }))).toEqual([]);
  });
});
