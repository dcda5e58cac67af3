/**
 * Running-VM changes (src/vm/hotplug.ts) as golden QMP commands, and the definition keys they need
 * (cpu.maxCount, memory.balloon, usbController) in the schema and the argv. The vCPU slot list is
 * what QEMU 7.2 answered to query-hotpluggable-cpus for `-smp 1,maxcpus=2` and `-smp 2,sockets=2,cores=2,maxcpus=4`-like
 * layouts (recorded on this machine). No USB devices exist here: usb-host is tested as commands.
 */
import { describe, expect, it } from 'vitest';
import { balloonTarget, cpuAddCommands, hasUsbController, parseUsbSelector, usbDeviceAdd, type HotpluggableCpu } from '../../../src/vm/hotplug.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { KVM_HOST_FACTS } from '../../../src/host/facts.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import type { VmSpec } from '../../../src/definition/vm.js';

const ctx: ArgvContext = {
  runtime: { dir: '/r', qmp: '/r/qmp.sock', serial: '/r/serial.sock', serialLog: '/r/serial.log', pidfile: '/r/qemu.pid', vnc: '/r/vnc.sock' },
  imagesDir: '/img',
  attachments: [],
};
const parse = (doc: object) => parseDefinitions(JSON.stringify({ name: 'h', ...doc }))[0]!;
const spec = (doc: object) => {
  const d = parse(doc);
  expect(d.issues).toEqual([]);
  return d.spec as VmSpec;
};
const argv = (doc: object) => buildArgv(spec(doc), KVM_HOST_FACTS, ctx).argv;
const after = (a: string[], flag: string) => a.flatMap((x, i) => (x === flag ? [a[i + 1]!] : []));

describe('vCPU hotplug', () => {
  it('device_add of the free slots in topology order, ids vcpuN', () => {
    const slots: HotpluggableCpu[] = [
      { props: { 'core-id': 1, 'thread-id': 0, 'socket-id': 1 }, 'vcpus-count': 1, type: 'max-x86_64-cpu' },
      { props: { 'core-id': 0, 'thread-id': 0, 'socket-id': 1 }, 'vcpus-count': 1, type: 'max-x86_64-cpu' },
      { props: { 'core-id': 1, 'thread-id': 0, 'socket-id': 0 }, 'vcpus-count': 1, type: 'max-x86_64-cpu', 'qom-path': '/machine/unattached/device[1]' },
      { props: { 'core-id': 0, 'thread-id': 0, 'socket-id': 0 }, 'vcpus-count': 1, type: 'max-x86_64-cpu', 'qom-path': '/machine/unattached/device[0]' },
    ];
    expect(cpuAddCommands(slots, 2, 4)).toEqual([
      { driver: 'max-x86_64-cpu', id: 'vcpu2', 'socket-id': 1, 'core-id': 0, 'thread-id': 0 },
      { driver: 'max-x86_64-cpu', id: 'vcpu3', 'socket-id': 1, 'core-id': 1, 'thread-id': 0 },
    ]);
    expect(cpuAddCommands(slots, 2, 3)).toHaveLength(1);
    expect(cpuAddCommands(slots, 2, 2)).toEqual([]);
  });

  it('cpu.maxCount: -smp N,maxcpus=M; the topology, pin lists and NUMA nodes describe every slot', () => {
    expect(after(argv({ cpu: { count: 1, maxCount: 2 } }), '-smp')).toEqual(['1,maxcpus=2']);
    expect(after(argv({ cpu: { count: 2, maxCount: 4, sockets: 2, cores: 2 } }), '-smp')).toEqual(['2,sockets=2,cores=2,maxcpus=4']);
    expect(after(argv({ cpu: { count: 2, maxCount: 2 } }), '-smp')).toEqual(['2']);
    const bad = parse({ cpu: { count: 2, maxCount: 1, pin: { vcpus: [0] } } }).issues.map((i) => `${i.path}: ${i.message}`);
    expect(bad).toEqual(expect.arrayContaining([expect.stringMatching(/^cpu\.maxCount: maxCount 1 is less than count 2/)]));
    const topo = parse({ cpu: { count: 2, maxCount: 4, sockets: 1, cores: 2 } }).issues;
    expect(topo.map((i) => i.message)).toEqual([expect.stringMatching(/sockets × cores × threads = 2 but maxCount is 4/)]);
    const pin = parse({ cpu: { count: 1, maxCount: 2, pin: { vcpus: [1] } } }).issues;
    expect(pin.map((i) => i.message)).toEqual([expect.stringMatching(/lists 1 vCPU but cpu.maxCount is 2: give one CPU list per vCPU slot/)]);
    expect(parse({ machine: 'microvm', cpu: { count: 1, maxCount: 2 }, kernel: { path: '/k' } }).issues.map((i) => `${i.path}: ${i.message}`)).toEqual(['cpu.maxCount: vCPU hotplug needs machine q35 or pc (microvm has no ACPI CPU hotplug)']);
  });
});

describe('memory balloon', () => {
  it('memory.balloon → virtio-balloon-pci with free-page-reporting / deflate-on-oom; true = free page reporting', () => {
    expect(after(argv({ memory: { size: '1G', balloon: true } }), '-device')).toContain('virtio-balloon-pci,id=balloon0,free-page-reporting=on');
    expect(after(argv({ memory: { size: '1G', balloon: { deflateOnOom: true } } }), '-device')).toContain('virtio-balloon-pci,id=balloon0,free-page-reporting=on,deflate-on-oom=on');
    expect(after(argv({ memory: { size: '1G', balloon: { freePageReporting: false } } }), '-device')).toContain('virtio-balloon-pci,id=balloon0');
    const plain = argv({ memory: { size: '1G', balloon: false } });
    expect(plain.join(' ')).not.toMatch(/balloon|memory-backend/);
    expect(spec({ memory: { size: '1G', balloon: true } }).memoryTuning).toBeUndefined(); // no memory backend for a balloon
    expect(parse({ memory: { size: '1G', balloon: { reporting: true } } }).issues.map((i) => i.path)).toEqual(['memory.balloon.reporting']);
  });

  it('a balloon target inside 64M … the VM memory; none without a balloon', () => {
    const vm = spec({ memory: { size: '1G', balloon: true } });
    expect(balloonTarget(vm, '512M')).toBe(512 * 2 ** 20);
    expect(balloonTarget(vm, '1G')).toBe(2 ** 30);
    expect(() => balloonTarget(vm, '2G')).toThrow(expect.objectContaining({ code: 'BAD_SIZE', exit: 2 }));
    expect(() => balloonTarget(vm, '1M')).toThrow(/outside 64M–1G/);
    expect(() => balloonTarget(vm, 'lots')).toThrow(/not a size/);
    expect(() => balloonTarget(spec({ memory: '1G' }), '512M')).toThrow(expect.objectContaining({ code: 'NO_BALLOON' }));
  });
});

describe('USB hotplug', () => {
  it('device_add usb-host on usb0 by vendor/product or bus/port, as the argv does', () => {
    expect(usbDeviceAdd(parseUsbSelector('046D:c52b'), 'usbhot0')).toEqual({ driver: 'usb-host', id: 'usbhot0', bus: 'usb0.0', vendorid: 0x046d, productid: 0xc52b });
    expect(usbDeviceAdd(parseUsbSelector('1-1.4'), 'u1')).toEqual({ driver: 'usb-host', id: 'u1', bus: 'usb0.0', hostbus: 1, hostport: '1.4' });
    expect(after(argv({ usb: [{ vendor: '046d', product: 'c52b' }] }), '-device').filter((d) => /usb/.test(d))).toEqual(['qemu-xhci,id=usb0', 'usb-host,bus=usb0.0,id=hostusb0,vendorid=0x046d,productid=0xc52b']);
    for (const bad of ['046d', '46d:c52b', '0-1', '1-', 'usb1']) expect(() => parseUsbSelector(bad)).toThrow(expect.objectContaining({ code: 'BAD_USB', exit: 2 }));
  });

  it('usbController: true gives the xHCI controller without devices; otherwise no controller, no hotplug', () => {
    expect(after(argv({ usbController: true }), '-device')).toContain('qemu-xhci,id=usb0');
    expect(argv({}).join(' ')).not.toContain('qemu-xhci');
    expect(hasUsbController(spec({ usbController: true }))).toBe(true);
    expect(hasUsbController(spec({}))).toBe(false);
    expect(hasUsbController(spec({ usb: [{ bus: 1, port: '2' }] }))).toBe(true);
  });
});
