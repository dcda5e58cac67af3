/**
 * Golden tests of the pure argv builder: the seed's exam_vm (examples/exam_vm.yaml) gives the
 * seed's own options on a KVM host with vhost-net, and the TCG / no-vhost variant here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArgv, type ArgvContext } from '../../../src/qemu/argv.js';
import { KVM_HOST_FACTS, TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import type { VmSpec } from '../../../src/definition/vm.js';

const root = path.resolve(__dirname, '../../..');
const golden = (name: string) => path.join(root, 'test/fixtures/golden', name);

function examVm(): VmSpec {
  const docs = parseDefinitions(fs.readFileSync(path.join(root, 'examples/exam_vm.yaml'), 'utf8'), 'exam_vm.yaml');
  const vm = docs.find((d) => d.kind === 'vm');
  expect(vm?.issues).toEqual([]);
  return vm!.spec as VmSpec;
}

const ctx = (vhost: boolean): ArgvContext => ({
  runtime: {
    dir: '/run/kvmctl/vms/exam_vm',
    qmp: '/run/kvmctl/vms/exam_vm/qmp.sock',
    serial: '/run/kvmctl/vms/exam_vm/serial.sock',
    serialLog: '/run/kvmctl/vms/exam_vm/serial.log',
    pidfile: '/run/kvmctl/vms/exam_vm/qemu.pid',
    vnc: '/run/kvmctl/vms/exam_vm/vnc.sock',
    qmpEvents: '/run/kvmctl/vms/exam_vm/qmp-events.sock',
  },
  imagesDir: '/var/lib/kvmctl/images',
  attachments: [
    { kind: 'tap', ifname: 'tap0', vhost },
    { kind: 'tap', ifname: 'tap_local0', vhost },
  ],
});

/**
 * The seed's launch line (§6 of the operator's notes), kept verbatim in the repository as
 * test/fixtures/import/seed-exam_vm.sh (a user's clone has no team notes beside it; the fixture notes its source).
 */
function seedArgv(): string[] {
  const script = fs.readFileSync(path.join(root, 'test/fixtures/import/seed-exam_vm.sh'), 'utf8');
  const block = /(\/usr\/bin\/qemu-system-x86_64[\s\S]*)/.exec(script)![1]!;
  return block.replace(/\\\n/g, ' ').split(/\s+/).filter(Boolean).map((t) => t.replace(/^"(.*)"$/, '$1'));
}

/** Split `-opt value` pairs; options with values parsed into key→value maps. */
function options(argv: string[]): { flag: string; value?: string }[] {
  const out: { flag: string; value?: string }[] = [];
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i]!;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('-')) {
      out.push({ flag, value: next });
      i++;
    } else out.push({ flag });
  }
  return out;
}

const ALIASES: Record<string, string> = { 'virtio-net': 'virtio-net-pci', driver: 'format', server: 'server=on', nowait: 'wait=off' };
function optMap(value: string): Map<string, string> {
  const m = new Map<string, string>();
  value.split(',').forEach((part, i) => {
    const norm = ALIASES[part] ?? part;
    const eq = norm.indexOf('=');
    if (eq < 0) m.set(i === 0 ? '_' : norm, i === 0 ? norm : 'on');
    else {
      const k = ALIASES[norm.slice(0, eq)] ?? norm.slice(0, eq);
      // Files that kvmctl places itself (images dir, monitor dir) are compared by name only.
      const v = k === 'file' || k === '_' && norm.startsWith('unix:') ? path.basename(norm.slice(eq + 1)) : norm.slice(eq + 1);
      m.set(k, v);
    }
  });
  return m;
}

function covers(ours: { flag: string; value?: string }[], seed: { flag: string; value?: string }): boolean {
  return ours.some((o) => {
    if (o.flag !== seed.flag) return false;
    if (seed.value === undefined) return true;
    if (o.value === undefined) return false;
    if (seed.flag === '-monitor') {
      const [s, o2] = [seed.value, o.value].map((v) => v.replace(/,server(,|$)/, ',server=on$1').replace(/,nowait/, ',wait=off'));
      return o2 === s;
    }
    const want = optMap(seed.value);
    const got = optMap(o.value);
    return [...want].every(([k, v]) => (k === 'file' ? path.basename(got.get(k) ?? '') === path.basename(v) : got.get(k) === v));
  });
}

describe('buildArgv golden: the seed exam_vm', () => {
  it('on a KVM host with vhost-net carries every option and value of the seed line', () => {
    const r = buildArgv(examVm(), KVM_HOST_FACTS, ctx(true));
    const ours = options(r.argv);
    const seed = options(seedArgv());
    // kvmctl detaches QEMU itself (own session + -pidfile), so -daemonize is the one seed option it drops.
    const missing = seed.filter((s) => s.flag !== '-daemonize' && !covers(ours, s));
    expect(missing).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.accel).toBe('kvm');
    expect(r.argv).toEqual(fs.readFileSync(golden('exam_vm.kvm.argv'), 'utf8').trim().split('\n'));
  });

  it('on this machine (no KVM, no vhost-net) falls back to TCG, -cpu max and vhost=off, with one warning each', () => {
    const r = buildArgv(examVm(), TCG_HOST_FACTS, ctx(false));
    expect(r.accel).toBe('tcg');
    expect(r.argv).toContain('type=q35,accel=tcg');
    expect(r.argv[r.argv.indexOf('-cpu') + 1]).toBe('max');
    expect(r.argv.filter((a) => a.startsWith('tap,')).every((a) => a.includes('vhost=off'))).toBe(true);
    expect(r.warnings).toHaveLength(3);
    expect(r.warnings[0]).toMatch(/KVM is not usable.*TCG/);
    expect(r.warnings[1]).toMatch(/CPU model "host" needs KVM/);
    expect(r.warnings[2]).toMatch(/vhost-net is missing: vhost turned off for net0, net1/);
    expect(r.argv).toEqual(fs.readFileSync(golden('exam_vm.tcg.argv'), 'utf8').trim().split('\n'));
  });
});

describe('buildArgv details', () => {
  const base = (extra: Record<string, unknown>): VmSpec => {
    const d = parseDefinitions(JSON.stringify({ name: 't', ...extra }))[0]!;
    expect(d.issues).toEqual([]);
    return d.spec as VmSpec;
  };
  const c = { ...ctx(false), attachments: [] };

  it('escapes commas in values the way QEMU expects', () => {
    const r = buildArgv(base({ disks: [{ file: '/srv/a,b.img' }] }), KVM_HOST_FACTS, c);
    expect(r.argv).toContain('file=/srv/a,,b.img,format=raw,if=virtio,media=disk,id=disk0');
  });

  it('passes a macvtap fd and forces the macvtap MAC', () => {
    const r = buildArgv(base({ nics: [{ network: 'mv', mac: '52:54:00:00:00:01' }] }), KVM_HOST_FACTS, {
      ...c,
      attachments: [{ kind: 'fd', fd: 3, vhost: true, mac: '52:54:00:aa:bb:cc' }],
    });
    expect(r.argv).toContain('tap,id=net0,fd=3,vhost=on');
    expect(r.argv).toContain('virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,id=net0-dev');
  });

  it('user networking with port forwards', () => {
    const r = buildArgv(base({ nics: [{ user: { forwards: [{ hostPort: 2222, guestPort: 22, hostAddr: '127.0.0.1' }] } }] }), TCG_HOST_FACTS, {
      ...c,
      attachments: [{ kind: 'user', forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 2222, guestPort: 22 }] }],
    });
    expect(r.argv).toContain('user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22');
  });

  it('memory, topology, mem-merge, boot once, read-only share, vnc, runAs, sandbox', () => {
    const vm = base({
      memory: '1536M',
      machine: { type: 'q35', memMerge: false },
      cpu: { count: 4, sockets: 1, cores: 2, threads: 2 },
      cdroms: ['install.iso'],
      disks: [{ file: 'd.qcow2' }],
      boot: { order: ['disk'], once: 'cdrom' },
      shares: [{ path: '/srv/s', tag: 'ro', readOnly: true }],
      display: 'vnc',
      runAs: 'kvm-admin',
    });
    const r = buildArgv(vm, KVM_HOST_FACTS, { ...c, bootOnce: true });
    const at = (flag: string) => r.argv[r.argv.indexOf(flag) + 1];
    expect(at('-m')).toBe('1536M');
    expect(at('-smp')).toBe('4,sockets=1,cores=2,threads=2');
    expect(at('-machine')).toBe('type=q35,accel=kvm,mem-merge=off');
    expect(at('-boot')).toBe('order=c,once=d');
    expect(r.argv).toContain('file=/var/lib/kvmctl/images/install.iso,if=ide,media=cdrom,readonly=on,id=cd0');
    expect(r.argv).toContain('file=/var/lib/kvmctl/images/d.qcow2,format=qcow2,if=virtio,media=disk,id=disk0');
    expect(r.argv).toContain('local,id=fs0,path=/srv/s,security_model=mapped-xattr,readonly=on');
    expect(at('-vnc')).toBe('unix:/run/kvmctl/vms/exam_vm/vnc.sock');
    expect(at('-runas')).toBe('kvm-admin');
    expect(at('-sandbox')).toBe('on,obsolete=deny,spawn=deny,resourcecontrol=deny');
  });

  it('refuses a machine type QEMU does not know, naming the known ones', () => {
    expect(() => buildArgv(base({ machine: 'q53' }), KVM_HOST_FACTS, c)).toThrow(/machine type "q53" is not known/);
  });

  it('uses -run-with on QEMUs that have it', () => {
    const r = buildArgv(base({ runAs: { user: 'kvm-admin', group: 'kvm' } }), { ...KVM_HOST_FACTS, runAs: 'run-with' }, c);
    expect(r.argv[r.argv.indexOf('-run-with') + 1]).toBe('user=kvm-admin:kvm');
  });

  it('spare PCIe root ports for hotplug: 4 on q35 by default, machine.hotplugSlots to change, none on pc/microvm/fast', () => {
    const ports = (argv: string[]) => argv.filter((x) => x.startsWith('pcie-root-port,'));
    const q35 = buildArgv(base({}), KVM_HOST_FACTS, c).argv;
    expect(ports(q35)).toEqual([0, 1, 2, 3].map((i) => `pcie-root-port,id=kvhp${i},chassis=${i + 1},port=0x${(16 + i).toString(16)}`));
    // Last among the devices: the definition's own devices keep the PCI slots they had without them.
    const after = q35.slice(q35.indexOf(ports(q35)[0]!) - 1);
    expect(after.flatMap((x, i) => (x === '-device' ? [after[i + 1]] : []))).toEqual(ports(q35));
    expect(ports(buildArgv(base({ machine: { type: 'q35', hotplugSlots: 2 } }), KVM_HOST_FACTS, c).argv)).toHaveLength(2);
    expect(ports(buildArgv(base({ machine: { type: 'q35', hotplugSlots: 0 } }), KVM_HOST_FACTS, c).argv)).toHaveLength(0);
    expect(ports(buildArgv(base({ machine: 'pc' }), KVM_HOST_FACTS, c).argv)).toHaveLength(0);
    const kernel = { ...c, kernel: { path: '/k' } };
    expect(ports(buildArgv(base({ profile: 'fast', display: 'none' }), TCG_HOST_FACTS, kernel).argv)).toHaveLength(0); // microvm
    // Asked for on the fast profile: microvm cannot, so it stays on q35 with them (and says why).
    const fast = buildArgv(base({ profile: 'fast', display: 'none', machine: { type: 'q35', hotplugSlots: 1 } }), TCG_HOST_FACTS, kernel);
    expect(ports(fast.argv)).toHaveLength(1);
    expect(fast.warnings.join('\n')).toMatch(/staying on q35.*hotplug slots/);
    for (const m of ['pc', 'microvm']) {
      const d = parseDefinitions(JSON.stringify({ name: 't', machine: { type: m, hotplugSlots: 2 } }))[0]!;
      expect(d.issues.map((i) => i.path)).toEqual(['machine.hotplugSlots']);
    }
    expect(parseDefinitions(JSON.stringify({ name: 't', machine: { hotplugSlots: 17 } }))[0]!.issues.map((i) => i.path)).toEqual(['machine.hotplugSlots']);
  });
});
