/**
 * Production tuning (#20), pure parts: the schema's cross checks (all problems at once, with
 * paths), golden argv for memory backends / NUMA / iothreads / queues / vfio-pci / usb-host, the
 * sysfs reader over a fixture tree (test/fixtures/sysfs, no real PCI devices here), the start-time
 * host check (hugepage numbers, IOMMU groups held by the host) and the pinning plan.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { KVM_HOST_FACTS } from '../../../src/host/facts.js';
import { readTuningFacts } from '../../../src/host/tuning-facts.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { formatCpuList, parseCpuList } from '../../../src/definition/tuning.js';
import type { VmSpec } from '../../../src/definition/vm.js';
import { pinPlan } from '../../../src/vm/pin.js';
import { assertTuningFits, tuningHostIssues } from '../../../src/vm/tuning-check.js';

const SYS = path.resolve(__dirname, '../../fixtures/sysfs/two-node');

function parse(doc: Record<string, unknown>) {
  const [d] = parseDefinitions(JSON.stringify({ name: 'db1', ...doc }));
  return d!;
}
function spec(doc: Record<string, unknown>): VmSpec {
  const d = parse(doc);
  expect(d.issues).toEqual([]);
  return d.spec as VmSpec;
}
const ctx = (attachments: ArgvContext['attachments'] = []): ArgvContext => ({
  runtime: { dir: '/r', qmp: '/r/qmp.sock', serial: '/r/serial.sock', serialLog: '/r/serial.log', pidfile: '/r/qemu.pid', vnc: '/r/vnc.sock' },
  imagesDir: '/img',
  attachments,
});
const after = (argv: string[], flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

describe('cpu lists', () => {
  it('parses and formats ranges', () => {
    expect(parseCpuList('0-3,6')).toEqual([0, 1, 2, 3, 6]);
    expect(parseCpuList([3, 1, 1])).toEqual([1, 3]);
    expect(parseCpuList(2)).toEqual([2]);
    expect(parseCpuList('3-1')).toBeUndefined();
    expect(parseCpuList('a')).toBeUndefined();
    expect(formatCpuList([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8');
  });
});

describe('schema: tuning keys and their cross checks', () => {
  it('a plain definition keeps memory as bytes and has no memoryTuning', () => {
    const vm = spec({ memory: '1G' });
    expect(vm.memory).toBe(1024 ** 3);
    expect(vm.memoryTuning).toBeUndefined();
    expect(vm.pci).toEqual([]);
  });

  it('memory as an object: size stays bytes, tuning moves to memoryTuning', () => {
    const vm = spec({ cpu: { count: 2, pin: { vcpus: [0, '1'], emulator: '0-1' } }, memory: { size: '1G', hugepages: '2M', numa: [{ cpus: 0, memory: '512M', hostNodes: 0 }, { cpus: [1], memory: '512M' }], lock: true } });
    expect(vm.memory).toBe(1024 ** 3);
    expect(vm.memoryTuning).toMatchObject({ hugepages: '2M', lock: true, numa: [{ cpus: [0], memory: 512 * 1024 ** 2, hostNodes: [0] }, { cpus: [1] }] });
    expect(vm.cpu.pin).toEqual({ vcpus: [[0], [1]], emulator: [0, 1] });
  });

  it('reports every problem at once with its path', () => {
    const d = parse({
      cpu: { count: 3, pin: { vcpus: [0, 1], iothreads: 1 } },
      memory: { size: '1001M', hugepages: '2M', numa: [{ cpus: '0-1', memory: '512M' }, { cpus: [1, 5], memory: '256M', policy: 'bind' }] },
      disks: [{ file: 'a.img', interface: 'sata', iothread: 'auto', queues: 2 }, { file: 'b.img', detectZeroes: 'unmap' }],
      nics: [{ user: true, queues: 2 }, { network: 'lan', model: 'e1000', queues: 4 }],
      pci: [{ host: '01:00.0' }, { host: '0000:01:00.0' }],
      usb: [{ vendor: '046d', product: 'c52b' }, { vendor: '046D', product: 'C52B' }, { bus: 1, port: 'x' }],
    });
    const by = Object.fromEntries(d.issues.map((i) => [i.path, i.message]));
    expect(by['cpu.pin.vcpus']).toMatch(/lists 2 vCPUs but cpu.count is 3/);
    expect(by['memory.size']).toMatch(/not a whole number of 2M hugepages/);
    expect(d.issues.filter((i) => i.path === 'memory.numa').map((i) => i.message).join(' | ')).toMatch(/vCPU 2 is on no node/);
    expect(d.issues.filter((i) => i.path === 'memory.numa').map((i) => i.message).join(' | ')).toMatch(/adds up to 805306368 bytes but memory.size is 1049624576/);
    expect(by['memory.numa[1].cpus']).toMatch(/vCPU 1 is already on node 0|vCPU 5 does not exist/);
    expect(by['memory.numa[1].policy']).toMatch(/policy bind needs hostNodes/);
    expect(by['disks[0].iothread']).toMatch(/needs interface virtio \(this disk is sata\)/);
    expect(by['disks[0].queues']).toMatch(/virtio-blk setting/);
    expect(by['disks[1].detectZeroes']).toMatch(/needs discard: unmap/);
    expect(by['nics[0].queues']).toMatch(/user networking has one queue/);
    expect(d.issues.filter((i) => i.path === 'nics[1].queues').length).toBe(2); // e1000, and 4 > 3 vCPUs
    expect(by['pci[1].host']).toMatch(/0000:01:00.0 is already pci\[0\]/);
    expect(by['usb[1]']).toMatch(/same USB device as usb\[0\]/);
    expect(by['usb[2].port']).toMatch(/port path/);
    expect(d.spec).toBeUndefined();
  });

  it('pinning iothreads without any iothread disk, pci on microvm, a bad PCI address', () => {
    const d = parse({ machine: 'microvm', cpu: { pin: { iothreads: 0 } }, pci: [{ host: '1:0.0' }], usb: [{ bus: 1, port: '2' }] });
    const paths = d.issues.map((i) => i.path);
    expect(paths).toContain('cpu.pin.iothreads');
    expect(paths).toContain('pci[0].host');
    expect(paths).toContain('usb');
  });
});

describe('argv (golden)', () => {
  it('hugepages on two NUMA nodes with host binding, locked', () => {
    const vm = spec({ cpu: 4, memory: { size: '2G', hugepages: '2M', numa: [{ cpus: '0-1', memory: '1G', hostNodes: 0 }, { cpus: [2, 3], memory: '1G', hostNodes: 1, policy: 'preferred' }], lock: true } });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, ctx());
    expect(after(argv, '-m')).toEqual(['2G']);
    expect(after(argv, '-object').filter((o) => o.startsWith('memory-backend'))).toEqual([
      'memory-backend-memfd,id=mem0,size=1024M,hugetlb=on,hugetlbsize=2M,prealloc=on,host-nodes=0,policy=bind',
      'memory-backend-memfd,id=mem1,size=1024M,hugetlb=on,hugetlbsize=2M,prealloc=on,host-nodes=1,policy=preferred',
    ]);
    expect(after(argv, '-numa')).toEqual(['node,nodeid=0,cpus=0-1,memdev=mem0', 'node,nodeid=1,cpus=2-3,memdev=mem1']);
    expect(after(argv, '-overcommit')).toEqual(['mem-lock=on']);
  });

  it('NUMA without hugepages: memory-backend-ram; non-contiguous vCPUs as several cpus=', () => {
    const vm = spec({ cpu: 4, memory: { size: '1G', numa: [{ cpus: [0, 2], memory: '512M' }, { cpus: '1,3', memory: '512M' }] } });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, ctx());
    expect(after(argv, '-object').filter((o) => o.startsWith('memory-backend'))).toEqual(['memory-backend-ram,id=mem0,size=512M', 'memory-backend-ram,id=mem1,size=512M']);
    expect(after(argv, '-numa')).toEqual(['node,nodeid=0,cpus=0,cpus=2,memdev=mem0', 'node,nodeid=1,cpus=1,cpus=3,memdev=mem1']);
  });

  it('virtiofs with hugepages: one shared hugetlb memfd node (the old memfd line is not doubled)', () => {
    const vm = spec({ memory: { size: '512M', hugepages: '2M' }, shares: [{ path: '/srv', tag: 's', driver: 'virtiofs' }] });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, { ...ctx(), virtiofs: { fs0: '/r/fs0.sock' } });
    expect(after(argv, '-object').filter((o) => o.startsWith('memory-backend'))).toEqual(['memory-backend-memfd,id=mem,size=512M,hugetlb=on,hugetlbsize=2M,share=on,prealloc=on']);
    expect(after(argv, '-numa')).toEqual(['node,memdev=mem']);
  });

  it('iothreads (auto and shared by name), num-queues, detect-zeroes', () => {
    const vm = spec({
      disks: [
        { file: 'a.qcow2', iothread: 'auto', queues: 4, aio: 'io_uring', cache: 'none', detectZeroes: 'unmap', discard: 'unmap' },
        { file: 'b.raw', iothread: 'io1' },
        { file: 'c.raw', id: 'logs', iothread: 'io1' },
        { file: 'd.raw', detectZeroes: 'on' },
      ],
    });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, ctx());
    expect(after(argv, '-object').filter((o) => o.startsWith('iothread'))).toEqual(['iothread,id=iothread-disk0', 'iothread,id=io1']);
    expect(after(argv, '-drive')).toEqual([
      'file=/img/a.qcow2,format=qcow2,cache=none,aio=io_uring,discard=unmap,detect-zeroes=unmap,if=none,id=disk0',
      'file=/img/b.raw,format=raw,if=none,id=disk1',
      'file=/img/c.raw,format=raw,if=none,id=logs',
      'file=/img/d.raw,format=raw,detect-zeroes=on,if=virtio,media=disk,id=disk3',
    ]);
    expect(after(argv, '-device').filter((d) => d.startsWith('virtio-blk'))).toEqual([
      'virtio-blk-pci,drive=disk0,iothread=iothread-disk0,num-queues=4',
      'virtio-blk-pci,drive=disk1,iothread=io1',
      'virtio-blk-pci,drive=logs,iothread=io1',
    ]);
  });

  it('multiqueue virtio-net on a tap: queues=N, mq=on, vectors=2N+2; refused on a macvtap fd', () => {
    const vm = spec({ cpu: 4, nics: [{ tap: 'tap0', queues: 4, mac: '52:54:00:00:00:01' }] });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, ctx([{ kind: 'tap', ifname: 'tap0', vhost: true }]));
    expect(after(argv, '-netdev')).toEqual(['tap,id=net0,ifname=tap0,vhost=on,script=no,downscript=no,queues=4']);
    expect(after(argv, '-device').filter((d) => d.startsWith('virtio-net'))).toEqual(['virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,id=net0-dev,mq=on,vectors=10']);
    expect(() => buildArgv(vm, KVM_HOST_FACTS, ctx([{ kind: 'fd', fd: 3, vhost: true, mac: '52:54:00:00:00:01' }]))).toThrow(/multiqueue on a macvtap/);
  });

  it('vfio-pci and usb-host', () => {
    const vm = spec({ pci: [{ host: '01:00.0', multifunction: true }, { host: '0000:01:00.1', rom: false }, { host: '0000:02:00.0', rom: { file: '/var/lib/kvmctl/roms/gpu.rom' } }], usb: [{ vendor: '046D', product: 'c52b' }, { bus: 1, port: '1.4' }] });
    const { argv } = buildArgv(vm, KVM_HOST_FACTS, ctx());
    expect(after(argv, '-device').filter((d) => /vfio|usb|xhci/.test(d))).toEqual([
      'vfio-pci,host=0000:01:00.0,id=hostpci0,multifunction=on',
      'vfio-pci,host=0000:01:00.1,id=hostpci1,rombar=0',
      'vfio-pci,host=0000:02:00.0,id=hostpci2,romfile=/var/lib/kvmctl/roms/gpu.rom',
      'qemu-xhci,id=usb0',
      'usb-host,bus=usb0.0,id=hostusb0,vendorid=0x046d,productid=0xc52b',
      'usb-host,bus=usb0.0,id=hostusb1,hostbus=1,hostport=1.4',
    ]);
  });

  it('a definition without tuning keys gets exactly the argv it had (no memory backend, no -numa)', () => {
    const { argv } = buildArgv(spec({ memory: '1G', disks: [{ file: 'a.raw' }] }), KVM_HOST_FACTS, ctx());
    expect(argv.some((a) => a.startsWith('memory-backend') || a === '-numa' || a === '-overcommit' || a.startsWith('iothread'))).toBe(false);
    expect(after(argv, '-drive')).toEqual(['file=/img/a.raw,format=raw,if=virtio,media=disk,id=disk0']);
  });
});

describe('host facts from a sysfs tree (fixture)', () => {
  const f = readTuningFacts(SYS);
  it('reads CPUs, hugepage pools per size and node, IOMMU groups and drivers', () => {
    expect(f.cpus).toEqual([0, 1, 2, 3]);
    expect(f.hugepages).toEqual([{ sizeKb: 2048, total: 128, free: 120, reserved: 4 }, { sizeKb: 1048576, total: 0, free: 0, reserved: 0 }]);
    expect(f.nodes.map((n) => [n.node, n.cpus, n.hugepages.find((p) => p.sizeKb === 2048)?.free])).toEqual([[0, [0, 1], 100], [1, [2, 3], 20]]);
    expect(f.iommuGroups.map((g) => [g.group, g.devices.map((d) => `${d.address}=${d.driver ?? '-'}`)])).toEqual([
      [1, ['0000:00:01.0=pcieport', '0000:01:00.0=vfio-pci', '0000:01:00.1=vfio-pci']],
      [2, ['0000:02:00.0=nvidia', '0000:02:00.1=snd_hda_intel']],
      [3, ['0000:03:00.0=-', '0000:03:00.1=xhci_hcd']],
      [4, ['0000:04:00.0=igb', '0000:04:00.1=igb']],
      [5, ['0000:05:00.0=nvme']],
      [6, ['0000:06:00.0=i915']],
    ]);
    expect(f.iommuGroups[1]!.devices[0]).toMatchObject({ vendor: '10de', device: '2204' });
  });

  it('start is refused with the numbers when too few hugepages are free', () => {
    const vm = spec({ memory: { size: '512M', hugepages: '2M' } });
    const issues = tuningHostIssues(vm, f);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toMatch(/needs 256 free 2M hugepages \(512 MiB\), the host has 116 free of 128; reserve 140 more/);
    expect(() => assertTuningFits(vm, f)).toThrow(expect.objectContaining({ code: 'HOST_CANNOT_TUNE', exit: 2 }));
    expect(tuningHostIssues(spec({ memory: { size: '128M', hugepages: '2M' } }), f)).toEqual([]);
    expect(tuningHostIssues(spec({ memory: { size: '1G', hugepages: '1G' } }), f)[0]!.message).toMatch(/needs 1 free 1G hugepages.*has 0 free of 0/);
  });

  it('per host node: the node a guest node is bound to must have the pages', () => {
    const vm = spec({ cpu: 2, memory: { size: '128M', hugepages: '2M', numa: [{ cpus: 0, memory: '64M', hostNodes: 0 }, { cpus: 1, memory: '64M', hostNodes: 1 }] } });
    const issues = tuningHostIssues(vm, f);
    expect(issues.map((i) => i.message)).toEqual([expect.stringMatching(/host node 1 needs 32 free 2M hugepages .* it has 16 free of 28; reserve 16 more/)]);
    // A guest node bound to both host nodes may take from either pool: 116 free together.
    expect(tuningHostIssues(spec({ cpu: 1, memory: { size: '200M', hugepages: '2M', numa: [{ cpus: 0, memory: '200M', hostNodes: '0-1' }] } }), f)).toEqual([]);
    const both = tuningHostIssues(spec({ cpu: 2, memory: { size: '256M', hugepages: '2M', numa: [{ cpus: 0, memory: '128M', hostNodes: '0-1' }, { cpus: 1, memory: '128M', hostNodes: '0-1' }] } }), f);
    expect(both.map((i) => i.message)).toEqual([expect.stringMatching(/needs 128 free 2M.*has 116 free/), expect.stringMatching(/^host nodes 0-1 need 128 free 2M hugepages for the guest nodes bound to them, they have 116 free of 128/)]);
    // preferred is not bind: the kernel may fall back to another node.
    expect(tuningHostIssues(spec({ cpu: 1, memory: { size: '128M', hugepages: '2M', numa: [{ cpus: 0, memory: '128M', hostNodes: 1, policy: 'preferred' }] } }), f)).toEqual([]);
    expect(tuningHostIssues(spec({ cpu: 2, memory: { size: '128M', numa: [{ cpus: '0-1', memory: '128M', hostNodes: 4 }] } }), f)[0]!.message).toMatch(/host node 4 does not exist \(host nodes: 0-1\)/);
  });

  it('pinning to an offline CPU is refused', () => {
    const issues = tuningHostIssues(spec({ cpu: { count: 1, pin: { vcpus: ['6'], emulator: 0 } } }), f);
    expect(issues).toEqual([{ path: 'cpu.pin.vcpus[0]', message: 'host CPU 6 is not online (online: 0-3)' }]);
  });

  it('PCI, managed: false: a group on vfio-pci (and a root port) may go; a group member held by a host driver is refused', () => {
    expect(tuningHostIssues(spec({ pci: [{ host: '01:00.0', managed: false }, { host: '01:00.1', managed: false }] }), f)).toEqual([]);
    const gpu = tuningHostIssues(spec({ pci: [{ host: '0000:02:00.0', managed: false }] }), f);
    expect(gpu[0]!.message).toMatch(/IOMMU group 2 is in use by the host: 0000:02:00.0 is held by nvidia, 0000:02:00.1 is held by snd_hda_intel/);
    const usb = tuningHostIssues(spec({ pci: [{ host: '0000:03:00.0', managed: false }] }), f);
    expect(usb[0]!.message).toMatch(/0000:03:00.0 is held by no driver, 0000:03:00.1 is held by xhci_hcd/);
    expect(tuningHostIssues(spec({ pci: [{ host: '0000:09:00.0' }] }), f)[0]!.message).toMatch(/no PCI device 0000:09:00.0/);
    expect(() => assertTuningFits(spec({ pci: [{ host: '0000:02:00.0', managed: false }] }), f)).toThrow(/driver_override|in use by the host/);
    // Managed (the default): idle host drivers are taken at start (test/unit/host/vfio-bind.test.ts), an up NIC is not.
    expect(tuningHostIssues(spec({ pci: [{ host: '0000:02:00.0' }, { host: '03:00.0' }] }), f)).toEqual([]);
    expect(tuningHostIssues(spec({ pci: [{ host: '04:00.1' }] }), f)[0]!.message).toMatch(/eth1 is up/);
  });

  it('no IOMMU: every PCI device is refused', () => {
    const noIommu = { ...f, iommuGroups: [], pciDevices: { '0000:01:00.0': { driver: 'vfio-pci' } } };
    expect(tuningHostIssues(spec({ pci: [{ host: '01:00.0' }] }), noIommu)[0]!.message).toMatch(/IOMMU is off/);
  });
});

describe('pinning plan', () => {
  it('vCPU i to vcpus[i], iothreads to their list, every other thread to emulator', () => {
    const plan = pinPlan({ vcpus: [[1], [0]], emulator: [0], iothreads: [1] }, [{ index: 0, tid: 11 }, { index: 1, tid: 12 }], [{ id: 'iothread-disk0', tid: 13 }], [10, 11, 12, 13, 14]);
    expect(plan).toEqual([
      { tid: 11, cpus: '1', what: 'vCPU 0' },
      { tid: 12, cpus: '0', what: 'vCPU 1' },
      { tid: 13, cpus: '1', what: 'iothread iothread-disk0' },
      { tid: 10, cpus: '0', what: 'emulator' },
      { tid: 14, cpus: '0', what: 'emulator' },
    ]);
    expect(pinPlan({ vcpus: [[0, 1]] }, [{ index: 0, tid: 5 }], [], [4, 5])).toEqual([{ tid: 5, cpus: '0-1', what: 'vCPU 0' }]);
  });
});
