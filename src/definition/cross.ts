/**
 * Checks across definitions: a NIC that names a network nobody defined, two VMs on one writable
 * disk, two networks on one bridge interface. Pure: callers pass every known definition.
 */
import path from 'node:path';
import type { ErrorIssue } from '../errors.js';
import { type NetworkSpec } from './network.js';
import { bridgeIfname, natNicIssues } from './network-views.js';
import type { VmSpec } from './vm.js';

export function crossDefinitionIssues(vms: VmSpec[], nets: NetworkSpec[], imagesDir: string): ErrorIssue[] {
  const issues: ErrorIssue[] = [];
  const netNames = new Set(nets.map((n) => n.name));
  for (const vm of vms) {
    vm.nics.forEach((nic, i) => {
      if (nic.network !== undefined && !netNames.has(nic.network)) {
        issues.push({ path: `vm/${vm.name}: nics[${i}].network`, message: `no network named "${nic.network}" (define it with kind: network, or use tap: / user:)` });
      }
    });
  }
  const writers = new Map<string, string>();
  for (const vm of vms) {
    vm.disks.forEach((d, i) => {
      if (d.readOnly) return;
      // A volume: the same storage and image name is the same RBD image (exclusive-lock guards it at run time too).
      const file = d.file === undefined ? `volume ${d.storage}/${d.volume}` : path.resolve(imagesDir, d.file);
      const other = writers.get(file);
      if (other && other !== vm.name) {
        issues.push({ path: `vm/${vm.name}: disks[${i}].${d.file === undefined ? 'volume' : 'file'}`, message: `"${file}" is already a writable disk of VM "${other}"; two VMs writing one image corrupt it (use readOnly: true, or kvmctl disk clone)` });
      } else writers.set(file, vm.name);
    });
  }
  issues.push(...natNicIssues(vms, nets));
  // One MAC in two VMs: on a shared segment both guests lose traffic (derived MACs are unique per VM and NIC).
  const macs = new Map<string, string>();
  for (const vm of vms) {
    vm.nics.forEach((nic, i) => {
      if (!nic.mac) return;
      const mac = nic.mac.toLowerCase();
      const other = macs.get(mac);
      if (other && other !== vm.name) issues.push({ path: `vm/${vm.name}: nics[${i}].mac`, message: `MAC "${nic.mac}" is already used by VM "${other}"; each NIC needs its own (leave mac out to derive a unique one)` });
      else macs.set(mac, vm.name);
    });
  }
  const ifnames = new Map<string, string>();
  for (const n of nets) {
    const ifn = bridgeIfname(n);
    if (!ifn) continue;
    const other = ifnames.get(ifn);
    if (other && other !== n.name) issues.push({ path: `network/${n.name}: interface`, message: `bridge "${ifn}" is already used by network "${other}"` });
    else ifnames.set(ifn, n.name);
  }
  return issues;
}
