/**
 * Autostart planning (pure) and the boot service files: the OpenRC script passes `sh -n` (and its
 * kvmctl() function really runs the given command line), depend() names the right net.* services,
 * the systemd unit passes `systemd-analyze verify` where it runs, install/uninstall in a temp
 * prefix, and a file kvmctl did not write is never touched.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKvmError } from '../../../src/errors.js';
import { run } from '../../../src/host/exec.js';
import { resolvePaths, type Paths } from '../../../src/host/paths.js';
import { installService, kvmctlScript, MARKER, openrcScript, systemdUnit, uninstallService, type ServiceConfig } from '../../../src/host/service.js';
import { writeDef } from '../../../src/definition/store.js';
import { vmSchema, type VmInput } from '../../../src/definition/vm.js';
import { autostartPlan, pool } from '../../../src/vm/autostart.js';

const vm = (name: string, extra: Partial<VmInput> = {}) => vmSchema.parse({ name, kernel: { builtin: 'test-guest' }, ...extra });

describe('autostartPlan', () => {
  it('groups by order ascending, same order together, the largest delay of a group, networks once', () => {
    const p = autostartPlan([
      vm('web', { autostart: { order: 1, delay: 5 } }),
      vm('db', { autostart: { order: 0, delay: 10 }, nics: [{ network: 'lan' }] }),
      vm('cache', { autostart: { order: 0, delay: 2 }, nics: [{ network: 'lan' }, { network: 'dmz' }] }),
      vm('late', { autostart: { order: 7 } }),
      vm('neg', { autostart: { order: -1 } }),
      vm('manual', { nics: [{ network: 'other' }] }),
      vm('off', { autostart: { enabled: false, order: 0 } }),
      vm('short', { autostart: true }),
    ]);
    expect(p.groups).toEqual([
      { order: -1, delaySec: 0, vms: ['neg'] },
      { order: 0, delaySec: 10, vms: ['cache', 'db', 'short'] },
      { order: 1, delaySec: 5, vms: ['web'] },
      { order: 7, delaySec: 0, vms: ['late'] },
    ]);
    expect(p.networks).toEqual(['dmz', 'lan']); // not "other": manual is not autostarted
  });

  it('nothing marked autostart: no groups', () => {
    expect(autostartPlan([vm('a'), vm('b', { autostart: false })])).toEqual({ groups: [], networks: [] });
  });

  it('pool runs at most N at once and keeps input order', async () => {
    let now = 0;
    let peak = 0;
    const r = await pool([30, 10, 20, 5, 15], 2, async (ms) => {
      peak = Math.max(peak, ++now);
      await new Promise((res) => setTimeout(res, ms));
      now--;
      return ms * 2;
    });
    expect(r).toEqual([60, 20, 40, 10, 30]);
    expect(peak).toBe(2);
  });
});

const cfg = (o: Partial<ServiceConfig> = {}): ServiceConfig => ({
  node: process.execPath,
  script: kvmctlScript(),
  timeoutSec: 90,
  interfaces: [],
  ...o,
});

describe('service files', () => {
  let tmp: string;
  let paths: Paths;
  let prefix: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-svc-'));
    paths = resolvePaths({ KVMCTL_HOME: path.join(tmp, 'home') });
    prefix = path.join(tmp, 'root');
    fs.mkdirSync(path.join(prefix, 'etc/init.d'), { recursive: true });
    // The seed's layout: br0 and tap0 have netifrc services (net.* symlinks); "lab" is a
    // kvmctl-made host-only bridge without one.
    fs.writeFileSync(path.join(prefix, 'etc/init.d/net.lo'), '#!/sbin/openrc-run\n');
    for (const s of ['net.br0', 'net.tap0']) fs.symlinkSync('net.lo', path.join(prefix, 'etc/init.d', s));
    writeDef(paths, 'network', 'lan', 'kind: network\nname: lan\ntype: bridge\ninterface: br0\nuplinks: [eth1]\n');
    writeDef(paths, 'network', 'lab', 'kind: network\nname: lab\ntype: host-only\naddresses: [10.9.0.1/24]\n');
    writeDef(paths, 'network', 'mv', 'kind: network\nname: mv\ntype: macvtap\nparent: eth2\n');
    writeDef(paths, 'network', 'slirp', 'kind: network\nname: slirp\ntype: user\n');
    writeDef(paths, 'network', 'unused', 'kind: network\nname: unused\ntype: host-only\naddresses: [10.8.0.1/24]\n');
    const k = 'kernel: { builtin: test-guest }\n';
    writeDef(paths, 'vm', 'exam_vm', `name: exam_vm\n${k}autostart: true\nnics: [{ network: lan }, { tap: tap0 }, { network: slirp }]\n`);
    writeDef(paths, 'vm', 'lab1', `name: lab1\n${k}autostart: { order: 1 }\nnics: [{ network: lab }, { network: mv }]\n`);
    writeDef(paths, 'vm', 'manual', `name: manual\n${k}nics: [{ network: unused }]\n`);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const dependOf = (text: string) => /depend\(\) \{\n([\s\S]*?)\n\}/.exec(text)![1]!;

  it('OpenRC: depend() needs the net.* services that exist and uses the others; passes sh -n', async () => {
    const r = await installService(paths, { init: 'openrc', prefix, dryRun: true, env: {} });
    expect(r.action).toBe('would-write');
    expect(r.file).toBe(path.join(prefix, 'etc/init.d/kvmctl'));
    expect(r.interfaces).toEqual([
      { ifname: 'br0', netifrc: true },
      { ifname: 'eth2', netifrc: false },
      { ifname: 'lab', netifrc: false },
      { ifname: 'tap0', netifrc: true },
    ]);
    const dep = dependOf(r.text);
    expect(dep).toMatch(/^\tneed net net\.br0 net\.tap0$/m);
    expect(dep).toMatch(/^\tuse net\.eth2 net\.lab$/m);
    expect(dep).not.toMatch(/unused|slirp/);
    expect(r.text.startsWith('#!/sbin/openrc-run\n')).toBe(true);
    expect(r.text).toContain(MARKER);
    expect(r.text).toContain(`${process.execPath} ${kvmctlScript()} "$@"`);
    expect(r.text).toMatch(/kvmctl autostart\b/);
    expect(r.text).toContain('kvmctl shutdown-all --timeout 120');
    expect(r.text).not.toContain('KVMCTL_HOME'); // not set in env
    expect(r.next[0]).toBe('rc-update add kvmctl default');
    expect(fs.existsSync(r.file)).toBe(false); // dry run
    const f = path.join(tmp, 'openrc-check');
    fs.writeFileSync(f, r.text);
    const sh = await run(['sh', '-n', f], { allowFailure: true });
    expect(sh.exitCode, sh.stderr).toBe(0);
    expect(sh.stderr).toBe('');
  });

  it('OpenRC: kvmctl() passes KVMCTL_HOME and the arguments through intact (odd characters too)', async () => {
    const home = `/tmp/it's a "home" $HOME \`x\` %n`;
    // A stand-in for node that prints its environment and argv: the quoting is what is tested.
    const fake = path.join(tmp, 'fake node');
    fs.writeFileSync(fake, '#!/bin/sh\nprintf "%s\\n" "KVMCTL_HOME=$KVMCTL_HOME" "$@"\n', { mode: 0o755 });
    const text = openrcScript(cfg({ node: fake, script: '/opt/kvm ctl/bin/kvmctl.js', kvmctlHome: home, interfaces: [{ ifname: 'br0', netifrc: true }] }));
    const f = path.join(tmp, 'openrc-run');
    fs.writeFileSync(f, text);
    expect((await run(['sh', '-n', f], { allowFailure: true })).exitCode).toBe(0);
    // Source it the way openrc-run does (after defining the helpers), then call the function.
    const r = await run(['sh', '-c', `ebegin() { :; }; eend() { return "$1"; }; ewarn() { :; }; . "$1"; kvmctl shutdown-all --timeout "a b"`, 'sh', f]);
    expect(r.stdout.split('\n')).toEqual([`KVMCTL_HOME=${home}`, '/opt/kvm ctl/bin/kvmctl.js', 'shutdown-all', '--timeout', 'a b']);
  });

  it('OpenRC: start() stays started when autostart fails (so stop() runs at shutdown); stop() returns the status', async () => {
    const fake = path.join(tmp, 'failing node');
    fs.writeFileSync(fake, '#!/bin/sh\necho "ran: $2" >&2\nexit 1\n', { mode: 0o755 });
    const f = path.join(tmp, 'openrc-fail');
    fs.writeFileSync(f, openrcScript(cfg({ node: fake })));
    const call = (fn: string) => run(['sh', '-c', `ebegin() { :; }; eend() { return "$1"; }; ewarn() { echo "WARN $*" >&2; }; . "$1"; ${fn}`, 'sh', f], { allowFailure: true });
    const start = await call('start');
    expect(start.exitCode).toBe(0);
    expect(start.stderr).toMatch(/ran: autostart[\s\S]*WARN kvmctl autostart: some VMs did not start/);
    const stop = await call('stop');
    expect(stop.exitCode).toBe(1);
    expect(stop.stderr).toContain('ran: shutdown-all');
  });

  it('systemd: oneshot unit calling autostart / shutdown-all, TimeoutStopSec above the timeout, KVMCTL_HOME quoted', async () => {
    const text = systemdUnit(cfg({ kvmctlHome: '/srv/kvm 100%', timeoutSec: 45, interfaces: [{ ifname: 'br0', netifrc: false }] }));
    expect(text).toContain(MARKER);
    expect(text).toMatch(/^Type=oneshot$/m);
    expect(text).toMatch(/^RemainAfterExit=yes$/m);
    expect(text).toMatch(/^After=network-online\.target/m);
    expect(text).toMatch(/^Wants=network-online\.target$/m);
    expect(text).toContain(`ExecStart=-${process.execPath} ${kvmctlScript()} autostart\n`);
    expect(text).toContain(`ExecStop=${process.execPath} ${kvmctlScript()} shutdown-all --timeout 45\n`);
    expect(text).toMatch(/^TimeoutStopSec=75$/m);
    expect(text).toContain('Environment="KVMCTL_HOME=/srv/kvm 100%%"');
    expect(text).toMatch(/^WantedBy=multi-user\.target$/m);
  });

  const analyze = fs.existsSync('/usr/bin/systemd-analyze') || fs.existsSync('/bin/systemd-analyze');
  // systemd-analyze verify loads the unit file like systemd would (it needs no running systemd:
  // PID 1 is not systemd here). Without the systemd package there is nothing to verify with.
  it.skipIf(!analyze)('systemd: the installed unit passes systemd-analyze verify with no warning', async () => {
    const r = await installService(paths, { init: 'systemd', prefix, timeoutSec: 30, env: { KVMCTL_HOME: '/var/lib/kvm ctl' } });
    expect(r.action).toBe('created');
    expect(r.file).toBe(path.join(prefix, 'etc/systemd/system/kvmctl.service'));
    expect(fs.statSync(r.file).mode & 0o777).toBe(0o644);
    const v = await run(['systemd-analyze', 'verify', '--man=no', r.file], { allowFailure: true, timeoutMs: 30_000 });
    expect(v.exitCode, v.stderr).toBe(0);
    expect(v.stderr.split('\n').filter((l) => l.includes('kvmctl.service'))).toEqual([]);
    // A broken unit is caught by the same check (so the check above means something).
    const bad = path.join(tmp, 'bad', 'kvmctl.service');
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    fs.writeFileSync(bad, r.text.replace('Type=oneshot', 'Type=oneshot\nBogusKey=1'));
    const vb = await run(['systemd-analyze', 'verify', '--man=no', bad], { allowFailure: true, timeoutMs: 30_000 });
    expect(vb.stderr).toMatch(/Unknown key.*BogusKey/);
    const u = await uninstallService({ init: 'systemd', prefix });
    expect(u.removed).toEqual([r.file]);
    expect(u.next).toEqual(['systemctl daemon-reload']);
  });

  it('install / reinstall / uninstall in a temp prefix, with the runlevel symlink', async () => {
    const env = { KVMCTL_HOME: '/var/lib/kvmctl-test' };
    const r = await installService(paths, { init: 'openrc', prefix, timeoutSec: 60, env });
    expect(r.action).toBe('created');
    expect(fs.statSync(r.file).mode & 0o777).toBe(0o755);
    const text = fs.readFileSync(r.file, 'utf8');
    expect(text).toContain('KVMCTL_HOME=/var/lib/kvmctl-test ');
    expect(text).toContain('shutdown-all --timeout 60');
    expect((await installService(paths, { init: 'openrc', prefix, timeoutSec: 60, env })).action).toBe('unchanged');
    expect((await installService(paths, { init: 'openrc', prefix, timeoutSec: 90, env })).action).toBe('replaced');
    // rc-update add kvmctl default makes this symlink; uninstall removes it with the script.
    fs.mkdirSync(path.join(prefix, 'etc/runlevels/default'), { recursive: true });
    const link = path.join(prefix, 'etc/runlevels/default/kvmctl');
    fs.symlinkSync(r.file, link);
    const dry = await uninstallService({ prefix, dryRun: true });
    expect(dry.removed).toEqual([r.file]);
    expect(fs.existsSync(r.file)).toBe(true);
    const u = await uninstallService({ prefix });
    expect(u.removed).toEqual([r.file]);
    expect(u.links).toEqual([link]);
    expect(u.absent).toEqual([path.join(prefix, 'etc/systemd/system/kvmctl.service')]);
    expect(fs.existsSync(r.file)).toBe(false);
    expect(fs.existsSync(link) || fs.lstatSync(link, { throwIfNoEntry: false })).toBeFalsy();
    expect((await uninstallService({ prefix })).removed).toEqual([]);
  });

  it('a file kvmctl did not write is refused by install (without --force) and by uninstall, and left intact', async () => {
    const file = path.join(prefix, 'etc/init.d/kvmctl');
    const theirs = '#!/sbin/openrc-run\n# somebody else\'s kvmctl script\nstart() { :; }\n';
    fs.writeFileSync(file, theirs);
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e) => (isKvmError(e) ? `${e.code}/${e.exit}` : String(e)));
    expect(await code(uninstallService({ prefix }))).toBe('SERVICE_FOREIGN/2');
    expect(await code(uninstallService({ init: 'openrc', prefix, dryRun: true }))).toBe('SERVICE_FOREIGN/2');
    expect(await code(installService(paths, { init: 'openrc', prefix, env: {} }))).toBe('SERVICE_FOREIGN/2');
    expect(await code(installService(paths, { init: 'openrc', prefix, env: {}, dryRun: true }))).toBe('SERVICE_FOREIGN/2');
    expect(fs.readFileSync(file, 'utf8')).toBe(theirs);
    expect((await installService(paths, { init: 'openrc', prefix, env: {}, force: true })).action).toBe('replaced');
    expect(fs.readFileSync(file, 'utf8')).toContain(MARKER);
    await uninstallService({ init: 'openrc', prefix });
  });

  it('bad input: unknown init system, missing prefix, bad timeout', async () => {
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e) => (isKvmError(e) ? `${e.code}/${e.exit}` : String(e)));
    expect(await code(installService(paths, { init: 'runit', prefix }))).toBe('BAD_INIT/2');
    expect(await code(installService(paths, { init: 'openrc', prefix: path.join(tmp, 'nope') }))).toBe('PREFIX_NOT_FOUND/2');
    expect(await code(installService(paths, { init: 'openrc', prefix, timeoutSec: 1.5 }))).toBe('BAD_TIMEOUT/2');
    expect(await code(uninstallService({ init: 'upstart', prefix }))).toBe('BAD_INIT/2');
  });
});
