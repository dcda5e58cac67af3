/**
 * cloud-init NoCloud seed ISOs built with the real genisoimage (or xorriso): the volume label is
 * `cidata` and the files are there with the rendered content (checked with isoinfo and by reading
 * the primary volume descriptor ourselves).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../src/errors.js';
import { run } from '../../src/host/exec.js';
import { buildNoCloudSeed, isoTool, readIsoVolumeId, renderSeedFiles, renderUserData } from '../../src/disk/cloud-init.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0z3mBq8h2cVvYcVv8Q1b3Jx6yq2bq0v9rM0XQyA5aG alice@laptop';
const tool = isoTool();
const hasIsoinfo = fs.existsSync('/usr/bin/isoinfo');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kci-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('rendering (pure)', () => {
  it('renders a structured cloud-config as #cloud-config YAML with cloud-init key names', () => {
    const text = renderUserData({
      hostname: 'web1',
      sshAuthorizedKeys: [KEY],
      users: [{ name: 'alice', sshAuthorizedKeys: [KEY], sudo: true, groups: ['adm', 'sudo'], shell: '/bin/bash' }],
      packages: ['qemu-guest-agent', 'htop'],
      packageUpdate: true,
    });
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    const doc = parse(text) as Record<string, unknown>;
    expect(doc).toEqual({
      hostname: 'web1',
      preserve_hostname: false,
      ssh_authorized_keys: [KEY],
      users: ['default', { name: 'alice', ssh_authorized_keys: [KEY], sudo: 'ALL=(ALL) NOPASSWD:ALL', groups: 'adm, sudo', shell: '/bin/bash' }],
      package_update: true,
      packages: ['qemu-guest-agent', 'htop'],
    });
    expect(text).toContain(KEY); // a long key stays on one line
  });

  it('reports every invalid field with its path', () => {
    try {
      renderUserData({ hostname: 'bad_host!', sshAuthorizedKeys: ['not a key'], users: [{ name: 'Root' }], packages: ['ok', 'rm -rf'] });
      expect.fail('should have thrown');
    } catch (e) {
      const err = e as KvmError;
      expect([err.code, err.exit]).toEqual(['CLOUD_INIT_INVALID', 2]);
      expect(err.issues?.map((i) => i.path).sort()).toEqual(['userData.hostname', 'userData.packages.1', 'userData.sshAuthorizedKeys.0', 'userData.users.0.name']);
    }
  });

  it('meta-data gets an instance-id and the hostname; network-config needs a version', () => {
    const files = renderSeedFiles({ userData: { hostname: 'db' }, networkConfig: { version: 2, ethernets: { eth0: { dhcp4: true } } } });
    expect(parse(files['meta-data']!)).toEqual({ 'instance-id': 'iid-db', 'local-hostname': 'db' });
    expect(parse(files['network-config']!)).toEqual({ version: 2, ethernets: { eth0: { dhcp4: true } } });
    expect(() => renderSeedFiles({ userData: {}, networkConfig: { ethernets: {} } })).toThrow(/network-config/);
    expect(() => renderSeedFiles({ userData: 'hostname: x' })).toThrow(/#cloud-config/);
  });
});

describe('seed ISO', () => {
  // genisoimage (or xorriso) comes from the project setup (apt-get install genisoimage).
  it.skipIf(!tool)('has volume label cidata and the three files with their content', async () => {
    const out = path.join(dir, 'seed.iso');
    const r = await buildNoCloudSeed(
      {
        userData: { hostname: 'web1', users: [{ name: 'alice', sshAuthorizedKeys: [KEY], sudo: true }], packages: ['curl'] },
        metaData: { 'instance-id': 'web1-0001' },
        networkConfig: { version: 2, ethernets: { eth0: { dhcp4: true } } },
      },
      out,
    );
    expect(r.path).toBe(out);
    // our own reading of the primary volume descriptor (bytes 32808..32839)
    expect(readIsoVolumeId(out)).toBe('cidata');
    expect(fs.readdirSync(dir).filter((n) => n.includes('kvmctl-tmp'))).toEqual([]);
    if (!hasIsoinfo) return; // isoinfo ships with genisoimage
    const d = await run(['isoinfo', '-d', '-i', out]);
    expect(d.stdout).toMatch(/^Volume id: cidata$/m);
    expect(d.stdout).toMatch(/Joliet/);
    const list = await run(['isoinfo', '-J', '-f', '-i', out]);
    expect(list.stdout.split('\n').sort()).toEqual(['/meta-data', '/network-config', '/user-data']);
    const ud = await run(['isoinfo', '-J', '-x', '/user-data', '-i', out]);
    expect(ud.stdout).toBe(r.files['user-data']!.trimEnd());
    expect((parse(ud.stdout) as { users: unknown[] }).users[1]).toMatchObject({ name: 'alice', ssh_authorized_keys: [KEY] });
    const md = await run(['isoinfo', '-J', '-x', '/meta-data', '-i', out]);
    expect(parse(md.stdout)).toEqual({ 'instance-id': 'web1-0001', 'local-hostname': 'web1' });
  });

  it.skipIf(!tool)('never replaces an existing seed without force', async () => {
    const out = path.join(dir, 'seed2.iso');
    await buildNoCloudSeed({ userData: { hostname: 'one' } }, out);
    const before = fs.readFileSync(out);
    const e = await buildNoCloudSeed({ userData: { hostname: 'two' } }, out).catch((x: unknown) => x as KvmError);
    expect((e as KvmError).code).toBe('DISK_EXISTS');
    expect(fs.readFileSync(out).equals(before)).toBe(true);
    const r = await buildNoCloudSeed({ userData: { hostname: 'two' } }, out, { force: true });
    expect(r.files['meta-data']).toContain('two');
    expect(readIsoVolumeId(out)).toBe('cidata');
  });

  it('readIsoVolumeId refuses a file that is not an ISO', () => {
    const f = path.join(dir, 'not.iso');
    fs.writeFileSync(f, Buffer.alloc(40_000));
    expect(() => readIsoVolumeId(f)).toThrow(/not an ISO9660/);
  });
});
