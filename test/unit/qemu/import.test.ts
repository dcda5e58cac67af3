/**
 * `kvmctl import cmdline`: launch scripts → definitions, and the round trip back through the
 * argv builder (buildArgv with KVM_HOST_FACTS gives an equivalent QEMU command line).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KVM_HOST_FACTS } from '../../../src/host/facts.js';
import { deriveMac } from '../../../src/net/mac.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { buildArgv, diskFormat, type ArgvContext } from '../../../src/qemu/argv.js';
import type { NicAttachment } from '../../../src/qemu/attachments.js';
import { importArgv, importCommandLine, importYaml, saveImport, type ImportResult } from '../../../src/qemu/import.js';
import { parseOpts } from '../../../src/qemu/parse-opts.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import type { VmSpec } from '../../../src/definition/vm.js';
import { makeHome, ROOT } from '../../helpers/kvmctl.js';

const fixture = (name: string) => path.join(ROOT, 'test/fixtures/import', name);
const importFile = (name: string, opts: { name?: string } = {}) => importCommandLine(fs.readFileSync(fixture(name), 'utf8'), { source: fixture(name), ...opts });
const warnings = (r: ImportResult) => r.notes.filter((n) => n.level === 'warning').map((n) => n.message);
const notes = (r: ImportResult) => r.notes.filter((n) => n.level === 'note').map((n) => n.message);

const RUN = '/run/kvmctl/vms/t';
function build(spec: VmSpec) {
  const attachments: NicAttachment[] = spec.nics.map((n) =>
    n.user ? { kind: 'user', forwards: n.user === true ? [] : n.user.forwards } : n.tap ? { kind: 'tap', ifname: n.tap, vhost: true } : { kind: 'fd', fd: 3, vhost: true, mac: '52:54:00:aa:bb:cc' },
  );
  const ctx: ArgvContext = {
    runtime: { dir: RUN, qmp: `${RUN}/qmp.sock`, serial: `${RUN}/serial.sock`, serialLog: `${RUN}/serial.log`, pidfile: `${RUN}/qemu.pid`, vnc: `${RUN}/vnc.sock` },
    imagesDir: '/var/lib/kvmctl/images',
    attachments,
    kernel: spec.kernel?.path ? { path: spec.kernel.path, initrd: spec.kernel.initrd, append: spec.kernel.append } : undefined,
  };
  return buildArgv(spec, KVM_HOST_FACTS, ctx);
}

/** `-opt value` pairs of an argv (after the binary). */
function options(argv: string[]): { flag: string; value?: string }[] {
  const out: { flag: string; value?: string }[] = [];
  for (let i = 1; i < argv.length; i++) {
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('-')) out.push({ flag: argv[i]!, value: argv[++i] });
    else out.push({ flag: argv[i]! });
  }
  return out;
}

const ALIAS: Record<string, string> = { 'virtio-net': 'virtio-net-pci', driver: 'format' };
/** Option values as key→value maps, aliases folded, flags spelled out (server → server=on). */
function optMap(flag: string, value: string): Map<string, string> {
  const implied = ['-netdev', '-device', '-object', '-fsdev', '-chardev', '-monitor', '-qmp'].includes(flag) ? '_' : flag === '-machine' ? 'type' : flag === '-smp' ? 'cpus' : '_';
  const m = new Map<string, string>();
  // Image paths are compared by name: kvmctl resolves relative ones in its images dir.
  for (const [k, v] of parseOpts(value, implied).pairs) m.set(ALIAS[k] ?? k, k === 'file' ? path.basename(v) : (ALIAS[v] ?? v));
  return m;
}

/** Is every option of `want` (with all its values) present in `got`, modulo order and aliases? */
function missingFrom(got: string[], want: string[], except: string[] = []): string[] {
  const ours = options(got);
  return options(want)
    .filter((w) => !except.includes(w.flag))
    .filter((w) => !ours.some((o) => o.flag === w.flag && (w.value === undefined || (o.value !== undefined && [...optMap(w.flag, w.value)].every(([k, v]) => optMap(o.flag, o.value!).get(k) === v)))))
    .map((w) => `${w.flag} ${w.value ?? ''}`.trim());
}

/**
 * Semantic fixed point: import the built argv again and compare definitions, modulo what kvmctl
 * owns (runtime socket paths, default ids, the images dir) and the accelerator it picked.
 */
function canon(spec: VmSpec): unknown {
  const s = structuredClone(spec) as any;
  delete s.qmp;
  s.machine.accel = s.machine.accel.slice(0, 1);
  if (s.display.vnc?.socket?.startsWith(RUN)) delete s.display.vnc;
  if (s.monitor?.socket?.startsWith(RUN)) s.monitor = true; // kvmctl's own monitor socket
  if (s.rng === true) s.rng = { source: '/dev/urandom' };
  for (const [list, prefix] of [[s.disks, 'disk'], [s.nics, 'net'], [s.shares, 'fs'], [s.cdroms, 'cd']] as const) {
    list.forEach((x: any, i: number) => {
      // kvmctl gives a NIC without a MAC a stable one derived from the VM and NIC names.
      if (prefix === 'net' && x.mac === deriveMac(spec.name, x.id ?? `net${i}`)) delete x.mac;
      if (x.id === `${prefix}${i}`) delete x.id;
      if (x.file) x.file = path.basename(x.file);
      // No format: QEMU probes, kvmctl infers it from the extension and writes it out.
      if (prefix === 'disk') x.format = diskFormat(x);
    });
  }
  return s;
}
function expectFixedPoint(spec: VmSpec): void {
  const again = importArgv(build(spec).argv, { name: spec.name });
  expect(canon(again.spec)).toEqual(canon(spec));
}

describe('import: the seed launch script (§6)', () => {
  const r = importFile('seed-exam_vm.sh');

  it('maps every option onto the definition, as examples/exam_vm.yaml writes it by hand', () => {
    const example = parseDefinitions(fs.readFileSync(path.join(ROOT, 'examples/exam_vm.yaml'), 'utf8')).find((d) => d.kind === 'vm')!.spec as VmSpec;
    const { create: _c, ...exampleDisk } = example.disks[0]!;
    expect(r.spec.disks).toEqual([exampleDisk]);
    for (const k of ['name', 'machine', 'cpu', 'memory', 'rng', 'boot', 'nics', 'monitor', 'display', 'shares', 'extraArgs'] as const) expect(r.spec[k], k).toEqual(example[k]);
    expect(r.vm.extraArgs).toBeUndefined();
    expect(warnings(r)).toEqual([]);
    expect(notes(r).join('\n')).toMatch(/-daemonize: kvmctl always runs QEMU detached/);
  });

  it('round trip: buildArgv on a KVM host carries every option and value of the seed line (modulo order and aliases)', () => {
    const built = build(r.spec);
    expect(built.warnings).toEqual([]);
    const seed = fs.readFileSync(fixture('seed-exam_vm.sh'), 'utf8').replace(/\\\n/g, ' ').replace(/^#.*$/gm, '').split(/\s+/).filter(Boolean).map((t) => t.replace(/^"(.*)"$/, '$1'));
    // -daemonize is the one seed option kvmctl replaces (it always detaches QEMU itself).
    const norm = (a: string[]) => a.map((x) => x.replace(/,server,nowait$/, ',server=on,wait=off'));
    expect(missingFrom(norm(built.argv), norm(seed), ['-daemonize'])).toEqual([]);
    expectFixedPoint(r.spec);
  });
});

describe('import: the seed macvtap lines (§3)', () => {
  const r = importFile('seed-macvtap.sh');

  it('turns the fd-passed macvtap into a macvtap network with the parent and mode of `ip link add`', () => {
    expect(r.vm.nics).toEqual([{ id: 'net0', network: 'macvtap0', model: 'virtio', vhost: 'on' }]);
    expect(r.networks).toEqual([{ kind: 'network', name: 'macvtap0', type: 'macvtap', parent: 'enp8s0f0', mode: 'bridge' }]);
    expect(r.networkSpecs[0]).toMatchObject({ type: 'macvtap', parent: 'enp8s0f0', mode: 'bridge' });
    const w = warnings(r).join('\n');
    expect(w).toMatch(/-netdev tap,fd=3 with 3<>\/dev\/tap\$\(cat \/sys\/class\/net\/\$\{MACVTAP\}\/ifindex\) is a macvtap passed by fd: imported as network "macvtap0"/);
    expect(w).toMatch(/took this to be macvtap0, the only macvtap the script creates \(line 6\)/);
    expect(w).toMatch(/command substitution \$\(cat \/sys\/class\/net\/\$\{MACVTAP\}\/address\) is not run/);
    expect(notes(r).join('\n')).toMatch(/macvtap NIC the macvtap interface's own MAC/);
  });

  it('names the macvtap from the sysfs path when the variable is set in the script', () => {
    const s = importCommandLine('MACVTAP=mvt1\nqemu-system-x86_64 -name v -netdev tap,id=n0,fd=3 3<>/dev/tap$(cat /sys/class/net/${MACVTAP}/ifindex) -device virtio-net-pci,netdev=n0\n');
    expect(s.vm.nics).toEqual([{ id: 'n0', network: 'mvt1', model: 'virtio', vhost: 'off' }]);
    expect(s.networks).toEqual([]);
    expect(warnings(s).join('\n')).toMatch(/define network "mvt1" yourself/);
  });

  it('round trip: the fd netdev and the virtio-net device come back from buildArgv', () => {
    const built = build(r.spec);
    expect(built.argv).toContain('tap,id=net0,fd=3,vhost=on');
    const seed = ['qemu', '-netdev', 'tap,id=net0,vhost=on,fd=3', '-device', 'virtio-net,netdev=net0'];
    expect(missingFrom(built.argv, seed)).toEqual([]);
    // The guest MAC is the macvtap's own (from the attachment), as the seed's $(cat …/address).
    expect(built.argv).toContain('virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,id=net0-dev');
  });
});

describe('import: other real-world styles', () => {
  it('(a) -enable-kvm -hda -m 2048 -cdrom -boot d -net nic -net user', () => {
    const r = importFile('enable-kvm-hda.sh');
    expect(r.vm).toMatchObject({
      name: 'enable-kvm-hda',
      machine: { type: 'pc', accel: ['kvm'] },
      cpu: { model: 'qemu64', count: 1 },
      memory: '2G',
      disks: [{ file: 'disk.qcow2', interface: 'ide', index: 0 }],
      cdroms: [{ file: 'install.iso' }],
      boot: { order: ['cdrom'] },
      nics: [{ user: true, model: 'e1000' }],
      display: { type: 'vnc' },
    });
    expect(warnings(r)).toEqual([]);
    expect(notes(r).join('\n')).toMatch(/QEMU's default machine is pc/);
    const built = build(r.spec).argv;
    const at = (f: string) => built[built.indexOf(f) + 1];
    expect(at('-machine')).toBe('type=pc,accel=kvm');
    expect(at('-m')).toBe('2G');
    expect(at('-boot')).toBe('d');
    expect(built).toContain('file=/var/lib/kvmctl/images/disk.qcow2,format=qcow2,if=ide,index=0,media=disk,id=disk0');
    expect(built).toContain('file=/var/lib/kvmctl/images/install.iso,if=ide,media=cdrom,readonly=on,id=cd0');
    expect(built).toContain('user,id=net0');
    expect(built).toContain(`e1000,netdev=net0,mac=${deriveMac(r.spec.name, 'net0')},id=net0-dev`);
    expectFixedPoint(r.spec);
  });

  it('(b) quickemu style: variables, -nic user with hostfwd, topology; unmapped options kept in extraArgs with a warning each', () => {
    const r = importFile('quickemu-style.sh');
    expect(r.vm).toMatchObject({
      name: 'debian-12',
      machine: { type: 'q35', accel: ['kvm'] },
      cpu: { model: 'host,topoext', count: 4, sockets: 1, cores: 4, threads: 1 },
      rng: { source: '/dev/urandom' },
      disks: [{ id: 'drive0', file: '/srv/vms/debian-12/disk.qcow2', format: 'qcow2', interface: 'virtio', cache: 'directsync', aio: 'native' }],
      nics: [{ user: { forwards: [{ proto: 'tcp', hostPort: 2222, guestPort: 22 }] }, model: 'virtio' }],
      monitor: { socket: '/srv/vms/debian-12/monitor.socket' },
      serial: 'socket',
      display: { type: 'vnc', vnc: { listen: '127.0.0.1:1' } },
    });
    expect(r.vm.extraArgs).toEqual([
      '-machine', 'smm=off,vmport=off',
      '-device', 'virtio-balloon',
      '-rtc', 'base=localtime,clock=host',
      '-usb',
      '-device', 'usb-ehci,id=input',
      '-device', 'usb-kbd,bus=input.0',
      '-device', 'usb-tablet,bus=input.0',
    ]);
    const w = warnings(r);
    for (const x of ['-machine smm=off,vmport=off', '-device virtio-balloon', '-rtc base=localtime,clock=host', '-usb', '-device usb-tablet,bus=input.0']) {
      expect(w.some((m) => m.startsWith(`${x}: kept in extraArgs`)), x).toBe(true);
    }
    expect(w.join('\n')).toMatch(/\$@: the script passes its own arguments on to QEMU/);
    expect(notes(r).join('\n')).toMatch(/-pidfile .*kvmctl keeps the pidfile/);
    const built = build(r.spec).argv;
    expect(built).toContain('user,id=net0,hostfwd=tcp::2222-:22');
    expect(built).toContain(`virtio-net-pci,netdev=net0,mac=${deriveMac(r.spec.name, 'net0')},id=net0-dev`);
    expect(built[built.indexOf('-smp') + 1]).toBe('4,sockets=1,cores=4,threads=1');
    expect(built[built.indexOf('-vnc') + 1]).toBe('127.0.0.1:1');
    expect(built.slice(-13)).toEqual(r.vm.extraArgs);
    expectFixedPoint(r.spec);
  });

  it('(c) -drive if=none + -device virtio-blk-pci / scsi-hd pairs, a static tap, -nographic', () => {
    const r = importFile('drive-if-none.sh');
    expect(r.vm.disks).toEqual([
      { id: 'd0', file: 'x.qcow2', format: 'qcow2', interface: 'virtio' },
      { id: 'd1', file: '/srv/data,2024.raw', format: 'raw', interface: 'scsi', cache: 'none', aio: 'native', discard: 'unmap' },
    ]);
    expect(r.vm.nics).toEqual([{ id: 'n0', tap: 'tap5', model: 'e1000', mac: '52:54:00:12:34:56', vhost: 'off' }]);
    expect(r.vm.display).toEqual({ type: 'none' });
    expect(r.vm.monitor).toBe(true); // -nographic's Ctrl-A c monitor, now on a socket
    expect(r.vm.extraArgs).toBeUndefined();
    expect(warnings(r)).toEqual([]);
    const built = build(r.spec).argv;
    expect(built).toContain('file=/var/lib/kvmctl/images/x.qcow2,format=qcow2,if=virtio,media=disk,id=d0');
    expect(built).toContain('file=/srv/data,,2024.raw,format=raw,cache=none,aio=native,discard=unmap,if=none,id=d1');
    expect(built).toContain('scsi-hd,drive=d1,bus=scsi0.0');
    expect(built).toContain('virtio-scsi-pci,id=scsi0');
    expect(built).toContain('tap,id=n0,ifname=tap5,vhost=off,script=no,downscript=no');
    expectFixedPoint(r.spec);
    // kvmctl's own hotplug ports come back as machine.hotplugSlots (left out at the default).
    expectFixedPoint({ ...r.spec, machine: { ...r.spec.machine, hotplugSlots: 2 } });
  });

  it('(d) -chardev socket + -mon, -qmp, -serial mon:stdio, -virtfs, direct kernel boot, -runas', () => {
    const r = importFile('chardev-mon.sh');
    expect(r.vm).toMatchObject({
      machine: { type: 'q35', accel: ['kvm', 'tcg'] },
      cpu: { model: 'max', count: 2 },
      memory: '1G',
      kernel: { path: '/boot/vmlinuz', initrd: '/boot/initrd.img', append: 'console=ttyS0 root=/dev/vda rw' },
      disks: [{ file: '/srv/root.img', format: 'raw', interface: 'virtio' }],
      monitor: { socket: '/run/m.sock' },
      qmp: { socket: '/run/q.sock' },
      serial: 'socket',
      shares: [{ id: 'fs0', path: '/srv/share', tag: 'share0', securityModel: 'none', readOnly: true }],
      runAs: 'kvm',
      // No network options and no -nodefaults: QEMU's default NIC (e1000e on q35, user-mode).
      nics: [{ user: true, model: 'e1000e' }],
    });
    expect(warnings(r)).toEqual([]);
    expect(notes(r).join('\n')).toMatch(/-serial mon:stdio: kvmctl runs QEMU detached/);
    const built = build(r.spec).argv;
    const at = (f: string) => built[built.indexOf(f) + 1];
    expect(at('-monitor')).toBe('unix:/run/m.sock,server=on,wait=off');
    expect(at('-kernel')).toBe('/boot/vmlinuz');
    expect(at('-append')).toBe('console=ttyS0 root=/dev/vda rw');
    expect(at('-runas')).toBe('kvm');
    expect(built).toContain('local,id=fs0,path=/srv/share,security_model=none,readonly=on');
    expect(built).toContain('virtio-9p-pci,fsdev=fs0,mount_tag=share0');
    expectFixedPoint(r.spec);
  });
});

describe('import: substitutions are reported, never run', () => {
  const marker = '/tmp/kvmctl-import-marker';
  afterAll(() => fs.rmSync(marker, { force: true }));

  it('keeps $(…) verbatim, warns about it, and runs nothing', () => {
    fs.rmSync(marker, { force: true });
    const r = importFile('substitutions.sh', { name: 'subst' });
    expect(fs.existsSync(marker)).toBe(false);
    expect(r.name).toBe('subst');
    const w = warnings(r);
    expect(w).toContain('command substitution $(touch /tmp/kvmctl-import-marker; echo disk.img) is not run by kvmctl: kept as written');
    expect(w).toContain('$NAME is set on line 3 from $(hostname -s)-vm, which kvmctl does not run: kept as written');
    expect(w).toContain('-hda $(touch /tmp/kvmctl-import-marker; echo disk.img): kept in extraArgs (its value contains $(touch /tmp/kvmctl-import-marker; echo disk.img), which kvmctl does not run)');
    expect(w).toContain('-m $(( 2 * 1024 )): kept in extraArgs (its value contains $(( 2 * 1024 )), which kvmctl does not run)');
    expect(r.vm.extraArgs).toEqual(['-m', '$(( 2 * 1024 ))', '-hda', '$(touch /tmp/kvmctl-import-marker; echo disk.img)']);
    expect(r.vm.nics).toEqual([]); // -nic none
  });
});

describe('import: option mapping details', () => {
  const imp = (line: string) => importCommandLine(`qemu-system-x86_64 -name t -machine q35,accel=kvm -cpu host -m 1G -display none ${line}`);

  it.each([
    ['-smp 8,sockets=2', { cpu: { model: 'host', count: 8, sockets: 2, cores: 4 } }],
    ['-smp sockets=2,cores=2,threads=2', { cpu: { model: 'host', count: 8, sockets: 2, cores: 2, threads: 2 } }],
    ['-m 4096', { memory: '4G' }],
    ['-m size=1536M', { memory: '1536M' }],
    ['-monitor telnet:127.0.0.1:10100,server,nowait', { monitor: { telnet: '127.0.0.1:10100' } }],
    ['-chardev socket,id=m,host=127.0.0.1,port=4444,telnet=on,server=on,wait=off -mon chardev=m', { monitor: { telnet: '127.0.0.1:4444' } }],
    ['-monitor stdio', { monitor: true }],
    ['-display curses', { display: { type: 'curses' } }],
    ['-vnc unix:/run/v.sock', { display: { type: 'vnc', vnc: { socket: '/run/v.sock' } } }],
    ['-display vnc=:3', { display: { type: 'vnc', vnc: { listen: ':3' } } }],
    ['-drive file=a.iso,media=cdrom -boot order=dc,once=d,menu=on -hda b.img', { cdroms: [{ file: 'a.iso' }], boot: { order: ['cdrom', 'disk'], once: 'cdrom', menu: true } }],
    ['-drive file=a.img,if=ide,bus=1,unit=0,readonly=on,discard=on', { disks: [{ file: 'a.img', interface: 'ide', index: 2, discard: 'unmap', readOnly: true }] }],
    ['-netdev bridge,id=n0,br=br0 -device virtio-net-pci,netdev=n0', { nics: [{ id: 'n0', network: 'br0', model: 'virtio' }] }],
    ['-nic tap,ifname=tap0,script=no,model=e1000e,mac=52:54:00:00:00:09', { nics: [{ tap: 'tap0', model: 'e1000e', mac: '52:54:00:00:00:09', vhost: 'off' }] }],
    ['-nic user', { nics: [{ user: true, model: 'e1000e' }] }],
    ['-net nic,model=virtio,macaddr=52:54:00:00:00:01 -net tap,ifname=tap3,script=no,downscript=no', { nics: [{ tap: 'tap3', model: 'virtio', mac: '52:54:00:00:00:01', vhost: 'off' }] }],
    ['-object rng-builtin,id=r0 -device virtio-rng-pci,rng=r0', { rng: true }],
    ['-device virtio-rng-pci', { rng: true }],
    ['-run-with user=kvm,', { runAs: 'kvm' }],
    ['-run-with user=qemu:kvm', { runAs: { user: 'qemu', group: 'kvm' } }],
    ['-machine mem-merge=off', { machine: { type: 'q35', accel: ['kvm'], memMerge: false } }],
    ['-fsdev local,id=f,path=/srv/x,security_model=passthrough,readonly=on -device virtio-9p-pci,fsdev=f,mount_tag=x', { shares: [{ id: 'f', path: '/srv/x', tag: 'x', securityModel: 'passthrough', readOnly: true }] }],
    ['-nodefaults', { serial: 'none', nics: [] }],
    ['-nographic', { display: { type: 'none' }, monitor: true }],
    ['-no-kvm -curses', { display: { type: 'curses' } }],
    ['-some-new-flag -m 2G', { memory: '2G', extraArgs: ['-some-new-flag'] }],
  ])('%s', (line, want) => {
    const r = imp(line);
    expect(r.vm).toMatchObject(want);
  });

  it.each([
    ['-drive file=a.img,if=virtio,werror=stop', '-drive file=a.img,if=virtio,werror=stop: kept in extraArgs (drive properties werror=stop have no field in the definition)'],
    ['-netdev tap,id=n0,script=/etc/qemu-ifup -device e1000,netdev=n0', 'script=/etc/qemu-ifup: kvmctl never runs tap scripts'],
    ['-netdev tap,id=n0,fd=5 -device virtio-net-pci,netdev=n0', 'fd=5 is opened by whatever starts QEMU, not by this script'],
    ['-netdev socket,id=n0,listen=:1234 -device e1000,netdev=n0', 'socket networking has no field in the definition'],
    ['-device virtio-net-pci,netdev=n0,romfile= -netdev user,id=n0', 'device properties romfile= have no field in the definition'],
    ['-drive file=fw.fd,if=pflash,format=raw', 'if=pflash has no field in the definition'],
    ['-append quiet', '-append quiet: kept in extraArgs (-append without -kernel)'],
    ['-serial stdio -serial pty', '-serial pty: kept in extraArgs (kvmctl keeps one serial port)'],
    ['-m 1G,slots=2,maxmem=8G', '-m slots=2,maxmem=8G: kept in extraArgs'],
    ['-run-with user=kvm,chroot=/srv', '-run-with user=kvm,chroot=/srv: kept in extraArgs'],
    ['-netdev user,id=u,hostfwd=tcp::80-10.0.2.20:80 -device e1000,netdev=u', 'a guest address has no field in the definition'],
  ])('%s → extraArgs with a warning', (line, msg) => {
    const r = imp(line);
    expect(warnings(r).join('\n')).toContain(msg);
    expect((r.vm.extraArgs as string[]).length).toBeGreaterThan(0);
  });

  it('keeps a device and its backend together in extraArgs, in the script\'s order', () => {
    const r = imp('-netdev socket,id=n0,listen=:1234 -device e1000,netdev=n0 -usb');
    expect(r.vm.extraArgs).toEqual(['-netdev', 'socket,id=n0,listen=:1234', '-device', 'e1000,netdev=n0', '-usb']);
    expect(r.vm.nics).toEqual([]);
  });

  it('drops -daemonize, -pidfile, -nodefaults with a note each, never silently', () => {
    const r = imp('-daemonize -pidfile /run/t.pid -no-user-config');
    expect(r.vm.extraArgs).toBeUndefined();
    expect(notes(r).filter((n) => /daemonize|pidfile|no-user-config/.test(n))).toHaveLength(3);
  });

  it('renames clashing default ids so the definition validates', () => {
    const r = imp('-nic user -netdev user,id=net0 -device e1000,netdev=net0');
    expect((r.vm.nics as { id?: string }[]).map((n) => n.id)).toEqual([undefined, 'net1']);
  });

  it('rejects a script without a QEMU command and a command without a name (exit 2)', () => {
    expect(() => importCommandLine('echo hello\n')).toThrow(expect.objectContaining({ code: 'NO_QEMU_COMMAND', exit: 2 }));
    expect(() => importCommandLine('qemu-system-x86_64 -m 1G\n')).toThrow(expect.objectContaining({ code: 'NAME_REQUIRED', exit: 2 }));
    expect(importCommandLine('qemu-system-x86_64 -m 1G\n', { name: 'x' }).name).toBe('x');
    expect(importCommandLine('kvm -m 1G\n', { source: '/tmp/my vm.sh' }).name).toBe('my_vm');
  });

  it('finds QEMU behind exec/sudo/taskset wrappers and says what it skipped', () => {
    const r = importCommandLine('sudo -u kvm taskset -c 0-3 /usr/bin/qemu-system-x86_64 -name w -m 1G\n');
    expect(r.name).toBe('w');
    expect(notes(r).join('\n')).toMatch(/"sudo -u kvm taskset -c 0-3" before QEMU is not imported/);
  });
});

describe('import: YAML out and saving', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvi-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes readable YAML that validates back to the same definitions, warnings as comments', () => {
    const r = importFile('seed-macvtap.sh');
    const text = importYaml(r, 'seed-macvtap.sh');
    expect(text.split('\n')[0]).toBe('# Imported by `kvmctl import cmdline` from seed-macvtap.sh (line 12): VM "seed-macvtap" and network "macvtap0".');
    expect(text).toMatch(/^# Warnings:\n(#   - .*\n)+# Notes:/m);
    expect(text).toContain('vhost: "on"');
    const docs = parseDefinitions(text);
    expect(docs.map((d) => [d.kind, d.issues])).toEqual([['network', []], ['vm', []]]);
    expect(docs[1]!.spec).toEqual(r.spec);
    expect(docs[0]!.spec).toEqual(r.networkSpecs[0]);
  });

  it('saves into the config dir, refuses to overwrite without --force, keeps an existing network', () => {
    const paths = resolvePaths({ KVMCTL_HOME: path.join(tmp, 'home') });
    const r = importFile('seed-macvtap.sh');
    const s1 = saveImport(paths, r, { source: 'seed-macvtap.sh' });
    expect(s1.files).toEqual([path.join(paths.netDefs, 'macvtap0.yaml'), path.join(paths.vmDefs, 'seed-macvtap.yaml')]);
    expect(s1.missingNetworks).toEqual([]);
    const before = fs.readFileSync(s1.files[1]!, 'utf8');
    expect(() => saveImport(paths, r, { source: 'x' })).toThrow(expect.objectContaining({ code: 'VM_EXISTS', exit: 2 }));
    expect(fs.readFileSync(s1.files[1]!, 'utf8')).toBe(before);
    const other = importFile('seed-macvtap.sh', { name: 'second' });
    const s2 = saveImport(paths, other, { source: 'seed-macvtap.sh' });
    expect(s2.skipped.map((x) => x.name)).toEqual(['macvtap0']);
    expect(s2.files).toEqual([path.join(paths.vmDefs, 'second.yaml')]);
    const s3 = saveImport(paths, r, { source: 'seed-macvtap.sh', force: true });
    expect(s3.files).toHaveLength(2);
  });

  it('-o FILE: one multi-document file, not replaced without --force', () => {
    const out = path.join(tmp, 'out.yaml');
    const r = importFile('seed-exam_vm.sh');
    saveImport(resolvePaths({ KVMCTL_HOME: path.join(tmp, 'h2') }), r, { source: 's', out });
    expect(parseDefinitions(fs.readFileSync(out, 'utf8'))[0]!.spec).toEqual(r.spec);
    expect(() => saveImport(resolvePaths({ KVMCTL_HOME: path.join(tmp, 'h2') }), r, { source: 's', out })).toThrow(expect.objectContaining({ code: 'FILE_EXISTS' }));
    expect(fs.existsSync(path.join(tmp, 'h2'))).toBe(false);
  });
});

// The CLI end to end needs the compiled CLI (scripts/setup.sh builds it before the tests run).
const built = fs.existsSync(path.join(ROOT, 'dist/cli/commands/import.js'));
describe.skipIf(!built)('kvmctl import cmdline (compiled CLI)', () => {
  const home = makeHome();
  afterAll(() => home.cleanup());

  it('imports the seed from stdin into the config dir; cmdline then shows the seed options; a second import is refused', async () => {
    const script = fs.readFileSync(fixture('seed-exam_vm.sh'), 'utf8');
    // The seed's monitor socket and share are under /home/kvm-admin: outside the roots, nothing is imported
    const refused = await home.cli(['import', 'cmdline', '-'], { input: script });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('PATH_OUTSIDE_ROOTS');
    expect(refused.stderr).toMatch(/monitor\.socket: .*\/home\/kvm-admin\/monitor_socket\/exam_vm\.sock/);
    expect(refused.stderr).toContain('kvmctl storage add /home/kvm-admin/share_dir');
    expect(fs.existsSync(path.join(home.dir, 'config/vms/exam_vm.yaml'))).toBe(false);
    // the operator made /home/kvm-admin a root (host.json, as kvmctl storage add writes it)
    fs.mkdirSync(path.join(home.dir, 'config'), { recursive: true });
    fs.writeFileSync(path.join(home.dir, 'config/host.json'), JSON.stringify({ storage: { roots: ['/home/kvm-admin'] } }));
    const r = await home.cli(['import', 'cmdline', '-'], { input: script });
    expect(r.stderr).toContain('note: <stdin>:16: -daemonize: kvmctl always runs QEMU detached');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('imported VM "exam_vm" from <stdin>');
    expect(fs.existsSync(path.join(home.dir, 'config/vms/exam_vm.yaml'))).toBe(true);
    const cmd = await home.cli(['cmdline', 'exam_vm']);
    expect(cmd.code).toBe(0);
    for (const x of ['-name exam_vm', 'tap,id=net0,ifname=tap0', 'virtio-net-pci,netdev=net1,mac=52:54:00:87:92:32', '-monitor unix:/home/kvm-admin/monitor_socket/exam_vm.sock,server=on,wait=off', 'virtio-9p-pci,fsdev=share,mount_tag=host_share', '-smp 8', '-m 4G']) {
      expect(cmd.stdout, x).toContain(x);
    }
    const again = await home.cli(['import', 'cmdline', '-'], { input: script });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('VM_EXISTS');
    const j = await home.cli(['--json', 'import', 'cmdline', fixture('quickemu-style.sh'), '-o', '-']);
    expect(j.code).toBe(0);
    const out = JSON.parse(j.stdout);
    expect(out.name).toBe('debian-12');
    expect(out.warnings.filter((w: { level: string }) => w.level === 'warning').length).toBeGreaterThanOrEqual(7);
    expect(j.stderr).toContain('warning: ');
  });
});

describe.skipIf(!built)('kvmctl net import netifrc (compiled CLI)', () => {
  const home = makeHome();
  afterAll(() => home.cleanup());
  it('the STP clamp warning names FILE:LINE; the YAML it writes applies', async () => {
    const file = path.join(ROOT, 'test/fixtures/net/stp-forward-delay-0.conf.d-net');
    const out = path.join(home.dir, 'net.yaml');
    const r = await home.cli(['net', 'import', 'netifrc', file, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: ${file}:6: bridge_forward_delay_br0="0"`);
    const v = await home.cli(['validate', out]);
    expect(v.code, v.stderr).toBe(0);
  });
});
