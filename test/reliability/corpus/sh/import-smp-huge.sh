qemu-system-x86_64 -name a -smp 5000
