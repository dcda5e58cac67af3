qemu-system-x86_64 -name a -machine 'Q35!'
