/**
 * The fast-boot profile with real QEMU and the real test guest: `profile: fast` boots on the
 * microvm machine (virtio-mmio, no PCI), answers on its serial console, mounts a 9p share, has a
 * virtio-net NIC, and is powered off by the ACPI power button (microvm's GED) like q35.
 * One guest is booted for all the checks.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { serialExec } from '../../src/vm/serial-exec.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let share: string;
beforeAll(async () => {
  h = makeHome();
  share = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-fast-share-'));
  fs.writeFileSync(path.join(share, 'hello.txt'), 'hello from the host\n');
  await h.addRoot(share);
  await h.apply(`name: fast1
profile: fast
memory: 256M
kernel: { builtin: test-guest, append: "kvt.9p=share:/mnt/share" }
nics: [{ user: true }]
shares: [{ path: ${share}, tag: share, readOnly: true }]
stopTimeout: 30
`);
  await ensureTestGuest(resolvePaths(h.env)); // outside the timed part
}, 320_000);
afterAll(async () => {
  await h?.cleanup();
  if (share) fs.rmSync(share, { recursive: true, force: true });
});

const json = <T = any>(s: string): T => JSON.parse(s) as T;

describe('profile: fast', () => {
  it('cmdline shows microvm with virtio-mmio devices and warns what the profile gives up', async () => {
    const r = await h.cli(['cmdline', 'fast1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { argv, warnings } = json<{ argv: string[]; warnings: string[] }>(r.stdout);
    expect(argv[argv.indexOf('-machine') + 1]).toMatch(/^type=microvm,/);
    expect(argv).toContain('-no-reboot');
    expect(argv.filter((a) => a.startsWith('virtio-9p-device,') || a.startsWith('virtio-net-device,'))).toHaveLength(2);
    expect(warnings.join('\n')).toMatch(/profile fast: microvm.*gives up.*no PCI/);
  });

  it('boots, answers on the serial console, mounts 9p, has eth0 on virtio-net, and powers off by ACPI', async () => {
    const s = await h.cli(['start', 'fast1', '--wait-for-guest', '--json'], { timeoutMs: 180_000 });
    expect(s.code, s.stderr).toBe(0);
    const started = json(s.stdout);
    expect(started.guestReadyMs).toBeGreaterThan(0);
    expect(fs.readFileSync(`/proc/${started.pid}/cmdline`, 'utf8')).toContain('type=microvm');

    const paths = resolvePaths(h.env);
    const probe = await serialExec(paths, 'fast1', 'ls /sys/bus/pci/devices | wc -l; ls /sys/bus/virtio/drivers');
    expect(probe.status).toBe(0);
    const [pciCount, ...drivers] = probe.output.trim().split(/\s+/);
    expect(pciCount).toBe('0'); // no PCI bus at all
    expect(drivers).toEqual(expect.arrayContaining(['9pnet_virtio', 'virtio_net', 'virtio_rng']));

    const cat = await serialExec(paths, 'fast1', 'cat /mnt/share/hello.txt');
    expect(cat).toEqual({ output: 'hello from the host\n', status: 0 });
    const link = await serialExec(paths, 'fast1', 'ip -o link show eth0; readlink /sys/class/net/eth0/device/driver');
    expect(link.status).toBe(0);
    expect(link.output).toMatch(/^\d+: eth0:/);
    expect(link.output).toMatch(/virtio_net$/m);
    expect(link.output).toMatch(/52:54:00(:[0-9a-f]{2}){3}/); // kvmctl's stable MAC reached the device

    const stop = await h.cli(['stop', 'fast1', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(json(stop.stdout).how).toBe('acpi'); // the GED power button reaches busybox acpid
    expect(fs.readFileSync(path.join(h.dir, 'run/vms/fast1/serial.log'), 'utf8')).toContain('KVMCTL-GUEST-POWEROFF');
    expect(json((await h.cli(['status', 'fast1', '--json'])).stdout).state).toBe('stopped');
    expect(h.pids().filter((p) => fs.existsSync(`/proc/${p}`))).toEqual([]);
  }, 240_000);
});
