qemu-img create -f qcow2 a.img 1G
