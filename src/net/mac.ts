/** Stable MACs: a NIC without one gets a MAC derived from the VM and NIC names, under QEMU's 52:54:00. */
import { createHash } from 'node:crypto';

export function deriveMac(vmName: string, nicId: string): string {
  const h = createHash('sha256').update(`${vmName}\0${nicId}`).digest();
  return ['52', '54', '00', ...[h[0]!, h[1]!, h[2]!].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
