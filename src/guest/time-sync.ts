/**
 * Guest time sync to the host through the KVM PTP clock (the seed's §7): chrony with only
 * `refclock PHC /dev/ptp0 poll 2`, hwclock out of the boot runlevel, the kernel setting the clock
 * from the RTC at boot. Pure: returns the texts; `kvmctl guest time-sync` prints them.
 */
import { GROUPS, type GuestOption } from './kernel-fragment.js';

export type InitSystem = 'openrc' | 'systemd';

export type TimeSyncPlan = {
  init: InitSystem;
  /** Where chrony reads its config (Gentoo/Alpine vs Debian/Ubuntu). */
  chronyConfPaths: string[];
  chronyConf: string;
  /** Commands to run in the guest, as root, in order. */
  steps: string[];
  kernelOptions: Pick<GuestOption, 'name' | 'value' | 'menuconfig' | 'why'>[];
  caveats: string[];
};

export const CHRONY_CONF = `# chrony.conf written by kvmctl guest time-sync
# The guest follows the host's clock through the KVM virtual PTP clock (ptp_kvm → /dev/ptp0).
# No server/pool lines: virtual NICs have no hardware timestamps, NTP over them is far less exact.
refclock PHC /dev/ptp0 poll 2
# Step (not slew) the clock when it is more than 1 s off during the first 3 updates
# (first boot, resume, after a migration).
makestep 1.0 3
driftfile /var/lib/chrony/drift
`;

const MODULE_STEPS: Record<InitSystem, string[]> = {
  openrc: [
    'modprobe ptp_kvm   # skip when CONFIG_PTP_1588_CLOCK_KVM=y',
    "echo 'modules=\"ptp_kvm\"' >> /etc/conf.d/modules   # load it at every boot (before chronyd)",
  ],
  systemd: [
    'modprobe ptp_kvm   # skip when CONFIG_PTP_1588_CLOCK_KVM=y',
    'echo ptp_kvm > /etc/modules-load.d/ptp_kvm.conf   # load it at every boot (before chronyd)',
  ],
};

const SERVICE_STEPS: Record<InitSystem, string[]> = {
  openrc: [
    'ls -l /dev/ptp0   # must exist; cat /sys/class/ptp/ptp0/clock_name says "KVM virtual PTP"',
    '# write the chrony.conf below to /etc/chrony/chrony.conf (Gentoo, Alpine: /etc/chrony.conf)',
    'rc-update del hwclock boot   # the kernel sets the clock from the RTC (RTC_HCTOSYS)',
    'rc-update del ntpd default 2>/dev/null; rc-update del ntp-client default 2>/dev/null   # no other time daemon',
    'rc-update add chronyd default',
    'rc-service chronyd restart',
    'chronyc sources   # expect: #* PHC0 ... with an offset in nanoseconds to microseconds',
  ],
  systemd: [
    'ls -l /dev/ptp0   # must exist; cat /sys/class/ptp/ptp0/clock_name says "KVM virtual PTP"',
    '# write the chrony.conf below to /etc/chrony/chrony.conf (Debian, Ubuntu) or /etc/chrony.conf (Fedora, Arch)',
    '# and remove the pool/server and sourcedir lines of the distribution file',
    'systemctl disable --now systemd-timesyncd.service 2>/dev/null   # no other time daemon',
    'systemctl enable --now chrony.service   # chronyd.service on Fedora and Arch',
    'timedatectl set-local-rtc 0   # the RTC keeps UTC; systemd runs no hwclock at boot, the kernel sets the clock (RTC_HCTOSYS)',
    'chronyc sources   # expect: #* PHC0 ... with an offset in nanoseconds to microseconds',
  ],
};

export const CAVEATS = [
  'x86 KVM guests only: the x86 ptp_kvm driver asks the host through a KVM hypercall (KVM_HC_CLOCK_PAIRING); under TCG (no KVM, as on a host without vmx/svm) there is no /dev/ptp0.',
  'The host must run on the tsc clocksource (kvmctl host check shows it); otherwise the hypercall fails and ptp_kvm does not load ("fail to initialize ptp_kvm").',
  'The NTP error bounds are lost: a PHC refclock has no root delay or dispersion, so the guest trusts the host clock completely. Keep the host itself synced (NTP or PTP), and do not serve NTP from such a guest to other machines as if it were a real stratum-1 source.',
  'ptp_kvm must be loaded before chronyd starts (=m: list it in the modules to load at boot); without it /dev/ptp0 does not exist and chronyd logs that it cannot open it.',
  'If the guest also has a NIC with a hardware clock (PCI passthrough), /dev/ptp0 may be that NIC: use /dev/ptp_kvm (a udev symlink) or check /sys/class/ptp/ptpN/clock_name.',
  'After a live migration or a resume the clock can jump: makestep lets chrony step it on its first updates.',
];

export function timeSyncPlan(init: InitSystem = 'openrc'): TimeSyncPlan {
  const opts = [...GROUPS['kvm-guest'], ...GROUPS.ptp, ...GROUPS.rtc];
  return {
    init,
    chronyConfPaths: ['/etc/chrony/chrony.conf', '/etc/chrony.conf'],
    chronyConf: CHRONY_CONF,
    steps: [...MODULE_STEPS[init], ...SERVICE_STEPS[init]],
    kernelOptions: opts.map((o) => ({ name: o.name, value: o.value, menuconfig: o.menuconfig, why: o.why })),
    caveats: CAVEATS,
  };
}

export function formatTimeSync(p: TimeSyncPlan): string {
  const out: string[] = [];
  out.push('# 1. Guest kernel options (kvmctl guest kernel-config --check /path/to/.config checks them)');
  for (const o of p.kernelOptions) out.push(`CONFIG_${o.name}=${o.value}    # ${o.menuconfig}`);
  out.push('', `# 2. Steps in the guest (${p.init}), as root`);
  out.push(...p.steps);
  out.push('', `# 3. chrony.conf (${p.chronyConfPaths.join(' or ')})`);
  out.push(p.chronyConf.trimEnd());
  out.push('', '# 4. Caveats');
  for (const c of p.caveats) out.push(`# - ${c}`);
  return `${out.join('\n')}\n`;
}
