/**
 * Managed PCI passthrough (src/host/vfio-bind.ts) over a copy of the sysfs fixture tree
 * (test/fixtures/sysfs/two-node) in a temp dir — never the real /sys: this machine has no PCI
 * device that could be passed through, and a unit test must not rebind the host's devices.
 * The writer plays the kernel's part for the four sysfs files the code writes (driver_override is
 * a plain file; unbind drops the driver link; drivers_probe links the override or the device's
 * native driver; drivers/X/bind links X), and logs every write for the golden sequence.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bindVfio, releaseVfio, releaseVfioRecord, vfioPlan, vfioRecordFile, writeVfioRecord, type SysfsWrite } from '../../../src/host/vfio-bind.js';
import { readTuningFacts } from '../../../src/host/tuning-facts.js';
import { tuningHostIssues } from '../../../src/vm/tuning-check.js';
import { tuningItems } from '../../../src/host/check-tuning.js';
import { vmSchema } from '../../../src/definition/vm.js';

const FIXTURE = path.resolve(__dirname, '../../fixtures/sysfs/two-node');
const NATIVE: Record<string, string> = { '0000:02:00.0': 'nvidia', '0000:02:00.1': 'snd_hda_intel', '0000:03:00.1': 'xhci_hcd' };

let root: string;
let log: [string, string][];
const drv = (a: string) => {
  try {
    return path.basename(fs.readlinkSync(path.join(root, 'bus/pci/devices', a, 'driver')));
  } catch {
    return undefined;
  }
};
const link = (a: string, d: string) => {
  const l = path.join(root, 'bus/pci/devices', a, 'driver');
  fs.rmSync(l, { force: true });
  fs.symlinkSync(`../../../../bus/pci/drivers/${d}`, l);
};
/** The kernel's side of the sysfs files, for a tree of plain files. */
const kernel: SysfsWrite = (file, text) => {
  const rel = path.relative(root, file);
  log.push([rel, text]);
  let m: RegExpExecArray | null;
  if ((m = /^bus\/pci\/devices\/([^/]+)\/driver\/unbind$/.exec(rel))) {
    if (text !== m[1]) throw new Error('EINVAL');
    fs.rmSync(path.join(root, 'bus/pci/devices', m[1]!, 'driver'));
  } else if (rel === 'bus/pci/drivers_probe') {
    if (drv(text)) return;
    const ov = fs.readFileSync(path.join(root, 'bus/pci/devices', text, 'driver_override'), 'utf8').trim();
    const d = ov || NATIVE[text];
    if (!d || !fs.existsSync(path.join(root, 'bus/pci/drivers', d))) throw new Error('ENODEV');
    link(text, d);
  } else if ((m = /^bus\/pci\/drivers\/([^/]+)\/bind$/.exec(rel))) link(text, m[1]!);
  else if (/driver_override$/.test(rel)) fs.writeFileSync(file, text);
  else throw new Error(`unexpected sysfs write ${rel}`);
};
const spec = (raw: object) => vmSchema.parse({ name: 'pt', ...raw });

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-sysfs-'));
  fs.cpSync(FIXTURE, root, { recursive: true, verbatimSymlinks: true });
  for (const d of ['vfio-pci', 'pcieport', 'nvidia', 'snd_hda_intel', 'xhci_hcd', 'igb', 'nvme', 'i915']) fs.mkdirSync(path.join(root, 'bus/pci/drivers', d), { recursive: true });
  log = [];
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('which group members the host is using (facts)', () => {
  it('an up interface, a mounted partition, the boot VGA; idle devices are not in use', () => {
    const f = readTuningFacts(root, { mountinfo: '22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n' });
    expect(f.pciDevices['0000:04:00.0']!.inUse).toEqual(['network interface eth1 is up']);
    expect(f.pciDevices['0000:04:00.1']!.inUse).toBeUndefined();
    expect(f.pciDevices['0000:05:00.0']!.inUse).toEqual(['block device nvme0n1p1 is mounted']);
    expect(f.pciDevices['0000:06:00.0']!.inUse).toEqual(["it is the boot VGA device (the host's console)"]);
    expect(f.pciDevices['0000:02:00.0']!.inUse).toBeUndefined();
    expect(readTuningFacts(root, { mountinfo: '' }).pciDevices['0000:05:00.0']!.inUse).toBeUndefined();
  });

  it('managed (the default): a start that would take a device the host uses is refused, with the reason', () => {
    const f = readTuningFacts(root, { mountinfo: '22 1 259:1 / / rw - ext4 /dev/nvme0n1p1 rw\n' });
    expect(tuningHostIssues(spec({ pci: [{ host: '04:00.1' }] }), f)).toEqual([
      { path: 'pci[0].host', message: expect.stringMatching(/^IOMMU group 4 is in use by the host: 0000:04:00.0 \(igb\): network interface eth1 is up; kvmctl takes/) },
    ]);
    expect(tuningHostIssues(spec({ pci: [{ host: '05:00.0' }] }), f)[0]!.message).toMatch(/0000:05:00.0 \(nvme\): block device nvme0n1p1 is mounted/);
    expect(tuningHostIssues(spec({ pci: [{ host: '06:00.0' }] }), f)[0]!.message).toMatch(/boot VGA/);
    // Held by host drivers but idle: managed takes them; unmanaged is refused as before.
    expect(tuningHostIssues(spec({ pci: [{ host: '02:00.0' }] }), f)).toEqual([]);
    expect(tuningHostIssues(spec({ pci: [{ host: '02:00.0', managed: false }] }), f)[0]!.message).toMatch(/0000:02:00.0 is held by nvidia, 0000:02:00.1 is held by snd_hda_intel.*managed is false/);
  });
});

describe('bind and give back', () => {
  it('the plan: every member of each group once; vfio-pci, pcieport and pci-stub members stay', () => {
    const f = readTuningFacts(root, { mountinfo: '' });
    expect(vfioPlan(['0000:02:00.0', '0000:02:00.1'], f)).toEqual([{ address: '0000:02:00.0', driver: 'nvidia' }, { address: '0000:02:00.1', driver: 'snd_hda_intel' }]);
    expect(vfioPlan(['0000:01:00.0'], f)).toEqual([]); // group 1: root port + two vfio-pci functions
    expect(vfioPlan(['0000:03:00.0'], f)).toEqual([{ address: '0000:03:00.0', driver: undefined }, { address: '0000:03:00.1', driver: 'xhci_hcd' }]);
  });

  it('binds the whole group with driver_override, unbind, drivers_probe, recording ahead; gives each back to its driver', () => {
    const f = readTuningFacts(root, { mountinfo: '' });
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-run-'));
    const records: unknown[] = [];
    const taken = bindVfio(root, vfioPlan(['0000:02:00.0'], f), (t) => (records.push(t), writeVfioRecord(run, { sysfs: root, taken: t })), kernel);
    expect(taken).toEqual([{ address: '0000:02:00.0', driver: 'nvidia' }, { address: '0000:02:00.1', driver: 'snd_hda_intel' }]);
    expect([drv('0000:02:00.0'), drv('0000:02:00.1')]).toEqual(['vfio-pci', 'vfio-pci']);
    expect(records).toEqual([[taken[0]], taken]); // each device recorded before it is touched
    expect(log).toEqual([
      ['bus/pci/devices/0000:02:00.0/driver_override', 'vfio-pci'],
      ['bus/pci/devices/0000:02:00.0/driver/unbind', '0000:02:00.0'],
      ['bus/pci/drivers_probe', '0000:02:00.0'],
      ['bus/pci/devices/0000:02:00.1/driver_override', 'vfio-pci'],
      ['bus/pci/devices/0000:02:00.1/driver/unbind', '0000:02:00.1'],
      ['bus/pci/drivers_probe', '0000:02:00.1'],
    ]);
    log = [];
    expect(releaseVfioRecord(run, kernel)).toEqual([]);
    expect(fs.existsSync(vfioRecordFile(run))).toBe(false);
    expect([drv('0000:02:00.0'), drv('0000:02:00.1')]).toEqual(['nvidia', 'snd_hda_intel']);
    expect(log.slice(0, 3)).toEqual([
      ['bus/pci/devices/0000:02:00.1/driver_override', '\n'],
      ['bus/pci/devices/0000:02:00.1/driver/unbind', '0000:02:00.1'],
      ['bus/pci/drivers_probe', '0000:02:00.1'],
    ]);
    fs.rmSync(run, { recursive: true, force: true });
  });

  it('a device that had no driver is left unbound on give-back; a probe that picks another driver is corrected by name', () => {
    const f = readTuningFacts(root, { mountinfo: '' });
    const taken = bindVfio(root, vfioPlan(['0000:03:00.0'], f), () => undefined, kernel);
    expect([drv('0000:03:00.0'), drv('0000:03:00.1')]).toEqual(['vfio-pci', 'vfio-pci']);
    NATIVE['0000:03:00.1'] = 'igb'; // the probe would choose another driver than the one it had
    expect(releaseVfio(root, taken, kernel)).toEqual([]);
    NATIVE['0000:03:00.1'] = 'xhci_hcd';
    expect([drv('0000:03:00.0'), drv('0000:03:00.1')]).toEqual([undefined, 'xhci_hcd']);
    const i = log.findIndex(([f]) => f === 'bus/pci/drivers/xhci_hcd/bind');
    expect(log.slice(i - 1, i + 1)).toEqual([['bus/pci/devices/0000:03:00.1/driver/unbind', '0000:03:00.1'], ['bus/pci/drivers/xhci_hcd/bind', '0000:03:00.1']]);
  });

  it('no vfio-pci driver: refused before any write; a bind that does not take throws and names the device', () => {
    const f = readTuningFacts(root, { mountinfo: '' });
    fs.rmSync(path.join(root, 'bus/pci/drivers/vfio-pci'), { recursive: true });
    expect(() => bindVfio(root, vfioPlan(['0000:02:00.0'], f), () => undefined, kernel)).toThrow(expect.objectContaining({ code: 'VFIO_MISSING', exit: 2 }));
    expect(log).toEqual([]);
    fs.mkdirSync(path.join(root, 'bus/pci/drivers/vfio-pci'));
    const plain: SysfsWrite = (file, text) => (log.push([path.relative(root, file), text]), /driver_override$/.test(file) ? fs.writeFileSync(file, text) : undefined);
    expect(() => bindVfio(root, vfioPlan(['0000:02:00.0'], f), () => undefined, plain)).toThrow(/0000:02:00.0 is on nvidia after the bind, not vfio-pci/);
  });
});

describe('host check lines', () => {
  it('hugepages free per size and per node; every IOMMU group with each device, its driver and why it is in use', () => {
    const items = tuningItems(readTuningFacts(root, { mountinfo: '22 1 259:1 / / rw - ext4 /dev/nvme0n1p1 rw\n' }));
    expect(items.find((i) => i.id === 'mem.hugepages-free')!.detail).toBe('2M 116 free of 128 (4 reserved), 1G 0 free of 0; node 0: 2M 100 free of 100, 1G 0 free of 0; node 1: 2M 16 free of 28 (4 reserved), 1G 0 free of 0');
    const g = items.find((i) => i.id === 'host.iommu-groups')!.detail;
    expect(g).toContain('group 1: 0000:00:01.0 [8086:1901] pcieport, 0000:01:00.0 [10de:1b80] vfio-pci, 0000:01:00.1 [10de:10f0] vfio-pci');
    expect(g).toContain('group 3: 0000:03:00.0 [1b21:2142] no driver, 0000:03:00.1 [1b21:2143] xhci_hcd');
    expect(g).toContain('0000:04:00.0 [8086:1521] igb (in use: network interface eth1 is up)');
    expect(g).toContain('0000:05:00.0 [144d:a808] nvme (in use: block device nvme0n1p1 is mounted)');
    expect(tuningItems({ cpus: [0], hugepages: [], nodes: [], iommuGroups: [], pciDevices: {} }).map((i) => i.id)).toEqual(['mem.hugepages-free']);
  });
});
