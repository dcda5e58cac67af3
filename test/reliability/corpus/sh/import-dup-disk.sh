qemu-system-x86_64 -name a -drive file=a.img -drive file=a.img
