/**
 * What the generated-line and libvirt importers do with the device details libvirt writes
 * (issue #18): disk serials kept (and passed to QEMU), guest-visible tuning dropped with a warning
 * while the disk or NIC is still imported, hot-plugged DIMMs counted as boot memory, duplicate
 * images and MACs imported once, encrypted images left out, libvirt's disk order.
 */
import { describe, expect, it } from 'vitest';
import { importCommandLine } from '../../../src/qemu/import.js';
import { importLibvirt } from '../../../src/import/libvirt.js';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import type { VmSpec } from '../../../src/definition/vm.js';

const line = (...opts: string[]) => ['qemu-system-x86_64 -name guest=t -m 512', ...opts].join(' \\\n');
const warnings = (r: { notes: { level: string; message: string }[] }) => r.notes.filter((n) => n.level === 'warning').map((n) => n.message).join('\n');

describe('generated-line devices', () => {
  it('keeps a disk whose -device has geometry and a serial: serial kept, geometry dropped with a warning', () => {
    const r = importCommandLine(
      line(
        `-blockdev '{"driver":"file","filename":"/var/lib/vm/a.img","node-name":"s1"}'`,
        `-blockdev '{"node-name":"f1","driver":"raw","file":"s1"}'`,
        `-device '{"driver":"ide-hd","bus":"ide.0","unit":0,"drive":"f1","id":"ide0-0-0","cyls":16383,"heads":16,"secs":63,"serial":"WD-123"}'`,
      ),
      { source: 't.args' },
    );
    expect(r.spec.disks).toHaveLength(1);
    expect(r.spec.disks[0]).toMatchObject({ file: '/var/lib/vm/a.img', format: 'raw', interface: 'ide', serial: 'WD-123' });
    expect(warnings(r)).toMatch(/cyls=16383,heads=16,secs=63 not kept/);
    expect(r.spec.extraArgs.join(' ')).not.toMatch(/ide-hd/);
  });

  it('keeps a virtio NIC with offload switches, and its MAC; a second NIC with the same MAC gets none', () => {
    const r = importCommandLine(
      line('-netdev user,id=n0', '-device virtio-net-pci,rss=on,netdev=n0,mac=52:54:00:aa:bb:cc', '-netdev user,id=n1', '-device virtio-net-pci,netdev=n1,mac=52:54:00:AA:BB:CC'),
      { source: 't.args' },
    );
    expect(r.spec.nics.map((n) => n.mac)).toEqual(['52:54:00:aa:bb:cc', undefined]);
    expect(warnings(r)).toMatch(/rss=on not kept/);
    expect(warnings(r)).toMatch(/MAC of an earlier NIC/);
  });

  it('the same image twice is imported once, with a warning (QEMU would refuse the second open)', () => {
    const r = importCommandLine('qemu-system-x86_64 -name a -m 256 -drive file=/var/lib/vm/a.img,format=raw -drive file=/var/lib/vm/a.img,format=raw', { source: 't.args' });
    expect(r.spec.disks.map((d) => d.file)).toEqual(['/var/lib/vm/a.img']);
    expect(warnings(r)).toMatch(/already an earlier disk/);
  });

  it('adds pc-dimm memory to the boot memory and consumes its backend', () => {
    const r = importCommandLine(line('-object memory-backend-ram,id=d0,size=536870912', '-device pc-dimm,memdev=d0,id=dimm0,slot=0'), { source: 't.args' });
    expect(r.spec.memory).toBe(1024 ** 3);
    expect(r.spec.extraArgs.join(' ')).not.toMatch(/pc-dimm|memory-backend/);
  });

  it('-mem-prealloc is a flag: the option after it is read as an option, not as a disk image', () => {
    const r = importCommandLine(line('-mem-prealloc', '-numa node,nodeid=0,cpus=0,mem=512'), { source: 't.args' });
    expect(r.spec.disks).toEqual([]);
  });

  it('an encrypted qcow2 chain is not imported as a plain disk', () => {
    const r = importCommandLine(
      line(
        `-blockdev '{"driver":"file","filename":"/var/lib/vm/enc.qcow2","node-name":"s1"}'`,
        `-blockdev '{"node-name":"f1","driver":"qcow2","encrypt":{"format":"luks","key-secret":"sec0"},"file":"s1"}'`,
        `-device '{"driver":"virtio-blk-pci","drive":"f1","id":"virtio-disk0"}'`,
      ),
      { source: 't.args' },
    );
    expect(r.spec.disks).toEqual([]);
    expect(warnings(r)).toMatch(/encrypted qcow2/);
  });
});

describe('libvirt XML devices', () => {
  const dom = (devices: string, extra = '') =>
    `<domain type='kvm'><name>t</name><memory unit='MiB'>1024</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>${extra}<devices>${devices}</devices></domain>`;
  const disk = (dev: string, bus: string, file: string, inner = '') => `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${file}'/><target dev='${dev}' bus='${bus}'/>${inner}</disk>`;

  it('orders disks as libvirt does (by bus in order of appearance, then target name) and keeps serials', () => {
    const r = importLibvirt(dom(disk('vdb', 'virtio', '/v/b') + disk('hda', 'ide', '/v/h') + disk('vda', 'virtio', '/v/a', '<serial>S-1</serial>')));
    expect(r.spec.disks.map((d) => d.file)).toEqual(['/v/a', '/v/b', '/v/h']);
    expect(r.spec.disks[0]!.serial).toBe('S-1');
  });

  it('leaves out an encrypted disk, with why', () => {
    const r = importLibvirt(dom(disk('vda', 'virtio', '/v/enc', "<encryption format='luks'><secret type='passphrase' uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption>")));
    expect(r.spec.disks).toEqual([]);
    expect(r.fidelity.lost.join()).toMatch(/disk vda/);
  });

  it('boot memory: the sum of the NUMA cells plus DIMMs; nvdimm not counted', () => {
    const r = importLibvirt(
      dom(
        "<memory model='dimm'><target><size unit='KiB'>524288</size><node>0</node></target></memory><memory model='nvdimm'><source><path>/tmp/nv</path></source><target><size unit='KiB'>524288</size><node>0</node></target></memory>",
        "<cpu><numa><cell id='0' cpus='0' memory='1048576' unit='KiB'/></numa></cpu>",
      ).replace("<memory unit='MiB'>1024</memory>", "<memory unit='KiB'>2097152</memory>"),
    );
    expect(r.spec.memory).toBe(1.5 * 1024 ** 3);
    expect(r.fidelity.lost.join()).toMatch(/nvdimm/);
  });

  it('a boot device the domain does not have is left out of the boot order, with a warning', () => {
    const r = importLibvirt(dom(disk('vda', 'virtio', '/v/a')).replace('</os>', "<boot dev='network'/><boot dev='hd'/></os>"));
    expect(r.spec.boot.order).toEqual(['disk']);
    expect(r.fidelity.lost.join()).toMatch(/boot from network/);
  });
});

describe('disk serial in the QEMU line', () => {
  const ctx: ArgvContext = {
    runtime: { dir: '/r', qmp: '/r/q', serial: '/r/s', serialLog: '/r/l', pidfile: '/r/p', vnc: '/r/v', qmpEvents: '/r/e' },
    imagesDir: '/var/lib/kvmctl/images',
    attachments: [],
  };
  const spec = (iface: string) => {
    const [doc] = parseDefinitions(`kind: vm\nname: s\nmemory: 256M\ndisks:\n  - {file: /var/lib/kvmctl/images/a.qcow2, interface: ${iface}, serial: SER-42}\n`, 's.yaml');
    expect(doc!.issues).toEqual([]);
    return doc!.spec as VmSpec;
  };
  for (const iface of ['virtio', 'ide', 'scsi', 'nvme']) {
    it(`${iface}: the disk's device carries serial=SER-42`, () => {
      const argv = buildArgv(spec(iface), TCG_HOST_FACTS, ctx).argv;
      const dev = argv.filter((a) => /drive=/.test(a));
      expect(dev.length, argv.join(' ')).toBe(1);
      expect(dev[0]).toMatch(/serial=SER-42/);
    });
  }
  it('a serial with a comma or longer than 20 characters is refused with its path', () => {
    const [doc] = parseDefinitions('kind: vm\nname: s\nmemory: 256M\ndisks:\n  - {file: a.qcow2, serial: "a,b"}\n', 's.yaml');
    expect(doc!.issues.map((i) => i.path)).toEqual(['disks[0].serial']);
  });
});

describe('-readconfig', () => {
  // The format QEMU's docs/config/ files use (and older QEMUs' -writeconfig wrote).
  const cfg = `# written by hand
[machine]
  type = "q35"
  accel = "tcg"

[memory]
  size = "1024"

[smp-opts]
  cpus = "2"

[drive "disk0"]
  file = "/var/lib/vm/r.qcow2"
  format = "qcow2"
  if = "none"

[device "blk0"]
  driver = "virtio-blk-pci"
  drive = "disk0"

[netdev "n0"]
  type = "user"

[device "nic0"]
  driver = "virtio-net-pci"
  netdev = "n0"
  mac = "52:54:00:00:aa:01"
`;
  it('imports the options of the file it names, like written on the line', () => {
    const r = importCommandLine('qemu-system-x86_64 -name guest=rc -readconfig vm.cfg -display none', { source: 'rc.sh', readConfig: (f) => (f === 'vm.cfg' ? cfg : undefined) });
    expect(r.spec.memory).toBe(1024 ** 3);
    expect(r.spec.cpu.count).toBe(2);
    expect(r.spec.machine.type).toBe('q35');
    expect(r.spec.disks).toEqual([expect.objectContaining({ file: '/var/lib/vm/r.qcow2', format: 'qcow2', interface: 'virtio' })]);
    expect(r.spec.nics.map((n) => n.mac)).toEqual(['52:54:00:00:aa:01']);
    expect(r.spec.extraArgs).toEqual([]);
    expect(r.notes.map((n) => n.message).join('\n')).toMatch(/-readconfig vm.cfg: its 7 sections/);
  });
  it('a file it cannot read stays in extraArgs with a warning', () => {
    const r = importCommandLine('qemu-system-x86_64 -name guest=rc -m 256 -readconfig gone.cfg', { source: 'rc.sh', readConfig: () => undefined });
    expect(r.spec.extraArgs).toEqual(['-readconfig', 'gone.cfg']);
    expect(warnings(r)).toMatch(/could not be read/);
  });
});
