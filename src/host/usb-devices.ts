/**
 * The host's USB devices as sysfs lists them (`<sysfs>/bus/usb/devices/B-P[.P…]`, root hubs and
 * interfaces left out): what `kvmctl usb attach` and POST /api/vms/NAME/usb can plug into a guest,
 * by VENDOR:PRODUCT or BUS-PORT. The sysfs root is KVMCTL_SYSFS (tests: test/fixtures/sysfs/usb);
 * a host without USB (this development machine has no /sys/bus/usb) has an empty list.
 */
import fs from 'node:fs';
import path from 'node:path';

export type HostUsbDevice = {
  /** BUS-PORT, as `kvmctl usb attach` takes it (1-1.4). */
  address: string;
  bus: number;
  port: string;
  vendor: string;
  product: string;
  manufacturer?: string;
  name?: string;
  /** Mbit/s as the kernel reports it (480, 5000). */
  speed?: string;
  /** The driver of its first interface (usbhid, cdc_acm, …), when one is bound. */
  driver?: string;
};

const read = (f: string): string | undefined => {
  try {
    return fs.readFileSync(f, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
};

const DEVICE_RE = /^(\d{1,3})-(\d+(?:\.\d+)*)$/;

export function listHostUsb(sysRoot: string): HostUsbDevice[] {
  const dir = path.join(sysRoot, 'bus/usb/devices');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: HostUsbDevice[] = [];
  for (const n of names) {
    const m = DEVICE_RE.exec(n);
    if (!m) continue; // usbN root hubs, N-P:C.I interfaces
    const d = path.join(dir, n);
    const vendor = read(path.join(d, 'idVendor'));
    const product = read(path.join(d, 'idProduct'));
    if (!vendor || !product) continue;
    const iface = names.find((x) => x.startsWith(`${n}:`));
    const drv = iface ? (() => {
      try {
        return path.basename(fs.readlinkSync(path.join(dir, iface, 'driver')));
      } catch {
        return undefined;
      }
    })() : undefined;
    out.push({
      address: n,
      bus: Number(read(path.join(d, 'busnum')) ?? m[1]),
      port: read(path.join(d, 'devpath')) ?? m[2]!,
      vendor: vendor.toLowerCase(),
      product: product.toLowerCase(),
      ...(read(path.join(d, 'manufacturer')) ? { manufacturer: read(path.join(d, 'manufacturer')) } : {}),
      ...(read(path.join(d, 'product')) ? { name: read(path.join(d, 'product')) } : {}),
      ...(read(path.join(d, 'speed')) ? { speed: read(path.join(d, 'speed')) } : {}),
      ...(drv ? { driver: drv } : {}),
    });
  }
  const key = (u: HostUsbDevice) => [u.bus, ...u.port.split('.').map(Number)];
  return out.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
    return 0;
  });
}
