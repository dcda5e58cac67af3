/**
 * Property-based tests (fast-check, seeded: KVT_SEED) over the two parsers that take untrusted
 * text: the definition schema (src/definition/load.ts parseDefinitions) and the launch-line importer
 * (src/qemu/import.ts importCommandLine). Properties: never a crash (nothing thrown but a
 * KvmError), never an unexplained error (every issue has a path and a message that says more than
 * zod's bare "Invalid input"), and a definition that validates also builds an argv.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { KvmError, type ErrorIssue } from '../../src/errors.js';
import { TCG_HOST_FACTS } from '../../src/host/facts.js';
import { buildArgv } from '../../src/qemu/argv.js';
import { importCommandLine } from '../../src/qemu/import.js';
import { parseDefinitions } from '../../src/definition/load.js';
import type { VmSpec } from '../../src/definition/vm.js';
import { ROOT } from '../helpers/kvmctl.js';
import { SEED, writeReport } from './lib.js';

const RUNS = 500;
const stats = { definitions: 0, definitionsValid: 0, argvBuilt: 0, issues: 0, imports: 0, importsRefused: 0, importNotes: 0 };

/** Every issue explained: a path, and a message that is more than zod's default. */
function unexplained(issues: readonly ErrorIssue[]): ErrorIssue[] {
  return issues.filter((i) => typeof i.path !== 'string' || i.path === '' || typeof i.message !== 'string' || i.message.trim() === '' || /^Invalid input$/i.test(i.message.trim()));
}

function checkDefinitionText(text: string): void {
  let docs;
  try {
    docs = parseDefinitions(text, 'fuzz.yaml');
  } catch (e) {
    throw new Error(`parseDefinitions threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n--- input ---\n${text.slice(0, 2000)}`);
  }
  for (const d of docs) {
    stats.definitions++;
    stats.issues += d.issues.length;
    expect(unexplained(d.issues), text.slice(0, 2000)).toEqual([]);
    if (d.issues.length === 0) {
      expect(d.spec, text.slice(0, 500)).toBeDefined();
      stats.definitionsValid++;
      if (d.kind === 'vm') tryArgv(d.spec as VmSpec);
    } else expect(d.spec).toBeUndefined();
  }
}

const RT = '/run/kvmctl/vms/fz';
function tryArgv(vm: VmSpec): void {
  try {
    buildArgv(vm, TCG_HOST_FACTS, {
      runtime: { dir: RT, qmp: `${RT}/qmp.sock`, serial: `${RT}/serial.sock`, serialLog: `${RT}/serial.log`, pidfile: `${RT}/qemu.pid`, vnc: `${RT}/vnc.sock`, qmpEvents: `${RT}/qmp-events.sock` },
      imagesDir: '/var/lib/kvmctl/images',
      attachments: vm.nics.map((n, i) => (n.user ? { kind: 'user' as const, forwards: [] } : { kind: 'tap' as const, ifname: `tap${i}`, vhost: false })),
      kernel: vm.kernel ? { path: '/boot/vmlinuz', initrd: '/boot/initrd.img' } : undefined,
    });
    stats.argvBuilt++;
  } catch (e) {
    if (!(e instanceof KvmError)) throw new Error(`buildArgv threw ${(e as Error)?.constructor?.name} on a valid definition: ${(e as Error)?.message}\n${JSON.stringify(vm).slice(0, 1500)}`);
    expect(e.message.length).toBeGreaterThan(0);
  }
}

// Values that break naive code: wrong types, edges, traversal, shell syntax, huge and odd strings.
const nasty = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e21, -0, '', ' ', '0', '-1', '1G', '12Q', '../../etc/passwd', '/', 'a/b', 'a\u0000b', '$(reboot)', '`id`', 'a;b', '*', '~', '52:54:00:00:00:01', '01:00:5e:00:00:01', 'x'.repeat(300), 'é'.repeat(70), [], {}, [[]], { '': 1 }, { __proto__: 1 }, { constructor: 'x' }, 'tcg', 'kvm', 'q35', 'virtio', 'none'),
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Valid starting points: the shipped examples and a few small definitions. */
function baseDefinitions(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const f of ['examples/exam_vm.yaml', 'examples/tiny.yaml']) {
    for (const d of parseDefinitions(fs.readFileSync(path.join(ROOT, f), 'utf8'), f)) out.push(d.raw as Record<string, unknown>);
  }
  out.push(
    { name: 'n1', memory: '256M', nics: [{ user: { forwards: [{ hostPort: 2222, guestPort: 22 }] } }, { network: 'br0', mac: '52:54:00:00:00:02' }] },
    { name: 'n2', disks: [{ file: 'a.qcow2', create: { size: '1G' } }], cdroms: ['x.iso'], boot: { order: ['cdrom', 'disk'], once: 'cdrom' }, display: 'vnc' },
    { kind: 'network', name: 'mv', type: 'macvtap', parent: 'eth1' },
  );
  return out;
}

type Path = (string | number)[];
function pathsOf(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) pathsOf(x, [...at, k], out);
  return out;
}
function setAt(root: unknown, p: Path, value: unknown, mode: 'set' | 'delete'): unknown {
  if (p.length === 0) return mode === 'set' ? value : {};
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const seg of p.slice(0, -1)) cur = cur[seg] as Record<string | number, unknown>;
  const last = p[p.length - 1]!;
  if (mode === 'delete') {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy;
}

describe('property: the definition schema never crashes and explains every error', () => {
  it(`arbitrary JSON-ish documents (${RUNS} runs)`, () => {
    const doc = fc.oneof(
      fc.dictionary(fc.oneof(fc.constantFrom('name', 'kind', 'memory', 'cpu', 'nics', 'disks', 'shares', 'machine', 'boot', 'kernel', 'type', 'runAs', 'qmp', 'monitor', 'display'), fc.string({ maxLength: 8 })), nasty, { maxKeys: 6 }),
      fc.jsonValue({ maxDepth: 3 }),
    );
    fc.assert(
      fc.property(doc, fc.boolean(), (d, asYaml) => {
        checkDefinitionText(asYaml ? stringify(d ?? null) : JSON.stringify(d ?? null));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`mutated valid definitions (${RUNS} runs)`, () => {
    const bases = baseDefinitions();
    for (const b of bases) expect(parseDefinitions(JSON.stringify(b))[0]!.issues).toEqual([]);
    const mutation = fc.record({ base: fc.nat({ max: bases.length - 1 }), pick: fc.nat(), value: nasty, del: fc.boolean(), extraKey: fc.option(fc.string({ minLength: 1, maxLength: 10 }), { nil: undefined }) });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        let doc: unknown = bases[ms[0]!.base];
        for (const m of ms) {
          const ps = pathsOf(doc).filter((p) => p.length > 0 && p[0] !== 'kind');
          if (ps.length === 0) break;
          const p = ps[m.pick % ps.length]!;
          doc = m.extraKey !== undefined && typeof doc === 'object' && doc && !Array.isArray(doc) ? setAt(doc, [m.extraKey], m.value, 'set') : setAt(doc, p, m.value, m.del ? 'delete' : 'set');
        }
        checkDefinitionText(stringify(doc));
      }),
      { numRuns: RUNS, seed: SEED + 1 },
    );
  });

  it(`random text (${RUNS} runs): YAML syntax errors name FILE:LINE`, () => {
    const yamlish = fc.array(fc.constantFrom('name: a', 'memory:', ' - ', '[', ']', '{', '}', '"', "'", ':', '&a', '*a', '*b', '!!int', '---', '\t', '#', 'cpu: {count: 2', '  x: 1', '\n', '%YAML 1.2', '? '), { maxLength: 12 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(fc.oneof(yamlish, fc.string({ maxLength: 200 })), (t) => checkDefinitionText(t)),
      { numRuns: RUNS, seed: SEED + 2 },
    );
  });
});

// Real QEMU options (as scripts spell them) and values, to build token soups from.
const OPTIONS = ['-name', '-machine', '-M', '-accel', '-cpu', '-smp', '-m', '-drive', '-hda', '-cdrom', '-boot', '-netdev', '-nic', '-net', '-device', '-object', '-chardev', '-fsdev', '-virtfs', '-monitor', '-qmp', '-serial', '-display', '-vnc', '-vga', '-kernel', '-initrd', '-append', '-runas', '-pidfile', '-sandbox', '-rtc', '-global', '-bios', '-enable-kvm', '-nographic', '-daemonize', '-nodefaults', '-no-user-config', '-no-reboot', '-S', '-snapshot', '-usb', '-no-kvm', '-curses', '-bogus', '--', '-', '-blockdev', '-numa', '-mem-path', '-overcommit', '-smbios', '-fw_cfg', '-incoming', '-readconfig'];
const VALUES = ['q35', 'pc,accel=kvm', 'accel=tcg', 'kvm', 'host', 'max', '4', '0', '5000', '4,sockets=1,cores=3', '2G', '512', '1M', '99999999G', 'abc', 'file=a.img,if=virtio,format=qcow2', 'file=a.img,format=iso', 'if=none,id=d0', 'file=a,b.img', 'file=../../etc/shadow', 'tap,id=n0,ifname=tap0,script=no,downscript=no', 'tap,id=n0,fd=3', 'user,id=n0,hostfwd=tcp::2222-:22', 'bridge,id=n0,br=br0', 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01', 'e1000,netdev=n0,mac=zz', 'virtio-blk-pci,drive=d0', 'virtio-9p-pci,fsdev=f0,mount_tag=share', 'local,id=f0,path=/srv,security_model=none', 'local,path=/srv,mount_tag=t,security_model=mapped-xattr', 'unix:/tmp/m.sock,server,nowait', 'telnet:localhost:4444,server,nowait', 'stdio', 'none', 'vnc=:1', ':0', 'std', 'console=ttyS0', 'on', 'on,obsolete=deny', 'base=utc', 'kvm', 'rng-random,id=r0,filename=/dev/urandom', 'socket,id=c0,path=/tmp/c.sock,server=on,wait=off', 'menu=on', 'd', '"$HOME/x.img"', '$(id)', '`date`', '${X:-y}', "'a b'", '"a\\"b"', 'x'.repeat(200), '', ','];
const SHELL = ['\\\n', ' ', ' ', ' ', '\n', ' 3<>/dev/tap7 ', ' 2>&1 ', ' & ', ' ; ', ' | ', ' # comment\n', ' && ', '"', "'", '$', '\\'];
const PREFIX = ['qemu-system-x86_64 ', '/usr/bin/qemu-system-x86_64 ', 'exec qemu-system-x86_64 ', 'sudo -E qemu-kvm ', 'qemu-system-aarch64 ', 'X=1 qemu-system-x86_64 ', '', '#!/bin/sh\nset -e\nqemu-system-x86_64 '];

describe('property: the launch-line importer never crashes and explains what it refuses', () => {
  it(`token soups of real QEMU options (${RUNS} runs)`, () => {
    const token = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...OPTIONS) }, { weight: 3, arbitrary: fc.constantFrom(...VALUES) }, { weight: 2, arbitrary: fc.constantFrom(...SHELL) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });
    const script = fc.tuple(fc.constantFrom(...PREFIX), fc.array(token, { maxLength: 40 }), fc.option(fc.constantFrom('a', '../x', 'a;b', 'ok.vm', 'x'.repeat(70)), { nil: undefined })).map(([p, ts, name]) => ({ text: p + ts.join(' '), name }));
    fc.assert(
      fc.property(script, ({ text, name }) => {
        stats.imports++;
        let r;
        try {
          r = importCommandLine(text, { name, source: 'fuzz.sh' });
        } catch (e) {
          if (!(e instanceof KvmError)) throw new Error(`importCommandLine threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n--- input ---\n${text}`);
          stats.importsRefused++;
          expect(e.exit, `${e.code}: ${e.message}`).toBe(2);
          expect(e.message.trim().length).toBeGreaterThan(0);
          expect(unexplained(e.issues ?? []), text).toEqual([]);
          return;
        }
        stats.importNotes += r.notes.length;
        for (const n of r.notes) expect(n.message.trim().length, text).toBeGreaterThan(0);
        expect(r.name).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
        // What it produced is a valid definition (it went through validateVm) and builds an argv.
        expect(parseDefinitions(stringify(r.vm))[0]!.issues, text).toEqual([]);
        tryArgv(r.spec);
      }),
      { numRuns: RUNS, seed: SEED + 3 },
    );
    writeReport('fuzz', { runsPerProperty: RUNS, properties: 4, ...stats });
  });
});
