/** Capacity checks (pure): vCPUs against CPUs × overcommit, memory against RAM + swap × ratio, running VMs counted. */
import { describe, expect, it } from 'vitest';
import { capacityIssues, type HostCapacity } from '../../../src/vm/capacity.js';

const G = 1024 ** 3;
const host: HostCapacity = { cpus: 2, ramBytes: 24 * G, swapBytes: 0, overcommit: { cpu: 4, memory: 1 } };
const vm = (count: number, memory: number) => ({ cpu: { count }, memory });

describe('capacity', () => {
  it('fits up to CPUs × overcommit and RAM + swap', () => {
    expect(capacityIssues(vm(8, 24 * G), host)).toEqual([]);
  });
  it('999 vCPUs and 900G: both refused, with the numbers', () => {
    const i = capacityIssues(vm(999, 900 * G), host);
    expect(i.map((x) => x.path)).toEqual(['cpu.count', 'memory']);
    expect(i[0]!.message).toBe('999 vCPUs is more than this host allows: 2 CPUs × overcommit 4 = 8');
    expect(i[1]!.message).toBe('900G is more than this host has: RAM 24G + swap 0 × overcommit 1 = 24G');
  });
  it('counts the running VMs at start', () => {
    const i = capacityIssues(vm(2, G), host, { vms: 3, cpus: 7, memBytes: 23.5 * G });
    expect(i[0]!.message).toContain('2 vCPUs + 7 of 3 running VMs');
    expect(i[1]!.message).toContain('of running VMs');
  });
  it('the ratios come from the host config', () => {
    expect(capacityIssues(vm(3, G), { ...host, overcommit: { cpu: 1, memory: 1 } })[0]!.message).toContain('2 CPUs × overcommit 1 = 2');
  });
});
