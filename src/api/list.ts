/**
 * The VM list as the server serves it, cheap enough to answer often: definitions parsed once and
 * re-read only when their file changes, and — while the watcher runs — each VM's state from the
 * watcher (kept current by fs.watch, the 1 s reconcile and QMP events) with the details read from
 * the runtime files and /proc, instead of one QMP round trip per running VM per request. Without
 * the watcher it is `listVms`, as in the CLI.
 */
import fs from 'node:fs';
import type { Paths } from '../host/paths.js';
import { defPath, listNames, readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';
import { procStat } from '../vm/proc.js';
import type { VmStatus } from '../vm/status.js';
import type { VmListItem } from './contract.js';
import type { ServerCtx } from './context.js';
import type { SpecCache } from './spec-cache.js';

const PAGE = 4096;

function watchedStatus(ctx: ServerCtx, name: string): VmStatus | undefined {
  const state = ctx.watcher?.state(name);
  const o = ctx.watcher?.observed(name);
  if (!state || !o) return undefined;
  if (o.phase !== 'alive') return { name, state, lastExit: o.lastExit, reason: state === 'crashed' ? o.lastExit?.reason : undefined };
  const st = procStat(o.pid!);
  return {
    name,
    state,
    pid: o.pid,
    accel: o.run?.accel,
    startedAt: o.run?.startedAt,
    uptimeSec: o.run ? Math.round((Date.now() - Date.parse(o.run.startedAt)) / 1000) : undefined,
    rssBytes: st ? st.rssPages * PAGE : undefined,
  };
}

export async function listForApi(ctx: ServerCtx, specs: SpecCache): Promise<VmListItem[]> {
  const names = listNames(ctx.paths, 'vm');
  const { vmStatus } = await import('../vm/status.js');
  const rows = await Promise.all(names.map(async (n) => watchedStatus(ctx, n) ?? (await vmStatus(ctx.paths, n))));
  return rows.map((s): VmListItem => {
    const { spec, error } = specs.get(s.name);
    return {
      ...s,
      description: spec?.description,
      cpus: spec?.cpu.count,
      memory: spec?.memory,
      display: spec?.display.type,
      restart: spec?.restart,
      supervision: spec && spec.restart !== 'no' ? ctx.supervisor?.info(s.name) : undefined,
      definitionError: error,
    };
  });
}
