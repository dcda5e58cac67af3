qemu-system-x86_64 -name a -netdev tap,id=n0,ifname=t0 -device virtio-net-pci,netdev=n0,mac=01:00:00:00:00:01
