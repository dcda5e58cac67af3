/** Kernel .config parsing, gzip (/proc/config.gz) decoding, and finding the running kernel's config. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { decodeConfigBytes, findRunningKernelConfig, optionValue, parseKernelConfig, readKernelConfigFile } from '../../../src/host/kernel-config.js';

const FIX = path.join(import.meta.dirname, '../../fixtures/host');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-kcfg-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SAMPLE = `#
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_KVM=m
  CONFIG_TUN=y
# CONFIG_VHOST_NET is not set
CONFIG_RTC_HCTOSYS_DEVICE="rtc0"
CONFIG_HZ=250
# a comment that mentions CONFIG_BRIDGE=y
`;

describe('parseKernelConfig', () => {
  const cfg = parseKernelConfig(SAMPLE);
  it('keeps y, m, numbers and quoted strings as written; "is not set" is n', () => {
    expect(Object.fromEntries(cfg)).toEqual({ KVM: 'm', TUN: 'y', VHOST_NET: 'n', RTC_HCTOSYS_DEVICE: '"rtc0"', HZ: '250' });
  });
  it('optionValue: absent options are n, the CONFIG_ prefix is optional', () => {
    expect(optionValue(cfg, 'CONFIG_KVM')).toBe('m');
    expect(optionValue(cfg, 'BRIDGE')).toBe('n');
  });
  it('reads the recorded /proc/config.gz of this machine (gzip)', () => {
    const c = parseKernelConfig(decodeConfigBytes(fs.readFileSync(path.join(FIX, 'this-machine/config.gz'))));
    expect(c.get('KVM')).toBe('y');
    expect(c.get('KVM_PVM')).toBe('y');
    expect(c.get('VHOST_NET')).toBe('n');
    expect(c.get('MACVTAP')).toBe('y');
    expect(c.size).toBeGreaterThan(1000);
  });
});

describe('readKernelConfigFile', () => {
  it('reads plain and gzip files alike', () => {
    fs.writeFileSync(path.join(tmp, 'plain'), SAMPLE);
    fs.writeFileSync(path.join(tmp, 'config.gz'), gzipSync(SAMPLE));
    expect(readKernelConfigFile(path.join(tmp, 'plain'))).toBe(SAMPLE);
    expect(readKernelConfigFile(path.join(tmp, 'config.gz'))).toBe(SAMPLE);
  });
  it('a missing file or a file that is not a config is bad input (exit 2) naming the file', () => {
    const bad = (f: string, code: string) => {
      try {
        readKernelConfigFile(f);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(KvmError);
        expect((e as KvmError).exit).toBe(2);
        expect((e as KvmError).code).toBe(code);
        expect((e as KvmError).message).toContain(f);
      }
    };
    bad(path.join(tmp, 'nope'), 'FILE_NOT_FOUND');
    fs.writeFileSync(path.join(tmp, 'notes.txt'), 'hello\n');
    bad(path.join(tmp, 'notes.txt'), 'KERNEL_CONFIG_INVALID');
    fs.writeFileSync(path.join(tmp, 'broken.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    bad(path.join(tmp, 'broken.gz'), 'KERNEL_CONFIG_INVALID');
  });
});

describe('findRunningKernelConfig', () => {
  it('prefers /proc/config.gz, falls back to /boot/config-RELEASE, else undefined', () => {
    const root = path.join(tmp, 'root') + '/';
    fs.mkdirSync(path.join(root, 'proc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'boot'), { recursive: true });
    expect(findRunningKernelConfig('6.1.0-test', root)).toBeUndefined();
    fs.writeFileSync(path.join(root, 'boot/config-6.1.0-test'), 'CONFIG_KVM=m\n');
    expect(findRunningKernelConfig('6.1.0-test', root)).toEqual({ source: `${root}boot/config-6.1.0-test`, text: 'CONFIG_KVM=m\n' });
    fs.writeFileSync(path.join(root, 'proc/config.gz'), gzipSync('CONFIG_KVM=y\n'));
    expect(findRunningKernelConfig('6.1.0-test', root)).toEqual({ source: `${root}proc/config.gz`, text: 'CONFIG_KVM=y\n' });
  });
});
