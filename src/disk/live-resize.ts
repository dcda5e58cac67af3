/**
 * The live path of `disk resize` (#14 item 5): when a running VM has the image open, QEMU itself
 * resizes it (QMP block_resize on the block node that has this file), so the guest sees the new
 * size at once. The node is found with query-named-block-nodes: the format node whose file is the
 * image; `ro` there means the VM reads it only (a base under an overlay), which is refused.
 */
import { KvmError } from '../errors.js';
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { QmpClient } from '../qmp/client.js';
import type { LiveHandle, LiveResolver } from './resize.js';

type NamedNode = { 'node-name': string; drv: string; file: string; ro: boolean; image?: { filename?: string } };

/** The format node (not its protocol child) whose image is `abs`; pure, for unit tests. */
export function nodeForFile(nodes: NamedNode[], abs: string, same: (a: string, b: string) => boolean): NamedNode | undefined {
  const hits = nodes.filter((n) => n.file === abs || same(n.file, abs));
  return hits.find((n) => n.drv !== 'file' && n.drv !== 'host_device') ?? hits[0];
}

export function liveResolver(paths: Paths): LiveResolver {
  return async (abs) => {
    const [{ findImageOwner }, { vmStatus }, { sameFile }] = await Promise.all([import('../vm/storage.js'), import('../vm/status.js'), import('./images.js')]);
    const owner = await findImageOwner(paths, abs);
    if (!owner) return undefined;
    const s = await vmStatus(paths, owner.vm);
    if (s.state !== 'running' && s.state !== 'paused') return undefined;
    const socket = vmRuntimeFiles(paths, owner.vm).qmp;
    const q = await QmpClient.connect(socket, { timeoutMs: 5000 });
    let node: NamedNode | undefined;
    try {
      node = nodeForFile(await q.execute<NamedNode[]>('query-named-block-nodes', { flat: true }), abs, sameFile);
    } finally {
      await q.close();
    }
    if (!node) {
      throw new KvmError('DISK_IN_USE', `VM "${owner.vm}" is running but QEMU has no block node for ${abs}`, {
        hint: `stop it first (kvmctl stop ${owner.vm}), then resize offline`,
        details: { path: abs, vm: owner.vm },
      });
    }
    const nodeName = node['node-name'];
    const handle: LiveHandle = {
      vm: owner.vm,
      readOnly: node.ro || !owner.isTop,
      async resize(bytes) {
        const c = await QmpClient.connect(socket, { timeoutMs: 5000 });
        try {
          await c.execute('block_resize', { 'node-name': nodeName, size: bytes }, { timeoutMs: 30_000 });
        } finally {
          await c.close();
        }
      },
    };
    return handle;
  };
}

/** Every image kvmctl knows: its images dir and each VM's disks with their snapshot overlays. */
export async function knownImages(paths: Paths): Promise<string[]> {
  const [{ activeDisks }, { listNames, readVm }] = await Promise.all([import('../vm/storage.js'), import('../definition/store.js')]);
  const out = [paths.images];
  for (const n of listNames(paths, 'vm')) {
    try {
      for (const a of activeDisks(paths, readVm(paths, n))) out.push(a.base, ...a.overlays.map((o) => o.file));
    } catch {
      /* an unreadable definition has no disks to protect here */
    }
  }
  return out;
}
