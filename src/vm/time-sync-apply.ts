/**
 * `kvmctl guest time-sync VM --apply`: carry out a time-sync plan (src/guest/time-sync.ts) inside
 * a running guest through its agent — write the files and chrony.conf, turn other time daemons
 * off, (re)start chrony — then read `chronyc -n sources` back. Every step is an argv run by the
 * agent (guest-exec), never a shell string; a step that fails stops the rest and is reported.
 */
import { KvmError } from '../errors.js';
import type { Paths } from '../host/paths.js';
import type { TimeSyncPlan } from '../guest/time-sync.js';
import { withAgent } from './guest-agent.js';
import * as C from '../qga/commands.js';

export type ApplyStep = { argv: string[]; exitCode?: number; stderr?: string; optional?: boolean };
export type TimeSyncApplied = { steps: ApplyStep[]; chronyConf: string; sources: string; source: 'ptp' | 'ntp' };

/** The argv steps of a plan (pure, for tests): file writes come first, then the init system's. */
export function applySteps(plan: TimeSyncPlan, chronyConfPath: string): { argv: string[]; input?: string; optional?: boolean }[] {
  type Step = { argv: string[]; input?: string; optional?: boolean };
  const write = (path: string, mode: string, content: string): Step => ({ argv: ['/usr/bin/install', '-D', '-m', mode, '/dev/stdin', path], input: content });
  const steps: Step[] = [...plan.files.map((f) => write(f.path, f.mode, f.content)), write(chronyConfPath, '0644', plan.chronyConf)];
  if (plan.init === 'systemd') {
    steps.push(write('/etc/modules-load.d/ptp_kvm.conf', '0644', 'ptp_kvm\n'));
    steps.push({ argv: ['/bin/systemctl', 'disable', '--now', 'systemd-timesyncd.service'], optional: true });
    steps.push({ argv: ['/bin/systemctl', 'daemon-reload'] });
    steps.push({ argv: ['/bin/systemctl', 'enable', 'chrony.service'] });
    steps.push({ argv: ['/bin/systemctl', 'restart', 'chrony.service'] });
  } else {
    steps.push({ argv: ['/sbin/rc-update', 'add', 'kvmctl-ptp', 'default'] });
    steps.push({ argv: ['/sbin/rc-update', 'add', 'chronyd', 'default'] });
    steps.push({ argv: ['/sbin/rc-service', 'chronyd', 'restart'] });
  }
  return steps;
}

export async function applyTimeSync(paths: Paths, name: string, plan: TimeSyncPlan): Promise<TimeSyncApplied> {
  return withAgent(paths, name, async (a) => {
    // Debian/Ubuntu keep chrony.conf in /etc/chrony/, Fedora/Arch/Alpine in /etc/.
    const probe = await C.exec(a, ['/usr/bin/test', '-e', '/etc/chrony/chrony.conf']);
    const confPath = probe.exitCode === 0 ? '/etc/chrony/chrony.conf' : '/etc/chrony.conf';
    const done: ApplyStep[] = [];
    for (const s of applySteps(plan, confPath)) {
      const r = await C.exec(a, s.argv, { input: s.input, timeoutMs: 60_000 });
      done.push({ argv: s.argv, exitCode: r.exitCode, ...(r.exitCode ? { stderr: r.stderr.trim() } : {}), ...(s.optional ? { optional: true } : {}) });
      if (r.exitCode && !s.optional) {
        throw new KvmError('TIME_SYNC_FAILED', `in VM "${name}": ${s.argv.join(' ')} exited ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`, {
          hint: 'the steps before it were done; kvmctl guest time-sync NAME (without --apply) prints them all to do by hand',
          details: { steps: done },
        });
      }
    }
    // chronyd needs a moment to read its config and resolve its sources.
    let sources = '';
    for (let i = 0; i < 20; i++) {
      const r = await C.exec(a, ['/usr/bin/chronyc', '-n', 'sources']);
      sources = r.stdout;
      if (r.exitCode === 0 && /^\^|^#/m.test(sources)) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    return { steps: done, chronyConf: confPath, sources, source: /^#.\s+PHC/m.test(sources) ? 'ptp' : 'ntp' };
  });
}
