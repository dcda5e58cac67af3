/**
 * What goes into kvmctl's Debian 12 guest image, as pure data and text (src/guest/debian-image.ts
 * builds it): the package list, the GPT layout (an EFI system partition with Debian's signed shim
 * and GRUB, an ext4 root), the GRUB config, fstab and the network config. Everything here is part
 * of the cache key, so changing any of it makes the next build a new image.
 */
import { createHash } from 'node:crypto';

export const DEBIAN_IMAGE = 'debian-12';
export const SUITE = 'bookworm';
/** Bump when the build changes in a way the texts below do not show. */
const REVISION = 1;

/**
 * The cloud kernel: Debian-signed (Secure Boot), virtio, TPM CRB/TIS, EFI stub, and a third of
 * the generic kernel's modules (a smaller initramfs, a faster boot under TCG).
 */
export const PACKAGES = [
  'linux-image-cloud-amd64', 'systemd-sysv', 'udev', 'qemu-guest-agent',
  'shim-signed', 'grub-efi-amd64-signed', 'e2fsprogs', 'iproute2', 'openssh-server',
  // logind (power button, shutdown scheduling for guest-shutdown) needs D-Bus
  'dbus',
  // cloud-init (NoCloud seed from kvmctl's cloudInit:), time sync, and what the tests check
  'cloud-init', 'locales', 'chrony', 'tpm2-tools', 'mokutil', 'efibootmgr', // locales: cloud-init's locale step runs update-locale
];

export const MIRRORS = (base = 'http://deb.debian.org') => [
  `deb ${base}/debian ${SUITE} main`,
  `deb ${base}/debian ${SUITE}-updates main`,
  `deb ${base}/debian-security ${SUITE}-security main`,
];

export const SECTOR = 512;
export const MIB = 1024 * 1024;
export const ESP_MIB = 64;
export const ROOT_MIB = 4096;
/** Partition starts (bytes) and the whole disk: 1 MiB for the GPT, ESP, root, 1 MiB for the backup GPT. */
export const LAYOUT = { espStart: MIB, espSize: ESP_MIB * MIB, rootStart: (1 + ESP_MIB) * MIB, rootSize: ROOT_MIB * MIB, diskSize: (2 + ESP_MIB + ROOT_MIB) * MIB };

export const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
/** The Discoverable Partitions Specification's x86-64 root type. */
export const ROOT_TYPE = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';

/** sfdisk's input for the disk. */
export function sfdiskScript(): string {
  const s = (b: number) => b / SECTOR;
  return [
    'label: gpt',
    'unit: sectors',
    `start=${s(LAYOUT.espStart)}, size=${s(LAYOUT.espSize)}, type=${ESP_TYPE}, name="EFI system"`,
    `start=${s(LAYOUT.rootStart)}, size=${s(LAYOUT.rootSize)}, type=${ROOT_TYPE}, name="root"`,
    '',
  ].join('\n');
}

export type Ids = { rootUuid: string; espVolid: string };
/** The FAT volume id as Linux shows it (XXXX-XXXX), from the 8 hex digits given to mkfs.fat -i. */
export const espUuid = (volid: string) => `${volid.slice(0, 4)}-${volid.slice(4)}`.toUpperCase();

/**
 * GRUB config for the ESP (EFI/debian/grub.cfg: the signed GRUB's built-in prefix). GRUB checks
 * the kernel's signature through shim, so Secure Boot holds from the firmware to the kernel.
 */
export function grubCfg(ids: Ids, kernelVersion: string): string {
  return [
    'set timeout=0',
    `search --no-floppy --fs-uuid --set=root ${ids.rootUuid}`,
    `linux /boot/vmlinuz-${kernelVersion} root=UUID=${ids.rootUuid} ro console=tty0 console=ttyS0,115200 quiet`,
    `initrd /boot/initrd.img-${kernelVersion}`,
    'boot',
    '',
  ].join('\n');
}

export function fstab(ids: Ids): string {
  return `UUID=${ids.rootUuid} / ext4 errors=remount-ro 0 1\nUUID=${espUuid(ids.espVolid)} /boot/efi vfat umask=0077,nofail 0 2\n`;
}

/** systemd-networkd: DHCP (v4 and v6) on every ethernet NIC. */
export const NETWORK = '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n';

/** Files written into the root after mmdebstrap, relative to it. */
export function rootFiles(ids: Ids): Record<string, string> {
  return {
    'etc/hostname': 'debian12\n',
    'etc/hosts': '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    'etc/fstab': fstab(ids),
    'etc/systemd/network/80-dhcp.network': NETWORK,
    // Only C.UTF-8 exists (no locale-gen run): cloud-init's locale step would fail on en_US.UTF-8.
    'etc/default/locale': 'LANG=C.UTF-8\n',
    'etc/cloud/cloud.cfg.d/90-kvmctl.cfg': "# kvmctl's Debian image\nlocale: C.UTF-8\n",
  };
}

/** Symlinks (unit enablement) made in the root: path → target. */
export const ROOT_LINKS: Record<string, string> = {
  'etc/systemd/system/multi-user.target.wants/systemd-networkd.service': '/lib/systemd/system/systemd-networkd.service',
  'etc/systemd/system/sockets.target.wants/systemd-networkd.socket': '/lib/systemd/system/systemd-networkd.socket',
};

/** mkfs.ext4 features GRUB 2.06 (bookworm's) cannot read are left off. */
export const EXT4_FEATURES = '^metadata_csum_seed,^orphan_file';

let key: string | undefined;
/** The cache key: a hash of everything the image is built from. */
export function imageKey(): string {
  const ids: Ids = { rootUuid: 'R', espVolid: 'E' };
  key ??= createHash('sha256')
    .update(JSON.stringify([REVISION, SUITE, PACKAGES, MIRRORS(), sfdiskScript(), grubCfg(ids, 'K'), rootFiles(ids), ROOT_LINKS, EXT4_FEATURES, LAYOUT]))
    .digest('hex')
    .slice(0, 16);
  return key;
}
