/**
 * The guest kernel fragment against the real config of Debian's generic kernel (the one the test
 * guest boots): fetched with `apt-get download` of the versioned package behind linux-image-amd64
 * and unpacked with dpkg-deb, cached in /tmp/kvmctl-kcfg (never in the repo). Option by option,
 * the verdict of `checkGuestConfig` is compared with the line the real file has. Then the CLI.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGuestConfig, optionsFor, seedNeeds, vmNeeds } from '../../src/guest/kernel-fragment.js';
import { run } from '../../src/host/exec.js';
import { parseKernelConfig } from '../../src/host/kernel-config.js';
import { validateVm } from '../../src/definition/load.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

const CACHE = process.env.KVMCTL_KCFG_CACHE ?? '/tmp/kvmctl-kcfg';
const EXCERPT = path.join(import.meta.dirname, '../fixtures/host/debian-6.1.0-56-amd64.config');

/** /boot/config-* of Debian's current generic amd64 kernel, downloaded once per machine. */
async function debianKernelConfig(): Promise<{ file: string } | { skip: string }> {
  fs.mkdirSync(CACHE, { recursive: true });
  const cached = fs.readdirSync(CACHE).find((f) => /^config-.*-amd64$/.test(f));
  if (cached) return { file: path.join(CACHE, cached) };
  const dep = await run(['apt-cache', 'depends', 'linux-image-amd64'], { allowFailure: true }).catch(() => undefined);
  const pkg = /Depends: (linux-image-[\d.]+-\d+-amd64)\b/.exec(dep?.stdout ?? '')?.[1];
  if (!pkg) return { skip: 'apt-cache does not know linux-image-amd64 (run apt-get update)' };
  const dl = await run(['apt-get', 'download', pkg], { cwd: CACHE, allowFailure: true, timeoutMs: 240_000 });
  const deb = fs.readdirSync(CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (dl.exitCode !== 0 || !deb) return { skip: `apt-get download ${pkg} failed: ${dl.stderr.trim().split('\n').at(-1)}` };
  const x = fs.mkdtempSync(path.join(CACHE, 'x-'));
  try {
    await run(['dpkg-deb', '-x', path.join(CACHE, deb), x], { timeoutMs: 120_000 });
    const cfg = fs.readdirSync(path.join(x, 'boot')).find((f) => f.startsWith('config-'))!;
    fs.copyFileSync(path.join(x, 'boot', cfg), path.join(CACHE, cfg));
    return { file: path.join(CACHE, cfg) };
  } finally {
    fs.rmSync(x, { recursive: true, force: true });
    fs.rmSync(path.join(CACHE, deb), { force: true });
  }
}

let cfgFile: string | undefined;
let skipWhy: string | undefined;
let text = '';
let h: Home;
beforeAll(async () => {
  const r = await debianKernelConfig();
  if ('file' in r) {
    cfgFile = r.file;
    text = fs.readFileSync(cfgFile, 'utf8');
  } else skipWhy = r.skip;
  h = makeHome();
}, 300_000);
afterAll(async () => {
  await h?.cleanup();
});

/** The raw assignment of an option in the real file, read without the parser under test. */
const rawLine = (name: string) => text.split('\n').find((l) => l.startsWith(`CONFIG_${name}=`));

describe('the fragment against Debian’s real generic kernel config', () => {
  it('is checked option by option against the line the file has', (ctx) => {
    if (!cfgFile) ctx.skip(skipWhy);
    const needs = seedNeeds();
    const c = checkGuestConfig(text, needs);
    const verdict = new Map([...c.present, ...c.missing].map((v) => [v.name, v]));
    const table: string[] = [];
    for (const o of optionsFor(needs)) {
      const line = rawLine(o.name);
      const v = verdict.get(o.name)!;
      const expected = line === `CONFIG_${o.name}=${o.value}` || (line === `CONFIG_${o.name}=m` && !o.builtin && o.value === 'y');
      expect(v.ok, `${o.name}: ${line ?? 'absent'}`).toBe(expected);
      table.push(`${v.ok ? 'ok     ' : 'MISSING'} ${o.name.padEnd(22)} ${line ?? '(absent)'}`);
    }
    console.log(`${path.basename(cfgFile!)} vs the seed fragment:\n${table.join('\n')}`);
    // What Debian 6.1 ships: virtio, 9p and ptp_kvm as modules, the RTC options built in.
    expect(rawLine('PTP_1588_CLOCK_KVM')).toBe('CONFIG_PTP_1588_CLOCK_KVM=m');
    expect(rawLine('RTC_HCTOSYS_DEVICE')).toBe('CONFIG_RTC_HCTOSYS_DEVICE="rtc0"');
    expect(c.missing.map((m) => m.name).sort()).toEqual(['VIRTIO_BLK', 'VIRTIO_PCI']);
  });

  it('after applying the fragment (later assignments win, as merge_config.sh does) nothing is missing', (ctx) => {
    if (!cfgFile) ctx.skip(skipWhy);
    const needs = seedNeeds();
    const merged = new Map(parseKernelConfig(text));
    for (const o of optionsFor(needs)) merged.set(o.name, o.value);
    const out = [...merged].map(([k, v]) => (v === 'n' ? `# CONFIG_${k} is not set` : `CONFIG_${k}=${v}`)).join('\n');
    expect(checkGuestConfig(out, needs).missing).toEqual([]);
  });

  it('the test guest (initramfs loads modules, 9p share, virtio NIC and disk) needs nothing more', (ctx) => {
    if (!cfgFile) ctx.skip(skipWhy);
    const vm = validateVm({ name: 'tg', kernel: { builtin: 'test-guest' }, disks: [{ file: 'd.img' }], nics: [{ user: true }], shares: [{ path: '/srv', tag: 'host_share' }] });
    const c = checkGuestConfig(text, vmNeeds(vm));
    expect(c.missing).toEqual([]);
    expect(c.removable.map((r) => r.name)).toEqual(expect.arrayContaining(['SATA_AHCI', 'ATA_PIIX', 'E1000', 'E1000E']));
  });

  it('the checked-in excerpt is true to the real file, line for line', (ctx) => {
    if (!cfgFile || !text.includes('6.1.192')) ctx.skip(skipWhy ?? 'the cached config is not 6.1.192 (the excerpt’s version)');
    const lines = new Set(text.split('\n'));
    for (const l of fs.readFileSync(EXCERPT, 'utf8').split('\n').filter((x) => x.startsWith('CONFIG_'))) expect(lines.has(l), l).toBe(true);
  });
});

describe('kvmctl guest (CLI)', () => {
  it('kernel-config prints the seed fragment; --check on the real config lists what is missing, exit 1', async (ctx) => {
    const f = await h.cli(['guest', 'kernel-config']);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toContain('CONFIG_PTP_1588_CLOCK_KVM=y');
    expect(f.stdout).toContain('CONFIG_NET_9P_VIRTIO=y');
    if (!cfgFile) ctx.skip(skipWhy);
    const c = await h.cli(['guest', 'kernel-config', '--check', cfgFile!]);
    expect(c.code).toBe(1);
    expect(c.stdout).toContain('MISSING  CONFIG_VIRTIO_BLK=y: is a module (=m) but must be built in (=y)');
    expect(c.stdout).toContain('CONFIG_SATA_AHCI=m');
  });

  it('kernel-config NAME uses the stored definition: 9p only with shares, virtio-net only with NICs', async () => {
    const dir = path.join(h.dir, 'config/vms');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'plain.yaml'), 'name: plain\ndisks:\n  - file: plain.img\n');
    fs.writeFileSync(path.join(dir, 'shared.yaml'), 'name: shared\ndisks:\n  - file: s.img\nnics:\n  - user: true\nshares:\n  - path: /srv\n    tag: host_share\n');
    const plain = await h.cli(['guest', 'kernel-config', 'plain']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('VM "plain"');
    expect(plain.stdout).not.toContain('CONFIG_NET_9P');
    expect(plain.stdout).not.toContain('CONFIG_VIRTIO_NET');
    const shared = await h.cli(['guest', 'kernel-config', 'shared', '--json']);
    const names = (JSON.parse(shared.stdout) as { options: { name: string }[] }).options.map((o) => o.name);
    expect(names).toEqual(expect.arrayContaining(['NET_9P', 'NET_9P_VIRTIO', '9P_FS', 'VIRTIO_NET']));
    const byFile = await h.cli(['guest', 'kernel-config', path.join(dir, 'shared.yaml')]);
    expect(byFile.stdout).toContain('CONFIG_NET_9P_VIRTIO=y');
    const missing = await h.cli(['guest', 'kernel-config', 'plian']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('did you mean "plain"');
  });

  it('time-sync prints chrony.conf, the init steps and caveats; a bad --init is bad input', async () => {
    const t = await h.cli(['guest', 'time-sync']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain('refclock PHC $dev poll 2 prefer'); // in the gate script, never in chrony.conf
    expect(t.stdout).toContain('pool pool.ntp.org iburst');
    expect(t.stdout).toContain('rc-update del hwclock boot');
    const j = await h.cli(['guest', 'time-sync', '--init', 'systemd', '--json']);
    expect((JSON.parse(j.stdout) as { init: string }).init).toBe('systemd');
    const bad = await h.cli(['guest', 'time-sync', '--init', 'sysv']);
    expect(bad.code).toBe(2);
  });
});
