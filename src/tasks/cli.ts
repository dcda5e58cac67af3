/**
 * CLI commands that run as tasks (owner "cli"), so `kvmctl tasks` and the web UI's task panel
 * also list what was done from a shell: the long operations — start, stop, disk create/convert/
 * resize, snapshots, backups, restores, migrations, installs, image builds, hotplug. Imported by the CLI's
 * action wrapper on every command: nothing here but a set; the registry is loaded only for a
 * task command.
 */
import type { Paths } from '../host/paths.js';

const TASK_COMMANDS = new Set([
  'start', 'stop', 'restart', 'kill', 'install', 'snapshot', 'migrate', 'restore',
  'disk create', 'disk convert', 'disk resize', 'disk clone', 'disk snapshot create', 'disk snapshot revert', 'disk snapshot delete',
  'backup', 'backup create', 'backup restore', 'backup verify', 'backup prune',
  'cluster migrate', 'image test-guest', 'image debian-12',
  'attach-disk', 'detach-disk', 'attach-nic', 'detach-nic',
]);

export type Cmd = { name(): string; parent: Cmd | null };

/** "disk create" for `kvmctl disk create …`; undefined when that command is not a task. */
export function cliTaskKind(cmd: Cmd): string | undefined {
  const parts: string[] = [];
  for (let c: Cmd | null = cmd; c?.parent; c = c.parent) parts.unshift(c.name());
  const kind = parts.join(' ');
  return TASK_COMMANDS.has(kind) ? kind : undefined;
}

/** Run fn as a CLI task when the command is one; else just run it. */
export async function asCliTask(paths: Paths, cmd: Cmd, args: unknown[], fn: () => Promise<void>): Promise<void> {
  const kind = cliTaskKind(cmd);
  if (!kind) return fn();
  const first = args[0];
  const target = typeof first === 'string' ? first : Array.isArray(first) ? first.join(',') : undefined;
  let reg: import('./registry.js').TaskRegistry;
  try {
    reg = new (await import('./registry.js')).TaskRegistry(paths, undefined, undefined, false);
  } catch {
    return fn(); // the data dir is not readable: the command still runs
  }
  try {
    // Nothing is written in the first second (a refusal is quicker), nor ever for bad input (exit 2).
    const discard = (e: unknown) => (e as { exit?: number }).exit === 2 || process.exitCode === 2;
    await reg.run({ kind, target, owner: 'cli', quietMs: 1000, discard, processWide: true }, async () => {
      reg.log(reg.current()!, `kvmctl ${kind}${args.filter((a) => typeof a === 'string' || Array.isArray(a)).map((a) => ` ${a}`).join('')}`);
      await fn();
      if (process.exitCode) throw Object.assign(new Error(`exit status ${process.exitCode}`), { code: 'EXIT' });
    });
  } catch (e) {
    if ((e as { code?: string }).code !== 'EXIT') throw e;
  } finally {
    reg.close();
  }
}
