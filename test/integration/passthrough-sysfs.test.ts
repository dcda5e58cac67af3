/**
 * Managed PCI passthrough through the real CLI, with KVMCTL_SYSFS pointing at a temp copy of the
 * sysfs fixture (test/fixtures/sysfs/two-node) — never the real /sys. This machine has no PCI
 * device that can be passed through, and a tree of plain files has no kernel behind it, so the
 * bind never "takes": that is the failed-start path, which must give back everything it wrote.
 * Also: a start that would take a device the host uses (an up NIC) is refused before any write,
 * and a record left by a dead QEMU is given back by `status` (the crash path of stop/supervisor).
 * The full bind/give-back sequence against a simulated kernel is in test/unit/host/vfio-bind.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/sysfs/two-node');
let h: Home;
let sys: string;
const dev = (a: string, f: string) => path.join(sys, 'bus/pci/devices', a, f);
const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined);

beforeAll(async () => {
  h = makeHome();
  sys = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-sysfs-'));
  fs.cpSync(FIXTURE, sys, { recursive: true, verbatimSymlinks: true });
  for (const d of ['vfio-pci', 'nvidia', 'snd_hda_intel', 'igb']) fs.mkdirSync(path.join(sys, 'bus/pci/drivers', d), { recursive: true });
  h.env.KVMCTL_SYSFS = sys;
  await h.apply(`name: gpu
pci: [{ host: "02:00.0" }]
kernel: { builtin: test-guest }
---
name: nic
pci: [{ host: "04:00.1" }]
kernel: { builtin: test-guest }
`);
  await ensureTestGuest(resolvePaths(h.env));
}, 320_000);

afterAll(async () => {
  await h?.cleanup();
  if (sys) fs.rmSync(sys, { recursive: true, force: true });
});

describe('managed PCI passthrough over a sysfs fixture (no real devices here)', () => {
  it('a group member the host uses (an up NIC) is refused before anything is written', async () => {
    const r = await h.cli(['start', 'nic']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HOST_CANNOT_TUNE.*pci\[0\]\.host: IOMMU group 4 is in use by the host: 0000:04:00\.0 \(igb\): network interface eth1 is up/);
    expect(read(dev('0000:04:00.0', 'driver_override'))).toBeUndefined();
    expect(read(dev('0000:04:00.1', 'driver_override'))).toBeUndefined();
    expect(read(path.join(sys, 'bus/pci/drivers_probe'))).toBeUndefined();
  });

  it('a bind that does not take fails the start and gives back what it wrote; no QEMU is left', async () => {
    const r = await h.cli(['start', 'gpu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/VFIO_BIND_FAILED.*0000:02:00\.0 is on nvidia after the bind, not vfio-pci/);
    expect(read(dev('0000:02:00.0', 'driver_override'))).toBe('\n'); // written vfio-pci, then cleared again
    expect(read(path.join(sys, 'bus/pci/drivers/nvidia/unbind'))).toBe('0000:02:00.0');
    expect(read(dev('0000:02:00.1', 'driver_override'))).toBeUndefined(); // never reached
    expect(fs.existsSync(path.join(h.dir, 'run/vms/gpu/vfio.json'))).toBe(false);
    expect(h.pids()).toEqual([]);
  }, 60_000);

  it('a record left by a QEMU that died is given back by the next status (the crash path)', async () => {
    const run = path.join(h.dir, 'run/vms/gpu');
    fs.mkdirSync(run, { recursive: true });
    fs.rmSync(dev('0000:02:00.0', 'driver'));
    fs.symlinkSync('../../../../bus/pci/drivers/vfio-pci', dev('0000:02:00.0', 'driver'));
    fs.writeFileSync(dev('0000:02:00.0', 'driver_override'), 'vfio-pci');
    fs.writeFileSync(path.join(run, 'vfio.json'), JSON.stringify({ sysfs: sys, taken: [{ address: '0000:02:00.0', driver: 'nvidia' }] }));
    const s = await h.cli(['status', 'gpu', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(fs.existsSync(path.join(run, 'vfio.json'))).toBe(false);
    expect(read(dev('0000:02:00.0', 'driver_override'))).toBe('\n');
    expect(read(path.join(sys, 'bus/pci/drivers/vfio-pci/unbind'))).toBe('0000:02:00.0');
    expect(read(path.join(sys, 'bus/pci/drivers/nvidia/bind'))).toBe('0000:02:00.0'); // the probe did nothing here: bound by name
    // Plain files do not rebind: the give-back says so in qemu.log instead of failing status.
    expect(read(path.join(run, 'qemu.log'))).toMatch(/kvmctl: PCI give-back: 0000:02:00\.0 is on vfio-pci after the give-back, not nvidia/);
  });
});
