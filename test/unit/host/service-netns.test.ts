/**
 * `kvmctl service install --netns NS` (or with KVMCTL_NETNS): the boot-time service runs
 * `autostart --netns NS`, so VMs that were confined when the service was installed are not started
 * in the host's namespace at boot. shutdown-all needs no namespace (each VM's state says where it is).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../../src/host/exec.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { installService, openrcScript, systemdUnit, type ServiceConfig } from '../../../src/host/service.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-svcns-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const cfg = (o: Partial<ServiceConfig> = {}): ServiceConfig => ({ node: '/usr/bin/node', script: '/opt/kvmctl/bin/kvmctl.js', timeoutSec: 60, interfaces: [], ...o });

describe('service install with a network namespace', () => {
  it('systemd: ExecStart runs autostart --netns NS; ExecStop is unchanged; no namespace, no flag', () => {
    const t = systemdUnit(cfg({ netns: 'lab' }));
    expect(t).toContain('ExecStart=-/usr/bin/node /opt/kvmctl/bin/kvmctl.js autostart --netns lab\n');
    expect(t).toContain('ExecStop=/usr/bin/node /opt/kvmctl/bin/kvmctl.js shutdown-all --timeout 60\n');
    expect(systemdUnit(cfg())).toContain('ExecStart=-/usr/bin/node /opt/kvmctl/bin/kvmctl.js autostart\n');
  });

  it('OpenRC: start() calls kvmctl autostart --netns NS (run through sh with a stand-in node)', async () => {
    const fake = path.join(tmp, 'fake-node');
    fs.writeFileSync(fake, '#!/bin/sh\nshift\nprintf "%s\\n" "$@" >&2\n', { mode: 0o755 });
    const f = path.join(tmp, 'openrc');
    fs.writeFileSync(f, openrcScript(cfg({ node: fake, netns: 'lab.1' })));
    const r = await run(['sh', '-c', 'ebegin() { :; }; eend() { return "$1"; }; ewarn() { :; }; . "$1"; start', 'sh', f]);
    expect(r.stderr.trim().split('\n')).toEqual(['autostart', '--netns', 'lab.1']);
  });

  it('installService records it and says the namespace must exist at boot', async () => {
    const prefix = path.join(tmp, 'root');
    fs.mkdirSync(prefix);
    const paths = resolvePaths({ KVMCTL_HOME: path.join(tmp, 'home') });
    const r = await installService(paths, { init: 'systemd', prefix, dryRun: true, env: {}, node: '/usr/bin/node', script: '/k/bin/kvmctl.js', netns: 'lab' });
    expect(r.text).toContain('autostart --netns lab\n');
    expect(r.next.join('\n')).toContain('ip netns add lab');
  });
});
