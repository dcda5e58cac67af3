/** The pure swtpm and swtpm_setup command lines (issue #15 item 2). */
import { describe, expect, it } from 'vitest';
import { swtpmArgv, swtpmSetupArgv } from '../../../src/vm/swtpm.js';

const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

describe('swtpmArgv', () => {
  const o = { stateDir: '/d/vms/a/tpm', socket: '/r/vms/a/swtpm.sock', log: '/r/vms/a/swtpm.log' };
  it('a TPM 2.0 on a private unix socket that ends with its QEMU', () => {
    const a = swtpmArgv({ ...o, version: '2.0' });
    expect(a.slice(0, 2)).toEqual(['swtpm', 'socket']);
    expect(after(a, '--tpmstate')).toBe('dir=/d/vms/a/tpm,mode=0600');
    expect(after(a, '--ctrl')).toBe('type=unixio,path=/r/vms/a/swtpm.sock,mode=0600');
    expect(a).toContain('--terminate');
    expect(a).toContain('--tpm2');
  });
  it('a TPM 1.2 has no --tpm2', () => {
    expect(swtpmArgv({ ...o, version: '1.2' })).not.toContain('--tpm2');
  });
});

describe('swtpmSetupArgv', () => {
  const o = { stateDir: '/d/vms/a/tpm', log: '/d/vms/a/tpm-setup.log', config: '/d/tpm-ca/swtpm_setup.conf' };
  it('makes an EK with certificates from kvmctl own CA config and never overwrites state', () => {
    const a = swtpmSetupArgv({ ...o, version: '2.0', certs: true });
    expect(a[0]).toBe('swtpm_setup');
    expect(a).toEqual(expect.arrayContaining(['--tpm2', '--createek', '--create-ek-cert', '--create-platform-cert', '--not-overwrite']));
    expect(after(a, '--config')).toBe('/d/tpm-ca/swtpm_setup.conf');
    expect(after(a, '--tpmstate')).toBe('/d/vms/a/tpm');
  });
  it('without certificates (the fallback when the local CA fails) still makes the EK', () => {
    const a = swtpmSetupArgv({ ...o, version: '2.0', certs: false });
    expect(a).toContain('--createek');
    expect(a).not.toContain('--create-ek-cert');
    expect(a).toContain('--not-overwrite');
  });
});
