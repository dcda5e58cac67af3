/**
 * `kvmctl ip VM`: a guest's addresses on nat networks, from the lease file of each network's
 * dnsmasq (matched by the NIC's MAC). There is no guest agent in kvmctl yet: when one exists,
 * its answer belongs here too.
 */
import type { Paths } from '../../host/paths.js';
import { listNames, readAllNetworks, readNetwork, readVm } from '../../definition/store.js';
import { deriveMac } from '../mac.js';
import { readLeases } from './dnsmasq.js';
import { natFiles } from './files.js';

export type VmAddress = { nic: string; network: string; mac: string; ip?: string; source: 'lease' | 'none'; fixed?: string; expires?: string };

export function vmAddresses(paths: Paths, vmName: string): VmAddress[] {
  const vm = readVm(paths, vmName);
  const nets = readAllNetworks(paths);
  const out: VmAddress[] = [];
  vm.nics.forEach((nic, i) => {
    const net = nic.network !== undefined ? nets.get(nic.network) : undefined;
    if (!net || net.type !== 'nat') return;
    const mac = (nic.mac ?? deriveMac(vm.name, nic.id ?? `net${i}`)).toLowerCase();
    const lease = readLeases(natFiles(paths, net.name).leases).filter((l) => l.mac === mac).sort((a, b) => b.expires - a.expires)[0];
    out.push({
      nic: nic.id ?? `net${i}`,
      network: net.name,
      mac,
      ip: lease?.ip,
      source: lease ? 'lease' : 'none',
      fixed: nic.ip,
      expires: lease ? (lease.expires === 0 ? 'never' : new Date(lease.expires * 1000).toISOString()) : undefined,
    });
  });
  return out;
}

export type NetworkLease = { mac: string; ip: string; hostname?: string; expires: string; vm?: string; nic?: string };

/** A nat network's DHCP leases, newest expiry first, each with the VM and NIC whose MAC holds it. */
export function networkLeases(paths: Paths, netName: string): NetworkLease[] {
  const net = readNetwork(paths, netName); // NOT_FOUND for an unknown network
  if (net.type !== 'nat') return [];
  const byMac = new Map<string, { vm: string; nic: string }>();
  for (const name of listNames(paths, 'vm')) {
    let vm;
    try {
      vm = readVm(paths, name);
    } catch {
      continue; // a broken definition owns no lease
    }
    vm.nics.forEach((nic, i) => {
      if (nic.network === netName) byMac.set((nic.mac ?? deriveMac(vm.name, nic.id ?? `net${i}`)).toLowerCase(), { vm: vm.name, nic: nic.id ?? `net${i}` });
    });
  }
  return readLeases(natFiles(paths, net.name).leases)
    .sort((a, b) => b.expires - a.expires)
    .map((l) => ({ mac: l.mac, ip: l.ip, ...(l.hostname ? { hostname: l.hostname } : {}), expires: l.expires === 0 ? 'never' : new Date(l.expires * 1000).toISOString(), ...byMac.get(l.mac.toLowerCase()) }));
}

/** Wait until every NIC on a nat network has a lease, the VM stops running, or the time is up. */
export async function waitForAddresses(paths: Paths, vmName: string, o: { timeoutMs: number; isRunning: () => boolean }): Promise<VmAddress[]> {
  const t0 = Date.now();
  for (;;) {
    const a = vmAddresses(paths, vmName);
    if (!a.length || a.every((x) => x.ip) || Date.now() - t0 >= o.timeoutMs || !o.isRunning()) return a;
    await new Promise((r) => setTimeout(r, 250));
  }
}
