/** A table of bad VM definitions: each must be refused with the exact path and a message naming the problem. */
import { describe, expect, it } from 'vitest';
import { parseDefinitions } from '../../../src/definition/load.js';

const ok = { name: 'vm1' };
type Case = [label: string, doc: Record<string, unknown> | string, path: string, message: RegExp];

const cases: Case[] = [
  ['name with a space', { name: 'bad name' }, 'name', /"bad name" must be 1–64 characters/],
  ['name with a slash (path traversal)', { name: '../etc/passwd' }, 'name', /"\.\.\/etc\/passwd" must be 1–64/],
  ['name with shell metacharacters', { name: 'a;rm -rf' }, 'name', /must be 1–64 characters/],
  ['name missing', { memory: '1G' }, 'name', /is required/],
  ['misspelled key', { ...ok, memroy: '1G' }, 'memroy', /unknown key "memroy" — did you mean "memory"\?/],
  ['misspelled nested key', { ...ok, nics: [{ tap: 'tap0', mca: '52:54:00:00:00:01' }] }, 'nics[0].mca', /did you mean "mac"/],
  ['memory not a size', { ...ok, memory: '12Q' }, 'memory', /"12Q" is not a size/],
  ['memory too small', { ...ok, memory: '1M' }, 'memory', /too small for memory/],
  ['memory wrong type', { ...ok, memory: [1] }, 'memory', /memory must be a size/],
  ['cpu count zero', { ...ok, cpu: { count: 0 } }, 'cpu.count', /0 is out of range: must be at least 1/],
  ['cpu count not integer', { ...ok, cpu: { count: 1.5 } }, 'cpu.count', /must be an integer, got number 1.5/],
  ['cpu topology mismatch', { ...ok, cpu: { count: 4, sockets: 1, cores: 3 } }, 'cpu.count', /sockets × cores × threads = 3 but count is 4/],
  ['accel unknown', { ...ok, machine: { accel: ['xen'] } }, 'machine.accel[0]', /"xen" is not one of "kvm", "tcg"/],
  ['machine type bad chars', { ...ok, machine: 'Q35!' }, 'machine.type', /must be a QEMU machine type/],
  ['MAC not hex', { ...ok, nics: [{ tap: 'tap0', mac: '52:54:00:zz:00:01' }] }, 'nics[0].mac', /"52:54:00:zz:00:01" is not a MAC address/],
  ['MAC multicast', { ...ok, nics: [{ tap: 'tap0', mac: '01:00:5e:00:00:01' }] }, 'nics[0].mac', /is a multicast MAC/],
  ['duplicate MACs', { ...ok, nics: [{ tap: 'tap0', mac: '52:54:00:00:00:01' }, { tap: 'tap1', mac: '52:54:00:00:00:01' }] }, 'nics[1].mac', /duplicate MAC "52:54:00:00:00:01" \(also nics\[0\]\)/],
  ['duplicate NIC ids', { ...ok, nics: [{ id: 'a', tap: 'tap0' }, { id: 'a', tap: 'tap1' }] }, 'nics[1].id', /duplicate NIC id "a"/],
  ['NIC with two attachments', { ...ok, nics: [{ tap: 'tap0', network: 'br0' }] }, 'nics[0]', /exactly one of network, tap or user/],
  ['NIC with no attachment', { ...ok, nics: [{}] }, 'nics[0]', /exactly one of network, tap or user/],
  ['tap name too long', { ...ok, nics: [{ tap: 'a-very-long-tap-name' }] }, 'nics[0].tap', /interface name of 1–15/],
  ['NIC model unknown', { ...ok, nics: [{ tap: 't', model: 'ne2k' }] }, 'nics[0].model', /"ne2k" is not one of "virtio"/],
  ['vhost value', { ...ok, nics: [{ tap: 't', vhost: 'yes' }] }, 'nics[0].vhost', /"yes" is not one of "auto", "on", "off"/],
  ['two disks on one index', { ...ok, disks: [{ file: 'a.img', index: 0 }, { file: 'b.img', index: 0 }] }, 'disks[1].index', /duplicate interface index "virtio:0"/],
  ['same disk twice', { ...ok, disks: [{ file: 'a.img' }, { file: 'a.img' }] }, 'disks[1].file', /duplicate disk file "a.img"/],
  ['disk cache mode', { ...ok, disks: [{ file: 'a.img', cache: 'fast' }] }, 'disks[0].cache', /"fast" is not one of "none", "writeback"/],
  ['disk format', { ...ok, disks: [{ file: 'a.img', format: 'iso' }] }, 'disks[0].format', /"iso" is not one of "raw", "qcow2"/],
  ['disk without file', { ...ok, disks: [{ format: 'raw' }] }, 'disks[0].file', /is required/],
  ['disk create size', { ...ok, disks: [{ file: 'a.img', create: { size: 'big' } }] }, 'disks[0].create.size', /"big" is not a size/],
  ['boot from cdrom without one', { ...ok, disks: [{ file: 'a.img' }], boot: 'cdrom' }, 'boot', /boots from cdrom but no cdroms are defined/],
  ['boot device unknown', { ...ok, boot: 'floppy' }, 'boot.order[0]', /"floppy" is not one of "disk", "cdrom", "network"/],
  ['share tag too long', { ...ok, shares: [{ path: '/srv', tag: 'x'.repeat(40) }] }, 'shares[0].tag', /mount tag of 1–31/],
  ['share security model', { ...ok, shares: [{ path: '/srv', tag: 't', securityModel: 'mapped' }] }, 'shares[0].securityModel', /"mapped" is not one of "mapped-xattr"/],
  ['duplicate mount tags', { ...ok, shares: [{ path: '/a', tag: 't' }, { path: '/b', tag: 't' }] }, 'shares[1].tag', /duplicate mount tag "t"/],
  ['monitor telnet without port', { ...ok, monitor: { telnet: 'localhost' } }, 'monitor.telnet', /"localhost" must be HOST:PORT/],
  ['display unknown', { ...ok, display: 'sdl' }, 'display.type', /"sdl" is not one of "none", "curses", "vnc"/],
  ['kernel with both path and builtin', { ...ok, kernel: { path: '/boot/vmlinuz', builtin: 'test-guest' } }, 'kernel.path', /exactly one of path or builtin/],
  ['stopTimeout negative', { ...ok, stopTimeout: -1 }, 'stopTimeout', /-1 is out of range: must be at least 0/],
  ['port forward out of range', { ...ok, nics: [{ user: { forwards: [{ hostPort: 70000, guestPort: 22 }] } }] }, 'nics[0].user.forwards[0].hostPort', /70000 is out of range: must be at most 65535/],
  ['kind unknown', { ...ok, kind: 'vmm' }, 'kind', /"vmm" is not one of "vm", "network"/],
  ['not a mapping', '- a\n- b\n', '(top)', /must be a mapping of keys, got a list/],
  ['malformed YAML', 'name: [unclosed\n', '<input>:', /YAML:/],
  ['runAs not a user name', { ...ok, runAs: 'root;id' }, 'runAs.user', /must be a user name/],
  ['extraArgs not strings', { ...ok, extraArgs: [1] }, 'extraArgs[0]', /must be string, got number 1/],
];

describe('bad definitions are refused with their path and a message naming the problem', () => {
  it.each(cases)('%s', (_label, doc, path, message) => {
    const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
    const [d] = parseDefinitions(text);
    expect(d).toBeDefined();
    const hit = d!.issues.find((i) => (path.endsWith(':') ? i.path.startsWith(path) : i.path === path));
    expect(hit, `issues were: ${JSON.stringify(d!.issues)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
    expect(d!.spec).toBeUndefined();
  });

  it('reports every problem of a definition at once', () => {
    const [d] = parseDefinitions(
      JSON.stringify({ name: 'bad name', memroy: '1G', cpu: { count: 0 }, nics: [{ tap: 'tap0', mac: 'zz' }, { tap: 't', mac: '01:00:00:00:00:01' }] }),
    );
    expect(d!.issues.map((i) => i.path).sort()).toEqual(['cpu.count', 'memroy', 'name', 'nics[0].mac', 'nics[1].mac']);
  });

  it('accepts the shipped examples', async () => {
    const fs = await import('node:fs');
    for (const f of fs.readdirSync('examples').filter((x) => x.endsWith('.yaml'))) {
      for (const d of parseDefinitions(fs.readFileSync(`examples/${f}`, 'utf8'), f)) expect(d.issues, f).toEqual([]);
    }
  });
});
