/** What `start` would run, without touching the host: for `kvmctl cmdline`. */
import fs from 'node:fs';
import type { HostFacts } from '../host/facts.js';
import type { Paths } from '../host/paths.js';
import { buildArgv, type BuiltArgv } from '../qemu/argv.js';
import type { NetworkSpec } from '../definition/network.js';
import { readAllNetworks, readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { resolveKernel } from './kernel.js';
import { nvramPath, runtimePaths } from './runtime-paths.js';

export async function planCommandLine(paths: Paths, target: string, facts: HostFacts): Promise<BuiltArgv> {
  let vm: VmSpec;
  const nets: Map<string, NetworkSpec> = readAllNetworks(paths);
  if (/\.ya?ml$/.test(target) || (target.includes('/') && fs.existsSync(target))) {
    const { loadFiles } = await import('../definition/load.js'); // a file is validated here; stored definitions come from the cache
    const defs = loadFiles([target]);
    for (const d of defs) if (d.kind === 'network') nets.set(d.spec.name, d.spec);
    const vms = defs.filter((d) => d.kind === 'vm');
    if (vms.length !== 1) throw new Error(`${target}: expected exactly one VM definition, found ${vms.length}`);
    vm = vms[0]!.spec as VmSpec;
  } else vm = readVm(paths, target);
  const { plannedAttachments } = await import('../net/attach.js');
  const kernel = await resolveKernel(vm, paths, { build: false });
  const storage = (await import('./storage.js')).plannedStorage(paths, vm, runtimePaths(paths, vm.name).dir); // snapshot-chain tops, cloud-init seed, virtiofs sockets
  // Volume disks: the key file's path only (start writes it; the key is never on the command line).
  const volumes = vm.disks.some((d) => d.storage !== undefined) ? (await (await import('../storage/attach.js')).resolveVolumes(paths, vm, runtimePaths(paths, vm.name).dir)).volumes : undefined;
  const r = buildArgv(vm, facts, { runtime: runtimePaths(paths, vm.name), imagesDir: paths.images, attachments: plannedAttachments(vm, nets, facts), kernel, diskFiles: storage.diskFiles, seed: storage.seed, virtiofs: storage.virtiofs, nvram: nvramPath(paths, vm), volumes });
  r.warnings.push(...storage.warnings);
  if (kernel?.notBuilt) r.warnings.push('the test guest is not built yet: kvmctl start (or kvmctl image test-guest) builds it');
  return r;
}
