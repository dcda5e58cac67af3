/** Direct kernel boot: a kernel path from the definition, or the builtin test guest (built on demand). */
import type { Paths } from '../host/paths.js';
import type { VmSpec } from '../definition/vm.js';
import { effectiveFirmware, effectiveTpm } from '../definition/vm-effective.js';

export type ResolvedKernel = { path: string; initrd?: string; append?: string; notBuilt?: boolean };

export async function resolveKernel(vm: VmSpec, paths: Paths, opts: { build: boolean; log?: (m: string) => void }): Promise<ResolvedKernel | undefined> {
  const k = vm.kernel;
  if (!k) return undefined;
  if (k.path) return { path: k.path, initrd: k.initrd, append: k.append };
  const tg = await import('../guest/test-guest.js');
  const m = opts.build ? await tg.ensureTestGuest(paths, { log: opts.log }) : await tg.findTestGuest(paths);
  const append = [m?.appendDefault ?? tg.APPEND_DEFAULT, k.append].filter(Boolean).join(' ');
  if (!m) return { path: '<test-guest kernel: not built yet, run kvmctl image test-guest>', initrd: '<test-guest initrd>', append, notBuilt: true };
  // The PVH vmlinux is loaded by SeaBIOS's PVH option ROM only; UEFI (OVMF) boots the bzImage's EFI stub.
  // With a TPM, SeaBIOS reserves a TPM event log at the top of RAM, which moves its ACPI tables down
  // into the range where QEMU 7.2's PVH loader puts the initrd: the guest then finds a garbled RSDT,
  // disables ACPI and never sees the TPM (measured: RAMDISK ends at 0x0ffd7fff, RSDT at 0x0ffd2539).
  // The bzImage path keeps the tables intact, so a VM with a TPM boots the bzImage (≈3 s slower).
  const pvh = effectiveFirmware(vm) === 'bios' && !effectiveTpm(vm) ? m.vmlinux : undefined;
  return { path: pvh ?? m.kernel, initrd: k.initrd ?? m.initrd, append };
}
