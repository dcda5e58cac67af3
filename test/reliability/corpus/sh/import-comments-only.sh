#!/bin/sh
# qemu-system-x86_64 -m 1G
