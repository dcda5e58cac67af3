#!/usr/bin/env bash
# Installs everything kvmctl, its demo and its tests need on a fresh Debian 12 machine (as root),
# and skips what is already there: Debian packages, npm packages, the compiled CLI, and the tiny
# test guest (a Debian kernel + busybox, fetched with apt-get download, never installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(qemu-system-x86 qemu-utils iproute2 genisoimage attr chromium etcd-server etcd-client nftables dnsmasq-base ovmf swtpm swtpm-tools mmdebstrap dosfstools mtools fdisk e2fsprogs libvirt-clients ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building" >&2
npx tsc -p tsconfig.json
node scripts/bundle.mjs
# The web UI (served by `kvmctl serve` from dist/web).
npx vite build --config web/vite.config.ts --logLevel warn

# The test guest, cached once per machine (shared by the demo, the tests and the benchmarks).
export KVMCTL_GUEST_CACHE="${KVMCTL_GUEST_CACHE:-$PWD/.cache/guest}"
node bin/kvmctl.js image test-guest >/dev/null
# chronyd for the time-sync test, extracted from Debian's package (never installed: the host's
# own time daemon is not touched), cached per package version.
chrony_deb="$(apt-cache show --no-all-versions chrony 2>/dev/null | sed -n 's/^Filename: .*\///p' | head -1)"
if [ -n "$chrony_deb" ] && [ ! -x ".cache/chrony/$chrony_deb/usr/sbin/chronyd" ]; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && apt-get download -qq chrony >/dev/null 2>&1); then
    mkdir -p ".cache/chrony/$chrony_deb"
    dpkg-deb -x "$tmp"/chrony_*.deb ".cache/chrony/$chrony_deb"
  else
    echo "setup: could not download chrony (the time-sync test will be skipped)" >&2
  fi
  rm -rf "$tmp"
fi
echo "setup: done" >&2
