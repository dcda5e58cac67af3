/**
 * The test guest's /init (busybox ash, PID 1) and the small scripts beside it.
 *
 * Kernel command line understood by /init (all optional):
 *   kvt.ip0=ADDR/PREFIX   static address for eth0       kvt.ip1=ADDR/PREFIX  same for eth1
 *   kvt.gw=ADDR           default route                 kvt.dhcp=eth0        udhcpc on that interface
 *   kvt.9p=TAG:/mnt/P[,TAG2:/mnt/P2]  mount 9p shares (trans=virtio, version=9p2000.L)
 *   kvt.hostname=NAME     kvt.noacpi=1 (ignore the ACPI power button, to test forced stops)
 * Serial console lines: READY_MARKER when the shell is about to start, POWEROFF_MARKER when the
 * power button was pressed, and `kvt: ...` lines for anything that went wrong.
 */

export const READY_MARKER = 'KVMCTL-GUEST-READY';
export const POWEROFF_MARKER = 'KVMCTL-GUEST-POWEROFF';

/** Where the modules sit inside the initramfs. */
export const MODULE_DIR = '/lib/modules';

/**
 * /init. `modules` are file names in MODULE_DIR, in load order; a failure to load one of
 * `optional` (e.g. ptp_kvm.ko, which refuses to load without KVM) is not reported.
 */
export function initScript(opts: { modules: readonly string[]; optional?: readonly string[]; kernelVersion: string; devices?: Record<string, string> }): string {
  for (const m of [...opts.modules, ...(opts.optional ?? [])]) if (!/^[A-Za-z0-9_.-]+$/.test(m)) throw new RangeError(`bad module file name: ${m}`);
  const dev = opts.devices ?? {};
  for (const d of Object.values(dev)) if (!/^(0x[0-9a-f]{4}|later)$/.test(d)) throw new RangeError(`bad device id: ${d}`);
  // module:device words; a module with no device loads at once.
  const plan = opts.modules.map((m) => (dev[m] ? `${m}:${dev[m]}` : m)).join(' ');
  return `#!/bin/busybox sh
# kvmctl test guest init (kernel ${opts.kernelVersion}); see src/guest/init-script.ts
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=vt100
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp /mnt /var/run /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
say() { echo "kvt: $*" >/dev/console; }

OPTIONAL=" ${(opts.optional ?? []).join(' ')} "
load() {
  insmod ${MODULE_DIR}/$1 2>/tmp/insmod.$1.err && { rm -f /tmp/insmod.$1.err; return; }
  case "$OPTIONAL" in *" $1 "*) rm -f /tmp/insmod.$1.err; return ;; esac
  grep -q 'File exists' /tmp/insmod.$1.err || say "insmod $1 failed: $(cat /tmp/insmod.$1.err)"
  rm -f /tmp/insmod.$1.err
}
# Drivers for devices this VM has load now (the transports first, which find the devices); the
# others load after the ready marker, in the background, for devices hot-plugged later.
LATER=
for w in ${plan}; do
  m="\${w%%:*}"; d="\${w#*:}"
  if [ "$d" = "$w" ] || grep -qx "$d" /sys/bus/virtio/devices/*/device 2>/dev/null || { [ "$d" = 0x0009 ] && grep -q 'kvt[.]9p=' /proc/cmdline; }; then load "$m"; else LATER="$LATER $m"; fi
done
# Keep kernel chatter off the serial shell a test reads from.
echo 1 >/proc/sys/kernel/printk

IP0= IP1= GW= DHCP= SHARES= NAME=kvt-guest NOACPI=
for w in $(cat /proc/cmdline); do
  case "$w" in
    kvt.ip0=*) IP0="\${w#kvt.ip0=}" ;;
    kvt.ip1=*) IP1="\${w#kvt.ip1=}" ;;
    kvt.gw=*) GW="\${w#kvt.gw=}" ;;
    kvt.dhcp=*) DHCP="\${w#kvt.dhcp=}" ;;
    kvt.9p=*) SHARES="\${w#kvt.9p=}" ;;
    kvt.hostname=*) NAME="\${w#kvt.hostname=}" ;;
    kvt.noacpi=1) NOACPI=1 ;;
  esac
done

hostname "$NAME"
ip link set lo up
if [ -n "$IP0" ]; then ip addr add "$IP0" dev eth0 && ip link set eth0 up || say "eth0: cannot set $IP0"; fi
if [ -n "$IP1" ]; then ip addr add "$IP1" dev eth1 && ip link set eth1 up || say "eth1: cannot set $IP1"; fi
if [ -n "$GW" ]; then ip route add default via "$GW" || say "cannot add default route via $GW"; fi
for i in $(echo "$DHCP" | tr ',' ' '); do
  ip link set "$i" up
  udhcpc -i "$i" -s /etc/udhcpc.script -t 10 -T 1 -b -S >/dev/null 2>&1 || say "$i: DHCP failed"
done

for s in $(echo "$SHARES" | tr ',' ' '); do
  tag="\${s%%:*}"; dir="\${s#*:}"
  [ "$dir" = "$s" ] && dir="/mnt/$tag"
  mkdir -p "$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L "$tag" "$dir" || say "9p share $tag: mount on $dir failed"
done

# acpid runs /etc/acpi/PWRF/00000080 on the power button (it daemonizes; its log must be writable).
if [ -z "$NOACPI" ]; then acpid -c /etc/acpi -a /etc/acpid.conf -l /var/log/acpid.log || say "acpid did not start"; fi

echo
echo ${READY_MARKER}
( for m in $LATER; do load "$m"; done ) &
while :; do
  setsid cttyhack sh -l
  sleep 0.2
done
`;
}

/** Run by busybox acpid (from /etc/acpi) when the power button is pressed. */
export function powerButtonScript(): string {
  return `#!/bin/sh
# on its own line, even after a prompt
printf '\n%s\n' ${POWEROFF_MARKER} >/dev/console
sync
poweroff -f
`;
}

/** busybox udhcpc hook: applies the lease (address, router, DNS). */
export function udhcpcScript(): string {
  return `#!/bin/sh
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route del default dev "$interface" 2>/dev/null
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
`;
}

/** A root login shell's profile: a short prompt that is easy to wait for. */
export function profileScript(): string {
  return `export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=vt100
PS1='# '
cd /root
`;
}
