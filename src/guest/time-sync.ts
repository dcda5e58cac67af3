/**
 * Guest time sync (the seed's §7): chrony follows the host's clock through the KVM virtual PTP
 * clock when the guest has one, and NTP otherwise. A `refclock PHC /dev/ptp0` line is a fatal
 * error for chronyd when the device is missing (TCG, a host without kvm-ptp, a guest kernel
 * without ptp_kvm), so chrony.conf itself never names the device: a small script that runs before
 * chronyd at every start writes the refclock line into a conf.d file only when a PTP clock named
 * "KVM virtual PTP" exists, and removes it otherwise; the NTP sources are always there as the
 * fallback (and lose to the PHC, which is `prefer`red, when it is there).
 * Pure: returns the texts; `kvmctl guest time-sync` prints them.
 */
import { GROUPS, type GuestOption } from './kernel-fragment.js';
import { NTP_HOST_RE, type VmSpec } from '../definition/vm.js';
import type { NetworkSpec } from '../definition/network.js';

export type InitSystem = 'openrc' | 'systemd';

/** An NTP source: `server HOST iburst` or `pool HOST iburst`. */
export type NtpSource = { kind: 'server' | 'pool'; host: string };

export type TimeSyncInput = {
  init?: InitSystem;
  /** NTP fallback sources, in order. Default: the public pool (the CLI passes the host's address when it knows it). */
  sources?: NtpSource[];
  /** Where the sources came from, said in the config's comment. */
  sourcesFrom?: string;
  /** The VM is known to run without KVM (TCG): it will have no PTP clock and use NTP only. */
  tcg?: boolean;
};

export type GuestFile = { path: string; mode: string; content: string };

export type TimeSyncPlan = {
  init: InitSystem;
  /** 'ptp-or-ntp': PHC when the guest has it, else NTP; 'ntp': the VM runs under TCG. */
  expect: 'ptp-or-ntp' | 'ntp';
  sources: NtpSource[];
  /** Where chrony reads its config (Gentoo/Alpine vs Debian/Ubuntu). */
  chronyConfPaths: string[];
  chronyConf: string;
  /** Files to write in the guest besides chrony.conf. */
  files: GuestFile[];
  /** Commands to run in the guest, as root, in order. */
  steps: string[];
  kernelOptions: Pick<GuestOption, 'name' | 'value' | 'menuconfig' | 'why'>[];
  caveats: string[];
};

export const CONF_DIR = '/etc/chrony/kvmctl.d';
export const PTP_CONF = `${CONF_DIR}/ptp-kvm.conf`;
export const GATE_PATH = '/usr/local/sbin/kvmctl-ptp-refclock';
export const DEFAULT_SOURCES: NtpSource[] = [{ kind: 'pool', host: 'pool.ntp.org' }];

/** Whether a string can go into a server/pool line as is (no spaces, no chrony options smuggled in). */
export function validNtpHost(h: string): boolean {
  return NTP_HOST_RE.test(h);
}

export function chronyConf(sources: NtpSource[], sourcesFrom: string): string {
  return [
    '# chrony.conf written by kvmctl guest time-sync',
    '# 1. The KVM virtual PTP clock (ptp_kvm), when this guest has one: ' + GATE_PATH,
    `#    runs before chronyd at every start and writes its refclock line to ${PTP_CONF}`,
    '#    only if the clock exists (a refclock on a missing /dev/ptp0 would stop chronyd).',
    `confdir ${CONF_DIR}`,
    `# 2. NTP (${sourcesFrom}): the fallback, and the only source without KVM (TCG).`,
    ...sources.map((s) => `${s.kind} ${s.host} iburst`),
    '# Step (not slew) the clock when it is more than 1 s off during the first 3 updates',
    '# (first boot, resume, after a migration).',
    'makestep 1.0 3',
    'driftfile /var/lib/chrony/drift',
    '',
  ].join('\n');
}

/** The script that picks the PTP clock: by name, not by number (a passthrough NIC may be ptp0). */
export const GATE_SCRIPT = `#!/bin/sh
# Written by kvmctl guest time-sync. Runs before chronyd: use the KVM virtual PTP clock as
# chrony's refclock when the guest has one, and nothing (NTP only) when it has not.
conf=${PTP_CONF}
mkdir -p "\${conf%/*}"
modprobe ptp_kvm 2>/dev/null
for name in /sys/class/ptp/ptp*/clock_name; do
  [ -r "$name" ] || continue
  if [ "$(cat "$name")" = "KVM virtual PTP" ]; then
    dev=/dev/\${name#/sys/class/ptp/}
    dev=\${dev%/clock_name}
    if [ -c "$dev" ]; then
      echo "refclock PHC $dev poll 2 prefer" > "$conf"
      exit 0
    fi
  fi
done
rm -f "$conf"
exit 0
`;

const HOOK_FILES: Record<InitSystem, GuestFile> = {
  systemd: {
    path: '/etc/systemd/system/chrony.service.d/kvmctl-ptp.conf',
    mode: '0644',
    content: `# Written by kvmctl guest time-sync (chronyd.service.d/ on Fedora and Arch)\n[Service]\nExecStartPre=${GATE_PATH}\n`,
  },
  openrc: {
    path: '/etc/init.d/kvmctl-ptp',
    mode: '0755',
    content: `#!/sbin/openrc-run\n# Written by kvmctl guest time-sync\ndescription="Point chrony at the KVM PTP clock when the guest has one"\ndepend() {\n\tbefore chronyd\n\tafter modules\n}\nstart() {\n\tebegin "Choosing chrony's time source"\n\t${GATE_PATH}\n\teend $?\n}\n`,
  },
};

const MODULE_STEPS: Record<InitSystem, string[]> = {
  openrc: ["echo 'modules=\"ptp_kvm\"' >> /etc/conf.d/modules   # load it at every boot (skip when CONFIG_PTP_1588_CLOCK_KVM=y)"],
  systemd: ['echo ptp_kvm > /etc/modules-load.d/ptp_kvm.conf   # load it at every boot (skip when CONFIG_PTP_1588_CLOCK_KVM=y)'],
};

const SERVICE_STEPS: Record<InitSystem, string[]> = {
  openrc: [
    '# write chrony.conf below to /etc/chrony/chrony.conf (Gentoo, Alpine: /etc/chrony.conf), and the files above',
    'rc-update del hwclock boot   # the kernel sets the clock from the RTC (RTC_HCTOSYS)',
    'rc-update del ntpd default 2>/dev/null; rc-update del ntp-client default 2>/dev/null   # no other time daemon',
    'rc-update add kvmctl-ptp default',
    'rc-update add chronyd default',
    'rc-service chronyd restart   # kvmctl-ptp runs first (it is "before chronyd")',
    'chronyc sources   # with KVM: #* PHC0 ... offsets in ns to µs; without: the NTP sources',
  ],
  systemd: [
    '# write chrony.conf below to /etc/chrony/chrony.conf (Debian, Ubuntu) or /etc/chrony.conf (Fedora, Arch), and the files above',
    'systemctl disable --now systemd-timesyncd.service 2>/dev/null   # no other time daemon',
    'systemctl daemon-reload',
    'systemctl enable chrony.service && systemctl restart chrony.service   # chronyd.service on Fedora and Arch',
    'timedatectl set-local-rtc 0   # the RTC keeps UTC; systemd runs no hwclock at boot, the kernel sets the clock (RTC_HCTOSYS)',
    'chronyc sources   # with KVM: #* PHC0 ... offsets in ns to µs; without: the NTP sources',
  ],
};

export const CAVEATS = [
  'The PTP clock exists only in x86 KVM guests: ptp_kvm asks the host through a KVM hypercall (KVM_HC_CLOCK_PAIRING). Under TCG (no KVM, as on a host without vmx/svm) there is no such clock, and chrony uses the NTP sources only.',
  'The host must run on the tsc clocksource (kvmctl host check shows it); otherwise the hypercall fails, ptp_kvm does not load ("fail to initialize ptp_kvm") and the guest falls back to NTP.',
  "NTP from the host's address needs an NTP server on the host that answers the guests' network (chrony: an `allow` line for the subnet).",
  'The NTP error bounds are lost with the PHC: a refclock has no root delay or dispersion, so the guest trusts the host clock completely. Keep the host itself synced, and do not serve NTP from such a guest as if it were a stratum-1 source.',
  'The script finds the clock by its name ("KVM virtual PTP"), so a passthrough NIC with its own hardware clock at /dev/ptp0 is not taken for it.',
  'After a live migration or a resume the clock can jump: makestep lets chrony step it on its first updates. A guest migrated between KVM and TCG hosts changes source at the next chronyd start.',
];

export function timeSyncPlan(input: TimeSyncInput | InitSystem = {}): TimeSyncPlan {
  const i: TimeSyncInput = typeof input === 'string' ? { init: input } : input;
  const init = i.init ?? 'openrc';
  const sources = i.sources?.length ? i.sources : DEFAULT_SOURCES;
  const opts = [...GROUPS['kvm-guest'], ...GROUPS.ptp, ...GROUPS.rtc];
  return {
    init,
    expect: i.tcg ? 'ntp' : 'ptp-or-ntp',
    sources,
    chronyConfPaths: ['/etc/chrony/chrony.conf', '/etc/chrony.conf'],
    chronyConf: chronyConf(sources, i.sourcesFrom ?? (i.sources?.length ? 'given' : 'the public pool; --server HOST or timeSync.servers in the definition to use your own')),
    files: [{ path: GATE_PATH, mode: '0755', content: GATE_SCRIPT }, HOOK_FILES[init]],
    steps: [...MODULE_STEPS[init], ...SERVICE_STEPS[init]],
    kernelOptions: opts.map((o) => ({ name: o.name, value: o.value, menuconfig: o.menuconfig, why: o.why })),
    caveats: CAVEATS,
  };
}

export function formatTimeSync(p: TimeSyncPlan): string {
  const out: string[] = [];
  if (p.expect === 'ntp') out.push('# This VM runs without KVM (TCG) here: it has no PTP clock and will sync by NTP only.', '');
  out.push('# 1. Guest kernel options (kvmctl guest kernel-config --check /path/to/.config checks them)');
  for (const o of p.kernelOptions) out.push(`CONFIG_${o.name}=${o.value}    # ${o.menuconfig}`);
  out.push('', '# 2. Files in the guest');
  for (const f of p.files) out.push(`# ${f.path} (mode ${f.mode})`, f.content.trimEnd(), '');
  out.push(`# 3. Steps in the guest (${p.init}), as root`);
  out.push(...p.steps);
  out.push('', `# 4. chrony.conf (${p.chronyConfPaths.join(' or ')})`);
  out.push(p.chronyConf.trimEnd());
  out.push('', '# 5. Caveats');
  for (const c of p.caveats) out.push(`# - ${c}`);
  return `${out.join('\n')}\n`;
}

/** The host's own address on a network, if it has one (nat: address; bridge/host-only: the first of addresses). */
function hostAddressOn(n: NetworkSpec): string | undefined {
  const a = 'address' in n && typeof n.address === 'string' ? n.address : 'addresses' in n && Array.isArray(n.addresses) ? n.addresses[0] : undefined;
  return a?.split('/')[0];
}

/**
 * NTP sources for a VM: its definition's timeSync servers and pools, else the host's address on
 * the first of its networks that has one, else the public pool.
 */
export function sourcesForVm(vm: VmSpec, network: (name: string) => NetworkSpec | undefined): { sources: NtpSource[]; from: string } {
  const own = [...(vm.timeSync?.servers ?? []).map((host) => ({ kind: 'server' as const, host })), ...(vm.timeSync?.pools ?? []).map((host) => ({ kind: 'pool' as const, host }))];
  if (own.length) return { sources: own, from: `timeSync in ${vm.name}'s definition` };
  for (const nic of vm.nics) {
    const n = nic.network ? network(nic.network) : undefined;
    const addr = n && hostAddressOn(n);
    if (addr) return { sources: [{ kind: 'server', host: addr }], from: `the host's address on network ${n.name}` };
  }
  return { sources: DEFAULT_SOURCES, from: `the public pool: ${vm.name} is on no network with a host address; set timeSync.servers` };
}
