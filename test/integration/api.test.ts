/**
 * kvmctl serve with a real VM (QEMU under TCG, the test guest): lifecycle through the API, the
 * event stream (state changes and QMP events, also for what the CLI does while the server runs),
 * serial and VNC consoles over WebSockets, metrics, monitor/QMP, and the CLI's --remote.
 * One guest, booted twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/api/client.js';
import { serve, type Serving } from '../../src/api/listen.js';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { EventTap } from '../helpers/api-events.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let srv: Serving;
let sock: string;
let tap: EventTap;
const api = <T = any>(method: string, url: string, body?: unknown) => request<T>({ socketPath: sock }, method, url, body);

const VM = `name: apivm
memory: 256M
kernel: { builtin: test-guest }
display: vnc
disks: [{ file: apivm.qcow2, format: qcow2, create: { size: 32M } }]
stopTimeout: 30
`;

beforeAll(async () => {
  h = makeHome();
  const paths = resolvePaths(h.env);
  await ensureTestGuest(paths);
  sock = path.join(h.dir, 'api.sock');
  srv = await serve({ paths, socket: sock, reconcileMs: 500 });
  tap = await EventTap.open(sock);
}, 320_000);
afterAll(async () => {
  tap?.close();
  await srv?.close();
  await h?.cleanup();
});

describe('a VM through the API', () => {
  it('create, start (guest ready), events, status, metrics, monitor, QMP, pause/resume, consoles, stop', async () => {
    expect((await api('POST', '/api/vms', { yaml: VM })).action).toBe('created');
    const started = await api('POST', '/api/vms/apivm/start', { waitForGuest: true, timeoutSec: 150 });
    expect(started).toMatchObject({ name: 'apivm', accel: expect.stringMatching(/kvm|tcg/) });
    expect(started.argv.join(' ')).toContain('qmp-events.sock');
    await tap.wait((e) => e.vm === 'apivm' && e.kind === 'state' && e.state === 'running', 15_000, 'state running');
    expect(await api('GET', '/api/vms/apivm')).toMatchObject({ status: { state: 'running', pid: started.pid } });
    expectError(await api('POST', '/api/vms/apivm/start').catch((e) => e), 'VM_RUNNING');
    expectError(await api('DELETE', '/api/vms/apivm').catch((e) => e), 'VM_RUNNING');

    // Metrics: CPU time, RSS, block stats over the events QMP socket, uptime.
    await api('GET', '/api/metrics');
    await new Promise((r) => setTimeout(r, 500));
    const m = await api('GET', '/api/metrics');
    const vm = m.vms.find((v: { name: string }) => v.name === 'apivm');
    expect(vm.cpuSec).toBeGreaterThan(0);
    expect(vm.cpuPercent).not.toBeNull();
    expect(vm.rssBytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(vm.block.length).toBeGreaterThan(0);
    expect(vm.uptimeSec).toBeGreaterThanOrEqual(0);
    const prom = await api<string>('GET', '/metrics');
    expect(prom).toMatch(/kvmctl_vm_cpu_seconds_total\{vm="apivm"\} [\d.]+/);

    // Monitor and raw QMP go over qmp.sock while the server holds qmp-events.sock.
    expect((await api('POST', '/api/vms/apivm/monitor', { command: 'info status' })).output).toContain('running');
    expect((await api('POST', '/api/vms/apivm/qmp', { execute: 'query-status' })).return).toMatchObject({ running: true });
    expectError(await api('POST', '/api/vms/apivm/qmp', { execute: 'no-such-command' }).catch((e) => e), 'QMP_ERROR');

    // Pause/resume: QMP events and state changes in the stream.
    await api('POST', '/api/vms/apivm/pause');
    await tap.wait((e) => e.vm === 'apivm' && e.kind === 'qmp' && e.event === 'STOP', 10_000, 'QMP STOP');
    await tap.wait((e) => e.vm === 'apivm' && e.kind === 'state' && e.state === 'paused', 10_000, 'state paused');
    expect((await api('GET', '/api/vms')).find((v: { name: string }) => v.name === 'apivm').state).toBe('paused');
    await api('POST', '/api/vms/apivm/resume');
    await tap.wait((e) => e.vm === 'apivm' && e.kind === 'qmp' && e.event === 'RESUME', 10_000, 'QMP RESUME');

    // Serial console: a command in the guest's shell and its answer.
    const serial = new WebSocket(`ws+unix://${sock}:/api/vms/apivm/serial`);
    let out = '';
    serial.on('message', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => serial.once('open', r));
    serial.send(Buffer.from('\necho api-$((6*7))-ok\n'));
    await waitFor(() => out.includes('api-42-ok'), 20_000, () => `serial said: ${out.slice(-300)}`);
    serial.close();

    // VNC console: the RFB greeting comes through the bridge.
    const vnc = new WebSocket(`ws+unix://${sock}:/api/vms/apivm/vnc`, ['binary']);
    const greeting = await new Promise<string>((resolve, reject) => {
      vnc.once('message', (d: Buffer) => resolve(d.toString('latin1')));
      vnc.once('error', reject);
    });
    expect(greeting).toMatch(/^RFB 003\.00\d\n/);
    vnc.close();

    const stop = await api('POST', '/api/vms/apivm/stop', { timeoutSec: 30 });
    expect(stop.how).toBe('acpi');
    await tap.wait((e) => e.vm === 'apivm' && e.kind === 'state' && e.state === 'stopped', 15_000, 'state stopped');
    // Consoles of a stopped VM close with 4404.
    const gone = new WebSocket(`ws+unix://${sock}:/api/vms/apivm/serial`);
    expect(await new Promise((r) => gone.once('close', (code: number) => r(code)))).toBe(4404);
  }, 300_000);

  it('what the CLI does while the server runs shows in the stream; --remote works through the server', async () => {
    const since = tap.events.at(-1)!.id;
    const s = await h.cli(['start', 'apivm']);
    expect(s.code, s.stderr).toBe(0);
    const running = await tap.wait((e) => e.id > since && e.vm === 'apivm' && e.kind === 'state' && e.state === 'running', 20_000, 'running after CLI start');
    const remote = await h.cli(['--remote', sock, 'status', 'apivm', '--json']);
    expect(remote.code, remote.stderr).toBe(0);
    expect(JSON.parse(remote.stdout)).toMatchObject({ state: 'running' });
    const list = await h.cli(['--remote', sock, 'list']);
    expect(list.stdout).toMatch(/apivm\s+running/);
    const k = await h.cli(['--remote', sock, 'kill', 'apivm', '--json']);
    expect(k.code, k.stderr).toBe(0);
    expect(JSON.parse(k.stdout).how).toMatch(/quit|sigkill/);
    await tap.wait((e) => e.id > running.id && e.vm === 'apivm' && e.kind === 'state' && e.state === 'stopped', 20_000, 'stopped after remote kill');
    const bad = await h.cli(['--remote', sock, 'stop', 'apivm']);
    expect(bad.code).toBe(1); // 409 from the server
    expect(bad.stderr).toContain('VM_NOT_RUNNING');
    expect(fs.existsSync(path.join(h.dir, 'run/vms/apivm/qemu.pid'))).toBe(false);
  }, 120_000);
});

function expectError(e: unknown, code: string): void {
  expect((e as { code?: string }).code, String(e)).toBe(code);
}

async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(what());
    await new Promise((r) => setTimeout(r, 100));
  }
}
