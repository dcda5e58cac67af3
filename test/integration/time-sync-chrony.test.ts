/**
 * `guest time-sync` against a real chronyd (Debian's package, extracted by scripts/setup.sh into
 * .cache/chrony/, never installed): the config kvmctl writes keeps chronyd running on a machine
 * without /dev/ptp0 (this one: TCG, no kvm-ptp), where the old `refclock PHC /dev/ptp0` line was
 * fatal. The gate script runs for real against a fake sysfs (paths substituted in its text; its
 * `modprobe` is replaced so the host kernel is not touched) to show it writes the refclock only for
 * a PTP clock named "KVM virtual PTP" that is a character device. chronyd runs with -x (never
 * touches the host clock), port 0 and cmdport 0 (no sockets), all files in a temp dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { CONF_DIR, GATE_SCRIPT, PTP_CONF, timeSyncPlan } from '../../src/guest/time-sync.js';

const ROOT = path.join(import.meta.dirname, '../../.cache/chrony');
const chronyd = fs.existsSync(ROOT) ? fs.readdirSync(ROOT).map((d) => path.join(ROOT, d, 'usr/sbin/chronyd')).find((f) => fs.existsSync(f)) : undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-chrony-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The generated chrony.conf with its paths moved into dir, plus what keeps chronyd off the network. */
function confIn(dir: string, text: string): string {
  const f = path.join(dir, 'chrony.conf');
  const body = text.replaceAll(CONF_DIR, path.join(dir, 'conf.d')).replace('/var/lib/chrony/drift', path.join(dir, 'drift'));
  fs.writeFileSync(f, `${body}pidfile ${path.join(dir, 'chronyd.pid')}\ncmdport 0\nport 0\n`);
  return f;
}

/** chronyd in the foreground for 2 s: rc 1 in both cases, so the log tells a fatal error from the timeout. */
async function runChronyd(conf: string): Promise<string> {
  const r = await run([chronyd!, '-x', '-d', '-u', 'root', '-f', conf, '-t', '2'], { allowFailure: true, timeoutMs: 20_000 });
  return `${r.stdout}${r.stderr}`;
}

/** The gate script with its sysfs, /dev and conf paths moved under dir, and no modprobe. */
function gateIn(dir: string): string {
  const f = path.join(dir, 'gate.sh');
  const text = GATE_SCRIPT.replace('modprobe ptp_kvm', 'true')
    .replaceAll('/sys/class/ptp', path.join(dir, 'sys/class/ptp'))
    .replaceAll('/dev/', `${path.join(dir, 'dev')}/`)
    .replace(PTP_CONF, path.join(dir, 'conf.d/ptp-kvm.conf'));
  fs.writeFileSync(f, text, { mode: 0o755 });
  return f;
}

function fakePtp(dir: string, n: number, clockName: string, charDev: boolean): Promise<unknown> {
  fs.mkdirSync(path.join(dir, `sys/class/ptp/ptp${n}`), { recursive: true });
  fs.writeFileSync(path.join(dir, `sys/class/ptp/ptp${n}/clock_name`), `${clockName}\n`);
  fs.mkdirSync(path.join(dir, 'dev'), { recursive: true });
  const dev = path.join(dir, `dev/ptp${n}`);
  if (!charDev) {
    fs.writeFileSync(dev, '');
    return Promise.resolve();
  }
  return run(['mknod', dev, 'c', '1', '3']);
}

describe.skipIf(!chronyd)('time-sync with a real chronyd', () => {
  it.skipIf(fs.existsSync('/dev/ptp0'))('the old refclock line on a missing /dev/ptp0 is fatal for chronyd (why the config changed)', async () => {
    const d = fs.mkdtempSync(path.join(tmp, 'old-'));
    const log = await runChronyd(confIn(d, 'refclock PHC /dev/ptp0 poll 2\nmakestep 1.0 3\ndriftfile /var/lib/chrony/drift\n'));
    expect(log).toMatch(/Fatal error.*PHC/);
  });

  it('without a PTP clock: the gate writes no refclock, and chronyd runs on the NTP fallback until its timeout', async () => {
    const d = fs.mkdtempSync(path.join(tmp, 'ntp-'));
    const plan = timeSyncPlan({ init: 'systemd', sources: [{ kind: 'server', host: '127.0.0.1' }] });
    const gate = await run(['sh', gateIn(d)]);
    expect(gate.exitCode).toBe(0);
    expect(fs.existsSync(path.join(d, 'conf.d/ptp-kvm.conf'))).toBe(false);
    const log = await runChronyd(confIn(d, plan.chronyConf));
    expect(log).not.toMatch(/Fatal/);
    expect(log).toMatch(/Timeout reached/);
  });

  it('with a "KVM virtual PTP" char device: the refclock names that device (by name, not number); a NIC clock or a plain file is not taken', async () => {
    const d = fs.mkdtempSync(path.join(tmp, 'ptp-'));
    await fakePtp(d, 0, 'e1000e', true);
    await fakePtp(d, 1, 'KVM virtual PTP', true);
    await run(['sh', gateIn(d)]);
    expect(fs.readFileSync(path.join(d, 'conf.d/ptp-kvm.conf'), 'utf8')).toBe(`refclock PHC ${path.join(d, 'dev/ptp1')} poll 2 prefer\n`);

    // the clock gone (a migration to a TCG host): the next start removes the line again
    fs.rmSync(path.join(d, 'dev/ptp1'));
    fs.writeFileSync(path.join(d, 'dev/ptp1'), '');
    await run(['sh', gateIn(d)]);
    expect(fs.existsSync(path.join(d, 'conf.d/ptp-kvm.conf'))).toBe(false);
  });
});
