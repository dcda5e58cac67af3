/** The argv steps `guest time-sync --apply` runs in a guest: files first (install -D from stdin), then the init system's; never a shell. */
import { describe, expect, it } from 'vitest';
import { timeSyncPlan } from '../../../src/guest/time-sync.js';
import { applySteps } from '../../../src/vm/time-sync-apply.js';

describe('guest time-sync --apply steps', () => {
  it('systemd: writes the gate script, its drop-in, chrony.conf and the module file, then restarts chrony', () => {
    const plan = timeSyncPlan({ init: 'systemd', sources: [{ kind: 'server', host: '10.0.0.1' }], tcg: true });
    const s = applySteps(plan, '/etc/chrony/chrony.conf');
    const writes = s.filter((x) => x.argv[0] === '/usr/bin/install').map((x) => x.argv.at(-1));
    expect(writes).toEqual([...plan.files.map((f) => f.path), '/etc/chrony/chrony.conf', '/etc/modules-load.d/ptp_kvm.conf']);
    expect(s.find((x) => x.argv.at(-1) === '/etc/chrony/chrony.conf')!.input).toMatch(/^server 10\.0\.0\.1 iburst$/m);
    expect(s.slice(-2).map((x) => x.argv.join(' '))).toEqual(['/bin/systemctl enable chrony.service', '/bin/systemctl restart chrony.service']);
    expect(s.find((x) => x.argv.includes('systemd-timesyncd.service'))!.optional).toBe(true);
    expect(s.every((x) => !x.argv.some((a) => a === '-c' || a.endsWith('/sh')))).toBe(true);
  });
  it('openrc: adds the services and restarts chronyd', () => {
    const s = applySteps(timeSyncPlan({ init: 'openrc' }), '/etc/chrony.conf');
    expect(s.slice(-3).map((x) => x.argv.join(' '))).toEqual(['/sbin/rc-update add kvmctl-ptp default', '/sbin/rc-update add chronyd default', '/sbin/rc-service chronyd restart']);
  });
});
