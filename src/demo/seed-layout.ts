/**
 * The seed's layout (shared/seed/README.md §4, §6) as kvmctl definitions, for the demo: a bridge
 * br0 over a NIC (a veth stands in for eth1: this kernel has no dummy driver) with no IP on it,
 * the host-only net br_local0 with the host at 192.168.1.1/24, and two test guests with a NIC on
 * each, the first sharing a host folder over 9p (mapped-xattr). demo-a boots the standard profile
 * (q35, PCI), demo-b the fast profile (microvm, virtio-mmio): both kinds on the same bridges.
 */
export function seedDemoYaml(o: { share: string }): string {
  return `# The seed's networks: br0 bridges the guests onto the "physical" network through eth1;
# br_local0 is the private host<->guest network.
kind: network
name: br0
type: bridge
uplinks: [eth1]
forwardDelay: 0
---
kind: network
name: br_local0
type: host-only
addresses: [192.168.1.1/24]
forwardDelay: 0
---
name: demo-a
memory: 256M
kernel:
  builtin: test-guest
  append: kvt.hostname=demo-a kvt.ip0=10.0.0.11/24 kvt.ip1=192.168.1.11/24 kvt.9p=host_share:/mnt/share
nics:
  - { id: net0, network: br0, mac: "52:54:00:87:93:11" }
  - { id: net1, network: br_local0, mac: "52:54:00:87:93:12" }
shares:
  - { id: share, path: ${o.share}, tag: host_share, securityModel: mapped-xattr }
stopTimeout: 20
---
name: demo-b
memory: 256M
profile: fast
kernel:
  builtin: test-guest
  append: kvt.hostname=demo-b kvt.ip0=10.0.0.12/24 kvt.ip1=192.168.1.12/24
nics:
  - { id: net0, network: br0, mac: "52:54:00:87:93:21" }
  - { id: net1, network: br_local0, mac: "52:54:00:87:93:22" }
stopTimeout: 20
`;
}
