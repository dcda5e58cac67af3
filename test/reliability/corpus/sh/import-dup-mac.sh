qemu-system-x86_64 -name a \
  -netdev tap,id=n0,ifname=t0 -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01 \
  -netdev tap,id=n1,ifname=t1 -device virtio-net-pci,netdev=n1,mac=52:54:00:00:00:01
