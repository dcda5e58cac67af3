/** QEMU's key=val option syntax read back: implied first key, ",," escaping, flags. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { qemuOpts } from '../../../src/qemu/escape.js';
import { parseBool, parseOpts } from '../../../src/qemu/parse-opts.js';

describe('parseOpts', () => {
  it('gives the implied first key its value', () => {
    const p = parseOpts('tap,id=net0,ifname=tap0', 'type');
    expect(p.pairs).toEqual([['type', 'tap'], ['id', 'net0'], ['ifname', 'tap0']]);
    expect(p.get('type')).toBe('tap');
  });

  it('unescapes ",," inside values', () => {
    expect(parseOpts('file=a,,b.img,format=raw').get('file')).toBe('a,b.img');
    expect(parseOpts('file=a,,,,b,if=virtio').pairs).toEqual([['file', 'a,,b'], ['if', 'virtio']]);
    expect(parseOpts('unix:/tmp/a,,b.sock,server', 'backend').get('backend')).toBe('unix:/tmp/a,b.sock');
  });

  it('reads bare keys as flags: key → on, nokey → off', () => {
    const p = parseOpts('unix:/run/m.sock,server,nowait', 'backend');
    expect(p.pairs).toEqual([['backend', 'unix:/run/m.sock'], ['server', 'on'], ['wait', 'off']]);
  });

  it('does not imply a key when the first element has "="', () => {
    expect(parseOpts('type=q35,accel=kvm', 'type').pairs).toEqual([['type', 'q35'], ['accel', 'kvm']]);
    expect(parseOpts('8', 'cpus').get('cpus')).toBe('8');
    expect(parseOpts('cpus=4,sockets=1,cores=2,threads=2', 'cpus').get('threads')).toBe('2');
  });

  it('keeps repeated keys in order (all) while get returns the last', () => {
    const p = parseOpts('user,id=n,hostfwd=tcp::2222-:22,hostfwd=udp::53-:53', 'type');
    expect(p.all('hostfwd')).toEqual(['tcp::2222-:22', 'udp::53-:53']);
    const q = parseOpts('cache=none,cache=writeback');
    expect(q.get('cache')).toBe('writeback');
  });

  it('skips empty elements and lists unknown keys', () => {
    const p = parseOpts('tap,,id=x', 'type');
    // ",," right after the implied value is an escaped comma in that value, as in QEMU.
    expect(p.get('type')).toBe('tap,id=x');
    const q = parseOpts('file=x,,if=virtio,', undefined);
    expect(q.get('file')).toBe('x,if=virtio');
    expect(parseOpts('a=1,,b=2,c=3,d=4').unknown(['a', 'c'])).toEqual(['d']);
  });

  it('serialises back with escaping (toString) and picks/omits keys', () => {
    const p = parseOpts('virtio-net-pci,netdev=n0,romfile=a,,b', 'driver');
    expect(p.toString('driver')).toBe('virtio-net-pci,netdev=n0,romfile=a,,b');
    expect(p.pick(['netdev']).toString()).toBe('netdev=n0');
    expect(p.omit(['romfile']).toString('driver')).toBe('virtio-net-pci,netdev=n0');
    expect(p.describe(['romfile'])).toBe('romfile=a,b');
  });

  it('round-trips whatever qemuOpts builds (property test)', () => {
    const key = fc.stringMatching(/^[a-z][a-z_-]{0,8}$/).filter((k) => !k.startsWith('no'));
    const val = fc.string({ minLength: 1, maxLength: 12 }).filter((v) => !v.includes('='));
    fc.assert(
      fc.property(fc.dictionary(key, val, { minKeys: 1, maxKeys: 5 }), (kv) => {
        const text = qemuOpts(undefined, kv);
        expect(Object.fromEntries(parseOpts(text).pairs)).toEqual(kv);
      }),
    );
  });
});

describe('parseBool', () => {
  it('knows QEMU booleans and nothing else', () => {
    expect(['on', 'yes', 'true', 'ON'].map(parseBool)).toEqual([true, true, true, true]);
    expect(['off', 'no', 'false'].map(parseBool)).toEqual([false, false, false]);
    expect(parseBool('maybe')).toBeUndefined();
    expect(parseBool(undefined)).toBeUndefined();
  });
});
