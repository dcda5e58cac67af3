/**
 * The fast-boot profile in the pure argv builder: microvm with virtio-mmio devices when the
 * definition fits, q35 + qboot + -no-reboot when it does not, and the standard profile unchanged.
 */
import { describe, expect, it } from 'vitest';
import { buildArgv, microvmBlockers, type ArgvContext } from '../../../src/qemu/argv.js';
import { KVM_HOST_FACTS, TCG_HOST_FACTS } from '../../../src/host/facts.js';
import type { NicAttachment } from '../../../src/qemu/attachments.js';
import { vmSchema, type VmInput } from '../../../src/definition/vm.js';

const rt = '/run/kvmctl/vms/f';
const ctx = (attachments: NicAttachment[] = [], kernel = true): ArgvContext => ({
  runtime: { dir: rt, qmp: `${rt}/qmp.sock`, serial: `${rt}/serial.sock`, serialLog: `${rt}/serial.log`, pidfile: `${rt}/qemu.pid`, vnc: `${rt}/vnc.sock` },
  imagesDir: '/var/lib/kvmctl/images',
  attachments,
  kernel: kernel ? { path: '/g/vmlinux', initrd: '/g/initrd.img', append: 'console=ttyS0' } : undefined,
});
/** This machine's kind: TCG, and the host TSC rate known (a TCG guest's TSC is the host's). */
const TCG = { ...TCG_HOST_FACTS, tscKhz: 2596142 };
const vm = (extra: Partial<VmInput> = {}) => vmSchema.parse({ name: 'f', memory: '256M', kernel: { builtin: 'test-guest' }, ...extra });
/** The value after each occurrence of `flag`. */
const values = (argv: string[], flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

describe('profile: fast', () => {
  it('defaults to standard, and standard output has no microvm, qboot or -no-reboot', () => {
    const spec = vm();
    expect(spec.profile).toBe('standard');
    const { argv, warnings } = buildArgv(spec, TCG, ctx());
    expect(values(argv, '-machine')[0]).toBe('type=q35,accel=tcg');
    expect(argv).not.toContain('-no-reboot');
    expect(argv).not.toContain('-bios');
    expect(values(argv, '-device')).toContain('virtio-rng-pci,rng=rng0');
    expect(warnings.join('\n')).not.toMatch(/profile fast/);
  });

  it('a fitting direct-kernel guest gets microvm with virtio-mmio devices for rng, net, blk and 9p', () => {
    const spec = vm({
      profile: 'fast',
      disks: [{ file: 'data.qcow2' }],
      nics: [{ user: true }, { network: 'lan', mac: '52:54:00:00:00:02' }],
      shares: [{ path: '/srv/share', tag: 'share' }],
    });
    const { argv, warnings } = buildArgv(spec, TCG, ctx([{ kind: 'user', forwards: [] }, { kind: 'tap', ifname: 'kvt-tap1', vhost: true }]));
    expect(values(argv, '-machine')).toEqual(['type=microvm,accel=tcg,x-option-roms=off']);
    expect(argv).toContain('-no-reboot');
    expect(argv).toContain('-nodefaults');
    expect(argv).not.toContain('-bios');
    const devices = values(argv, '-device');
    expect(devices).toContain('virtio-rng-device,rng=rng0');
    expect(devices).toContain('virtio-blk-device,drive=disk0');
    expect(devices.filter((d) => d.startsWith('virtio-net-device,netdev='))).toHaveLength(2);
    expect(devices).toContain('virtio-9p-device,fsdev=fs0,mount_tag=share');
    expect(devices.filter((d) => /-pci\b|VGA/.test(d))).toEqual([]);
    // The disk is a drive without a bus of its own (if=virtio would ask for a PCI device).
    expect(values(argv, '-drive')).toEqual(['file=/var/lib/kvmctl/images/data.qcow2,format=qcow2,if=none,id=disk0']);
    expect(values(argv, '-netdev')[1]).toBe('tap,id=net1,ifname=kvt-tap1,vhost=off,script=no,downscript=no');
    expect(values(argv, '-kernel')).toEqual(['/g/vmlinux']);
    // Under TCG the kernel is told the TSC rate: microvm has no HPET/PM timer to calibrate against.
    // …and skips the crypto self-tests (FAST_KERNEL_ARGS: ~165 ms of a TCG boot, BENCHMARKS.md #19).
    expect(values(argv, '-append')).toEqual(['console=ttyS0 tsc_early_khz=2596142 cryptomgr.notests']);
    expect(warnings.find((w) => w.startsWith('profile fast: microvm'))).toMatch(/no PCI.*no VGA.*no CD-ROMs.*-no-reboot/);
  });

  it('on a KVM host with vhost-net the microvm NIC keeps vhost and accel=kvm', () => {
    const spec = vm({ profile: 'fast', nics: [{ network: 'lan' }] });
    const { argv } = buildArgv(spec, KVM_HOST_FACTS, ctx([{ kind: 'tap', ifname: 't0', vhost: true }]));
    expect(values(argv, '-machine')).toEqual(['type=microvm,accel=kvm,x-option-roms=off']);
    expect(values(argv, '-netdev')[0]).toContain('vhost=on');
    expect(values(argv, '-device').filter((d) => /^virtio-net-device,netdev=net0,mac=[0-9a-f:]{17},id=net0-dev$/.test(d))).toHaveLength(1);
  });

  it('under TCG with an unknown TSC rate it stays on q35 + qboot (a loaded host would hang in TSC calibration)', () => {
    const { argv, warnings } = buildArgv(vm({ profile: 'fast' }), TCG_HOST_FACTS, ctx());
    expect(values(argv, '-machine')).toEqual(['type=q35,accel=tcg']);
    expect(values(argv, '-bios')).toEqual(['qboot.rom']);
    expect(values(argv, '-append')).toEqual(['console=ttyS0 cryptomgr.notests']);
    expect(warnings.join('\n')).toMatch(/TSC rate.*unknown/);
    // A rate given in the definition's own append is enough, and is not given twice.
    const c = ctx();
    c.kernel!.append = 'console=ttyS0 tsc_early_khz=3000000';
    const own = buildArgv(vm({ profile: 'fast' }), TCG, c);
    expect(values(own.argv, '-machine')[0]).toMatch(/^type=microvm/);
    expect(values(own.argv, '-append')).toEqual(['console=ttyS0 tsc_early_khz=3000000 cryptomgr.notests']);
  });

  it('adds cryptomgr.notests only for the fast profile, and not twice', () => {
    const c = ctx();
    c.kernel!.append = 'console=ttyS0 cryptomgr.notests';
    expect(values(buildArgv(vm({ profile: 'fast' }), KVM_HOST_FACTS, c).argv, '-append')).toEqual(['console=ttyS0 cryptomgr.notests']);
    expect(values(buildArgv(vm({ profile: 'standard' }), TCG, ctx()).argv, '-append')).toEqual(['console=ttyS0']);
  });

  it('under KVM no TSC rate is added (kvm-clock gives it)', () => {
    const { argv } = buildArgv(vm({ profile: 'fast' }), KVM_HOST_FACTS, ctx());
    expect(values(argv, '-append')).toEqual(['console=ttyS0 cryptomgr.notests']);
  });

  it('a cloud-init seed becomes a virtio-blk-device on microvm', () => {
    const c = { ...ctx(), seed: '/run/kvmctl/vms/f/seed.iso' };
    const { argv } = buildArgv(vm({ profile: 'fast' }), TCG, c);
    expect(values(argv, '-drive')).toEqual(['file=/run/kvmctl/vms/f/seed.iso,format=raw,if=none,readonly=on,id=cidata']);
    expect(values(argv, '-device')).toContain('virtio-blk-device,drive=cidata');
  });

  it('virtio-scsi disks become virtio-scsi-device; memMerge=false still reaches the machine', () => {
    const spec = vm({ profile: 'fast', machine: { memMerge: false }, disks: [{ file: '/d/a.raw', interface: 'scsi' }] });
    const { argv } = buildArgv(spec, TCG, ctx());
    expect(values(argv, '-machine')).toEqual(['type=microvm,accel=tcg,mem-merge=off,x-option-roms=off']);
    expect(values(argv, '-device')).toContain('virtio-scsi-device,id=scsi0');
    expect(values(argv, '-device')).toContain('scsi-hd,drive=disk0,bus=scsi0.0');
  });

  it('a guest that does not fit stays on q35 with qboot and -no-reboot, and says why', () => {
    const spec = vm({ profile: 'fast', cdroms: ['/iso/x.iso'], nics: [{ user: true, model: 'e1000' }] });
    const { argv, warnings } = buildArgv(spec, TCG, ctx([{ kind: 'user', forwards: [] }]));
    expect(values(argv, '-machine')).toEqual(['type=q35,accel=tcg']);
    expect(values(argv, '-bios')).toEqual(['qboot.rom']);
    expect(argv).toContain('-no-reboot');
    expect(values(argv, '-device')).toContain('virtio-rng-pci,rng=rng0');
    const w = warnings.find((x) => x.startsWith('profile fast: staying on q35'));
    expect(w).toMatch(/CD-ROMs/);
    expect(w).toMatch(/nics\[0\] is a e1000/);
  });

  it('without direct kernel boot: q35, no qboot (it cannot boot disks), -no-reboot only', () => {
    const spec = vm({ profile: 'fast', kernel: undefined, disks: [{ file: '/d/root.qcow2' }] });
    const { argv, warnings } = buildArgv(spec, TCG, ctx([], false));
    expect(values(argv, '-machine')).toEqual(['type=q35,accel=tcg']);
    expect(argv).not.toContain('-bios');
    expect(argv).toContain('-no-reboot');
    expect(warnings.join('\n')).toMatch(/direct kernel boot/);
  });

  it('a VGA display keeps q35 and its SeaBIOS', () => {
    const spec = vm({ profile: 'fast', display: 'vnc' });
    const { argv, warnings } = buildArgv(spec, TCG, ctx());
    expect(values(argv, '-machine')).toEqual(['type=q35,accel=tcg']);
    expect(argv).not.toContain('-bios');
    expect(values(argv, '-device')).toContain('VGA');
    expect(warnings.join('\n')).toMatch(/display vnc needs a VGA card/);
  });

  it('a QEMU without microvm falls back to q35 + qboot', () => {
    const facts = { ...TCG, machines: ['q35', 'pc'] };
    const { argv, warnings } = buildArgv(vm({ profile: 'fast' }), facts, ctx());
    expect(values(argv, '-machine')).toEqual(['type=q35,accel=tcg']);
    expect(values(argv, '-bios')).toEqual(['qboot.rom']);
    expect(warnings.join('\n')).toMatch(/has no microvm machine/);
  });

  it('machine: microvm by name gets mmio devices (any profile) and refuses devices it cannot hold', () => {
    const ok = buildArgv(vm({ machine: 'microvm' }), TCG, ctx());
    expect(values(ok.argv, '-machine')).toEqual(['type=microvm,accel=tcg']);
    expect(values(ok.argv, '-device')).toContain('virtio-rng-device,rng=rng0');
    expect(ok.argv).not.toContain('-no-reboot'); // only the fast profile adds it
    let err: unknown;
    try {
      buildArgv(vm({ machine: 'microvm', disks: [{ file: '/d/a.img', interface: 'ide' }] }), TCG, ctx());
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'MICROVM_UNFIT', exit: 2 });
    expect((err as Error).message).toMatch(/disks\[0\] uses interface ide/);
  });

  it('microvmBlockers lists every reason at once', () => {
    const spec = vm({ kernel: undefined, disks: [{ file: 'a', interface: 'nvme' }], cdroms: ['b.iso'], display: 'curses', boot: 'disk' });
    expect(microvmBlockers(spec, false)).toHaveLength(4);
    expect(microvmBlockers(vm(), true)).toEqual([]);
  });

  it('the schema rejects an unknown profile with its path', () => {
    const r = vmSchema.safeParse({ name: 'f', profile: 'turbo' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['profile']);
  });
});

describe('tscKhz (host probe)', () => {
  it('reads "cpu MHz" only when the TSC is constant', async () => {
    const { tscKhz } = await import('../../../src/host/probe.js');
    expect(tscKhz('flags\t\t: fpu tsc constant_tsc nonstop_tsc\ncpu MHz\t\t: 2596.142\n')).toBe(2596142);
    expect(tscKhz('flags\t\t: fpu tsc\ncpu MHz\t\t: 2596.142\n')).toBeUndefined();
    expect(tscKhz('')).toBeUndefined();
  });
});
