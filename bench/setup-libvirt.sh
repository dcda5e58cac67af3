#!/usr/bin/env bash
# The libvirt comparison's own setup: Debian's libvirt-daemon-system + libvirt-clients (installed
# once, with apt-get), and virtlogd + libvirtd started by hand, since PID 1 here is not systemd.
#   bash bench/setup-libvirt.sh start   → prints "virtlogd=PID libvirtd=PID" (only the ones it started)
#   bash bench/setup-libvirt.sh stop PID...  → ends those daemons by PID
set -euo pipefail

case "${1:-start}" in
start)
  missing=()
  for p in libvirt-daemon-system libvirt-clients; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-libvirt: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The packages' maintainer scripts try to start services; with no systemd and no
    # policy-rc.d that fails harmlessly or is skipped.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
  fi
  started=()
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    mkdir -p /run/libvirt /var/log/libvirt/qemu
    if [ ! -s /run/virtlogd.pid ] || ! kill -0 "$(cat /run/virtlogd.pid)" 2>/dev/null; then
      virtlogd -d
      for _ in $(seq 50); do [ -s /run/virtlogd.pid ] && break; sleep 0.1; done
      started+=("virtlogd=$(cat /run/virtlogd.pid)")
    fi
    libvirtd -d
    for _ in $(seq 300); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.1; done
    started+=("libvirtd=$(cat /run/libvirtd.pid)")
  fi
  virsh -c qemu:///system version >/dev/null
  echo "${started[*]:-}"
  ;;
stop)
  shift
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  ;;
esac
