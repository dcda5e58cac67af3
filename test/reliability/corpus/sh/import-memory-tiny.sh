qemu-system-x86_64 -name a -m 1M
