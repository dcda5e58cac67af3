/**
 * `restart`: stop (gracefully, with stop's escalation) if it runs, then start again. The VM
 * starts again in the namespace it was asked for (`--netns`, KVMCTL_NETNS, `serve --netns`),
 * else in the one it was running in (RunState.netns): restarting a confined VM without naming
 * its namespace must not rebuild its networks in the host's namespace.
 */
import { vmRuntimeFiles, type Paths } from '../host/paths.js';
import { readVm } from '../definition/store.js';
import { startVm, type StartResult } from './start.js';
import { readJson, type RunState } from './state.js';
import { vmStatus } from './status.js';
import { stopVm, type StopResult } from './stop.js';

export type RestartResult = { stopped?: StopResult; started: StartResult };

export async function restartVm(paths: Paths, name: string, o: { timeoutSec?: number; netns?: string } = {}): Promise<RestartResult> {
  readVm(paths, name);
  const s = await vmStatus(paths, name);
  const running = s.state === 'running' || s.state === 'paused';
  const was = running ? readJson<RunState>(vmRuntimeFiles(paths, name).state)?.netns : undefined;
  const stopped = running ? await stopVm(paths, name, { timeoutSec: o.timeoutSec }) : undefined;
  const started = await startVm(paths, name, { netns: o.netns ?? was });
  return { stopped, started };
}
