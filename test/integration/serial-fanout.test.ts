/**
 * #14 item 7: the serial console fans out to every viewer. kvmctl serve (in-process, on a unix
 * socket) with the real test guest under QEMU: two WebSocket viewers of the same VM both get the
 * guest's answer to a command typed in either; a viewer leaving does not cut the others off; with
 * the last viewer gone the server lets go of QEMU's serial socket (a plain client gets it).
 * The same server's /metrics then gives the VM's state as kvmctl_vm_up 1/0 plus kvmctl_vm_state
 * series (paused, then stopped), and a VM that was never started is there as up 0.
 */
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/api/client.js';
import { serve, type Serving } from '../../src/api/listen.js';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths, vmRuntimeFiles, type Paths } from '../../src/host/paths.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let paths: Paths;
let srv: Serving;
let sock: string;
const api = <T = any>(method: string, url: string, body?: unknown) => request<T>({ socketPath: sock }, method, url, body);

const VM = `name: fanvm
memory: 128M
kernel: { builtin: test-guest }
stopTimeout: 20
`;

type Viewer = { ws: WebSocket; out: () => string };
async function viewer(): Promise<Viewer> {
  const ws = new WebSocket(`ws+unix://${sock}:/api/vms/fanvm/serial`);
  let out = '';
  ws.on('message', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  return { ws, out: () => out };
}

async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(what());
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Type `echo TAG-$((6*7))` until `TAG-42` shows in every viewer (the typed line cannot match). */
async function runIn(from: { send(b: Buffer): void }, tag: string, all: (() => string)[]): Promise<void> {
  const t0 = Date.now();
  while (!all.every((o) => o().includes(`${tag}-42`))) {
    if (Date.now() - t0 > 60_000) throw new Error(`no ${tag}-42 in every viewer:\n${all.map((o, i) => `#${i}: …${o().slice(-200)}`).join('\n')}`);
    from.send(Buffer.from(`\necho ${tag}-$((6*7))\n`));
    await new Promise((r) => setTimeout(r, 2000));
  }
}

beforeAll(async () => {
  h = makeHome();
  paths = resolvePaths(h.env);
  await ensureTestGuest(paths);
  sock = path.join(h.dir, 'api.sock');
  srv = await serve({ paths, socket: sock, reconcileMs: 500 });
  expect((await api('POST', '/api/vms', { yaml: VM })).action).toBe('created');
  expect((await api('POST', '/api/vms', { yaml: 'name: idlevm\nmemory: 64M\nkernel: { builtin: test-guest }\n' })).action).toBe('created');
  await api('POST', '/api/vms/fanvm/start', { waitForGuest: true, timeoutSec: 150 });
}, 320_000);
afterAll(async () => {
  await api('POST', '/api/vms/fanvm/kill').catch(() => undefined);
  await srv?.close();
  await h?.cleanup();
});

describe('serial console fan-out', () => {
  it('gives every viewer the output, takes input from any, and survives a viewer leaving', async () => {
    const a = await viewer();
    const b = await viewer();
    // Typed in A: both see the answer (B used to get 0 bytes: QEMU serves one client at a time).
    await runIn(a.ws, 'fromA', [a.out, b.out]);
    // Typed in B: goes to the guest too, and both see it.
    await runIn(b.ws, 'fromB', [a.out, b.out]);
    expect(b.out().length).toBeGreaterThan(0);

    // A leaves; B and a newcomer C still share the console.
    a.ws.close();
    await new Promise((r) => a.ws.once('close', r));
    const c = await viewer();
    await runIn(c.ws, 'fromC', [b.out, c.out]);
    expect(a.out()).not.toContain('fromC-42');

    // The last viewer gone, QEMU's serial socket is free again for a plain client (kvmctl console).
    for (const v of [b, c]) {
      v.ws.close();
      await new Promise((r) => v.ws.once('close', r));
    }
    const direct = net.connect(vmRuntimeFiles(paths, 'fanvm').serial);
    let raw = '';
    direct.on('data', (d) => (raw += d.toString()));
    await new Promise((resolve, reject) => (direct.once('connect', resolve), direct.once('error', reject)));
    try {
      await runIn({ send: (x) => direct.write(x) }, 'direct', [() => raw]);
    } finally {
      direct.destroy();
    }
    expect(b.out()).not.toContain('direct-42');
  }, 240_000);

  it('/metrics: kvmctl_vm_up 1 paused, 0 stopped (never left out), with kvmctl_vm_state', async () => {
    const prom = () => api<string>('GET', '/metrics');
    const value = (t: string, series: string) => t.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1];
    const waitState = async (want: string) => {
      const end = Date.now() + 20_000;
      for (;;) {
        const t = await prom();
        if (value(t, `kvmctl_vm_state{vm="fanvm",state="${want}"}`) === '1') return t;
        if (Date.now() > end) throw new Error(`fanvm not ${want} in /metrics:\n${t}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    let t = await waitState('running');
    expect(value(t, 'kvmctl_vm_up{vm="fanvm"}')).toBe('1');
    expect(value(t, 'kvmctl_vm_up{vm="idlevm"}')).toBe('0');
    expect(value(t, 'kvmctl_vm_state{vm="idlevm",state="stopped"}')).toBe('1');

    await api('POST', '/api/vms/fanvm/pause');
    t = await waitState('paused');
    expect(value(t, 'kvmctl_vm_up{vm="fanvm"}')).toBe('1');
    expect(value(t, 'kvmctl_vm_state{vm="fanvm",state="running"}')).toBe('0');
    expect(t).not.toMatch(/ 0\.5$/m);

    await api('POST', '/api/vms/fanvm/kill');
    t = await waitState('stopped');
    expect(value(t, 'kvmctl_vm_up{vm="fanvm"}')).toBe('0');
    expect(t.split('\n').filter((l) => l.startsWith('kvmctl_vm_state{vm="fanvm",') && l.endsWith(' 1'))).toEqual(['kvmctl_vm_state{vm="fanvm",state="stopped"} 1']);
    for (const line of t.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? -?[\d.e+]+)$/);
  }, 60_000);
});
