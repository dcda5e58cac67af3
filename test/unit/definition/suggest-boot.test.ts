/** #14 item 7 (CLI parts): did-you-mean never offers the input itself; install's CD-ROM counts for boot.once: cdrom. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KvmError } from '../../../src/errors.js';
import { TCG_HOST_FACTS } from '../../../src/host/facts.js';
import { resolvePaths } from '../../../src/host/paths.js';
import { buildArgv } from '../../../src/qemu/argv.js';
import { parseDefinitions } from '../../../src/definition/load.js';
import { closest } from '../../../src/definition/names.js';
import { readVm } from '../../../src/definition/store.js';
import type { VmSpec } from '../../../src/definition/vm.js';
import { withInstallMedium } from '../../../src/vm/storage.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-suggest-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const issuesOf = (doc: Record<string, unknown>) => parseDefinitions(JSON.stringify(doc))[0]!.issues;

describe('did-you-mean', () => {
  it('closest never returns the word itself, still finds a near one', () => {
    expect(closest('mac', ['mac', 'max'])).toBe('max');
    expect(closest('mac', ['mac'])).toBeUndefined();
    expect(closest('memroy', ['memory', 'machine'])).toBe('memory');
  });

  it('a key valid elsewhere but not here is reported as such, with no suggestion of itself', () => {
    const iss = issuesOf({ name: 'vm1', disks: [{ file: 'a.img', mac: '52:54:00:00:00:01' }] });
    expect(iss).toEqual([{ path: 'disks[0].mac', message: 'unknown key "mac" here (it belongs to another part of the definition)' }]);
    expect(iss[0]!.message).not.toMatch(/did you mean "mac"/);
    expect(issuesOf({ name: 'vm1', memroy: '1G' })[0]!.message).toBe('unknown key "memroy" — did you mean "memory"?');
  });

  it('a VM name differing only in case: the other name, said to be case-sensitive; never the typed one', () => {
    const paths = resolvePaths({ KVMCTL_HOME: tmp });
    fs.mkdirSync(paths.vmDefs, { recursive: true });
    fs.writeFileSync(path.join(paths.vmDefs, 'Web.yaml'), 'name: Web\n');
    const err = (() => {
      try {
        readVm(paths, 'web');
      } catch (e) {
        return e as KvmError;
      }
      throw new Error('readVm did not throw');
    })();
    expect(err).toBeInstanceOf(KvmError);
    expect(err.code).toBe('VM_NOT_FOUND');
    expect(err.hint).toBe('names are case-sensitive: did you mean "Web"?');
    // A definition that is there but cannot be read is not "not found, did you mean <itself>".
    fs.mkdirSync(path.join(paths.vmDefs, 'db.yaml'));
    expect(() => readVm(paths, 'db')).toThrow(expect.objectContaining({ code: 'DEFINITION_UNREADABLE' }));
  });
});

describe('boot.once: cdrom with the CD-ROM that install adds', () => {
  const def = { name: 'inst', disks: [{ file: 'a.qcow2' }], boot: { order: ['disk'], once: 'cdrom' } };

  it('is accepted with no cdroms defined; boot.order: [cdrom] without one is still refused', () => {
    expect(issuesOf(def)).toEqual([]);
    expect(issuesOf({ ...def, boot: { order: ['cdrom'] } })).toEqual([{ path: 'boot', message: 'boots from cdrom but no cdroms are defined' }]);
    expect(issuesOf({ ...def, nics: [], boot: { order: ['disk'], once: 'network' } })).toEqual([{ path: 'boot', message: 'boots from the network but no nics are defined' }]);
  });

  it('install puts the ISO in cd0 and the argv boots once from it', () => {
    const iso = path.join(tmp, 'inst.iso');
    fs.writeFileSync(iso, '');
    const vm = withInstallMedium(parseDefinitions(JSON.stringify(def))[0]!.spec as VmSpec, iso);
    expect(vm.cdroms.map((c) => c.file)).toEqual([iso]);
    const { argv } = buildArgv(vm, TCG_HOST_FACTS, { runtime: { dir: tmp, qmp: `${tmp}/qmp.sock`, serial: `${tmp}/serial.sock`, serialLog: `${tmp}/serial.log`, pidfile: `${tmp}/qemu.pid`, vnc: `${tmp}/vnc.sock` }, imagesDir: tmp, attachments: [], bootOnce: true });
    expect(argv[argv.indexOf('-boot') + 1]).toMatch(/once=d/);
    expect(argv.join(' ')).toContain(iso);
  });
});
