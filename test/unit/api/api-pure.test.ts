/**
 * The pure parts of kvmctl serve: event ring buffer and replay, error → HTTP status, restart
 * back-off and policy decisions, metrics parsers and Prometheus text, token storage, image paths.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { routePath, routes, serverMessageSchema } from '../../../src/api/contract.js';
import { httpStatusOf, toApiError } from '../../../src/api/errors.js';
import { EventBus } from '../../../src/api/events.js';
import { parseListen } from '../../../src/api/listen.js';
import { imagePath } from '../../../src/api/routes/disks.js';
import { fileTokenReader, loadToken, rotateToken, tokenMatches } from '../../../src/api/token.js';
import { badInput, KvmError } from '../../../src/errors.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { parseBlockstats, parseIpStats, parseMeminfo, parseProcStat, toPrometheus, vmInterfaces, type Metrics } from '../../../src/vm/metrics.js';
import { backoffDelay, Supervisor, wantsRestart, type SupervisorEvent } from '../../../src/vm/supervisor.js';

const tmpHome = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kapi-'));

describe('EventBus', () => {
  it('numbers events monotonically and replays what a reconnecting client missed', () => {
    const bus = new EventBus(4);
    const got: number[] = [];
    bus.subscribe((e) => got.push(e.id));
    for (let i = 0; i < 3; i++) bus.publish({ kind: 'state', vm: 'a', state: 'running', previous: 'stopped' });
    expect(got).toEqual([1, 2, 3]);
    const r = bus.replay(1);
    expect(r[0]).toMatchObject({ type: 'hello', lastId: 3, serverId: bus.serverId });
    expect(r.slice(1).map((m) => (m.type === 'event' ? m.event.id : -1))).toEqual([2, 3]);
    for (const m of r) expect(serverMessageSchema.safeParse(m).success).toBe(true);
    expect(bus.replay(3)).toHaveLength(1); // up to date: hello only
    expect(bus.replay(undefined)).toHaveLength(1);
  });

  it('says reset when the events are gone from the ring or the id comes from another server', () => {
    const bus = new EventBus(4);
    for (let i = 0; i < 10; i++) bus.publish({ kind: 'qmp', vm: 'a', event: 'STOP' });
    expect(bus.oldestId).toBe(7); // the last 4
    expect(bus.replay(5)[1]).toMatchObject({ type: 'reset', lastId: 10 });
    expect(bus.replay(6).slice(1).map((m) => (m.type === 'event' ? m.event.id : 0))).toEqual([7, 8, 9, 10]);
    expect(bus.replay(99)[1]).toMatchObject({ type: 'reset' });
  });
});

describe('errors → HTTP', () => {
  it.each([
    ['VM_NOT_FOUND', 2, 404],
    ['NETWORK_NOT_FOUND', 2, 404],
    ['VM_RUNNING', 2, 409],
    ['VM_NOT_RUNNING', 2, 409],
    ['VM_EXISTS', 1, 409],
    ['DISK_IN_USE', 1, 409],
    ['SPEC_INVALID', 2, 422],
    ['BAD_REQUEST', 2, 400],
    ['DISK_OUTSIDE_ROOTS', 2, 400],
    ['UNAUTHORIZED', 1, 401],
    ['QMP_TIMEOUT', 1, 504],
    ['QMP_CONNECT', 1, 503],
    ['ETCD_UNAVAILABLE', 1, 503],
    ['QMP_ERROR', 1, 422],
    ['START_FAILED', 1, 422],
    ['CAPACITY_EXCEEDED', 2, 422],
    ['INTERNAL', 1, 500],
  ] as const)('%s (exit %d) → %d', (code, exit, status) => {
    expect(httpStatusOf(new KvmError(code, 'x', { exit }))).toBe(status);
  });
  it('keeps code, message, hint and issues; unknown errors are 500 INTERNAL', () => {
    const e = toApiError(badInput('SPEC_INVALID', 'bad', 'fix it', [{ path: 'memory', message: 'too small' }]));
    expect(e).toEqual({ status: 422, body: { code: 'SPEC_INVALID', message: 'bad', hint: 'fix it', issues: [{ path: 'memory', message: 'too small' }] } });
    expect(toApiError(new KvmError('QMP_ERROR', 'block_resize: GenericError: x'))).toMatchObject({ status: 422, body: { code: 'QMP_ERROR', hint: expect.stringContaining('qemu.log') } });
    expect(toApiError(new Error('boom'))).toMatchObject({ status: 500, body: { code: 'INTERNAL', message: 'boom' } });
    expect(toApiError(Object.assign(new Error('Unexpected token'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON' }))).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
  });
});

describe('restart policy', () => {
  it('backs off exponentially up to the cap', () => {
    const p = { backoffSec: 1, maxBackoffSec: 10 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, p))).toEqual([1, 2, 4, 8, 10, 10]);
  });
  it('restarts crashes under on-failure, guest power-offs only under always, never a kvmctl stop', () => {
    expect(wantsRestart('no', 'crashed')).toBe(false);
    expect(wantsRestart('on-failure', 'crashed')).toBe(true);
    expect(wantsRestart('on-failure', 'stopped', { at: '', how: 'guest' })).toBe(false);
    expect(wantsRestart('always', 'stopped', { at: '', how: 'guest' })).toBe(true);
    for (const how of ['acpi', 'quit', 'sigkill'] as const) expect(wantsRestart('always', 'stopped', { at: '', how })).toBe(false);
  });
  it('schedules, restarts, gives up after maxRetries, and ignores what a new server finds', async () => {
    const events: SupervisorEvent[] = [];
    const starts: string[] = [];
    let fail = true;
    const sup = new Supervisor(resolvePaths({ KVMCTL_HOME: tmpHome() }), {
      start: async (n) => {
        starts.push(n);
        if (fail) throw new KvmError('START_FAILED', 'no');
      },
      publish: (e) => events.push(e),
      spec: () => ({ restart: 'on-failure', restartPolicy: { maxRetries: 2, backoffSec: 0.02, maxBackoffSec: 1, resetAfterSec: 300 } }),
    });
    sup.onTransition({ name: 'a', previous: null, state: 'crashed', initial: true });
    sup.onTransition({ name: 'a', previous: null, state: 'running', initial: true });
    expect(events.map((e) => e.action)).toEqual(['adopted']);
    sup.onTransition({ name: 'a', previous: 'running', state: 'crashed', initial: false });
    await new Promise((r) => setTimeout(r, 300));
    expect(starts).toEqual(['a', 'a']);
    expect(events.map((e) => e.action)).toEqual(['adopted', 'scheduled', 'failed', 'scheduled', 'failed', 'gave-up']);
    expect(events[3]!.delaySec).toBe(0.04);
    expect(sup.info('a')).toMatchObject({ policy: 'on-failure', restarts: 2, gaveUp: true });
    sup.close();
    fail = false;
  });
});

describe('metrics parsers', () => {
  it('reads /proc/stat, /proc/meminfo, query-blockstats and ip -s -j link', () => {
    expect(parseProcStat('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3')).toEqual({ busy: 150, total: 1000 });
    expect(parseMeminfo('MemTotal:       2048 kB\nMemFree: 1 kB\nMemAvailable:    1024 kB\n')).toEqual({ total: 2048 * 1024, available: 1024 * 1024 });
    expect(parseBlockstats([{ device: '', qdev: '/machine/peripheral/disk0/virtio-backend', stats: { rd_bytes: 512, wr_bytes: 1024, rd_operations: 1, wr_operations: 2 } }])).toEqual([
      { device: '/machine/peripheral/disk0/virtio-backend', rdBytes: 512, wrBytes: 1024, rdOps: 1, wrOps: 2 },
    ]);
    expect(parseIpStats([{ ifname: 'lo' }, { ifname: 'kvtap', stats64: { rx: { bytes: 10, packets: 1 }, tx: { bytes: 20, packets: 2 } } }], ['kvtap'])).toEqual([
      { ifname: 'kvtap', rxBytes: 10, txBytes: 20, rxPackets: 1, txPackets: 2 },
    ]);
  });
  it('names the host-side links of NICs like the network layer does', () => {
    const ifs = vmInterfaces({ name: 'web', nics: [{ network: 'lan' }, { tap: 'tap0' }, { user: true }] as never });
    expect(ifs[0]).toMatch(/^kv[0-9a-f]{8}n0$/);
    expect(ifs).toContain('tap0');
    expect(ifs).toHaveLength(3); // tap + macvtap candidates for the network NIC, the named tap
  });
  it('renders Prometheus text with HELP/TYPE lines and escaped labels', () => {
    const m: Metrics = {
      at: '',
      host: { cpus: 2, cpuPercent: 12.5, loadavg: [1, 2, 3], memTotalBytes: 100, memAvailableBytes: 50, ksmSavedBytes: 4096, ksmRun: 1 },
      vms: [{ name: 'a"b', pid: 1, state: 'running', uptimeSec: 5, cpuSec: 1.5, cpuPercent: null, rssBytes: 99, block: [{ device: 'd0', rdBytes: 1, wrBytes: 2, rdOps: 0, wrOps: 0 }], net: [] }],
    };
    const t = toPrometheus(m);
    expect(t).toContain('# TYPE kvmctl_vm_cpu_seconds_total counter');
    expect(t).toContain('kvmctl_vm_cpu_seconds_total{vm="a\\"b"} 1.5');
    expect(t).toContain('kvmctl_vm_block_written_bytes_total{vm="a\\"b",device="d0"} 2');
    expect(t).toContain('kvmctl_host_ksm_saved_bytes 4096');
    for (const line of t.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? -?[\d.e+]+)$/);
  });
});

describe('token and paths', () => {
  it('generates a 0600 token once, rotates it, lets KVMCTL_TOKEN win, and re-reads the file on change', () => {
    const paths = resolvePaths({ KVMCTL_HOME: tmpHome() });
    const a = loadToken(paths, {});
    expect(a.source).toBe('generated');
    expect(a.token.length).toBeGreaterThanOrEqual(40);
    expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
    expect(loadToken(paths, {})).toMatchObject({ token: a.token, source: 'file' });
    const read = fileTokenReader(a.file, a.token);
    expect(read()).toBe(a.token);
    const b = rotateToken(paths);
    expect(b.token).not.toBe(a.token);
    expect(read()).toBe(b.token);
    expect(loadToken(paths, { KVMCTL_TOKEN: 'x' })).toMatchObject({ token: 'x', source: 'env' });
    expect(tokenMatches(b.token, b.token)).toBe(true);
    expect(tokenMatches('nope', b.token)).toBe(false);
    expect(tokenMatches(undefined, b.token)).toBe(false);
  });
  it('keeps API disk paths inside the storage roots', () => {
    const paths = resolvePaths({ KVMCTL_HOME: tmpHome() });
    fs.mkdirSync(paths.images, { recursive: true });
    expect(imagePath(paths, 'a.qcow2')).toBe(path.join(paths.images, 'a.qcow2'));
    expect(imagePath(paths, path.join(paths.images, 'sub/b.raw'))).toBe(path.join(paths.images, 'sub/b.raw'));
    for (const bad of ['../x', '/etc/passwd', '', '.']) expect(() => imagePath(paths, bad)).toThrow(/outside the storage roots|is a directory/);
    fs.symlinkSync('/etc', path.join(paths.images, 'link'));
    expect(() => imagePath(paths, 'link/passwd')).toThrow(/outside/);
  });
  it('parses --listen and builds route paths', () => {
    expect(parseListen('127.0.0.1:8006')).toEqual({ host: '127.0.0.1', port: 8006 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListen('8006')).toThrow(/HOST:PORT/);
    expect(routePath(routes.startVm.path, { name: 'a b' })).toBe('/api/vms/a%20b/start');
  });
});
