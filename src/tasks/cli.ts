/**
 * CLI commands that run as tasks (owner "cli"), so `kvmctl tasks` and the web UI's task panel
 * also list what was done from a shell: the long operations — start, stop, disk create/convert/
 * resize, snapshots, backups, restores, migrations, installs, image builds. Imported by the CLI's
 * action wrapper on every command: nothing here but a set; the registry is loaded only for a
 * task command.
 */
import type { Paths } from '../host/paths.js';

const TASK_COMMANDS = new Set([
  'start', 'stop', 'restart', 'kill', 'install', 'snapshot', 'migrate', 'restore',
  'disk create', 'disk convert', 'disk resize', 'disk clone', 'disk snapshot create', 'disk snapshot revert', 'disk snapshot delete',
  'backup', 'backup create', 'backup restore', 'backup verify', 'backup prune',
  'cluster migrate', 'image test-guest', 'image debian-12',
]);

type Cmd = { name(): string; parent: Cmd | null };

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
  const { TaskRegistry, tasksDir } = await import('./registry.js');
  const fs = (await import('node:fs')).default;
  const path = (await import('node:path')).default;
  const dir = tasksDir(paths);
  let created: string | undefined;
  let reg: InstanceType<typeof TaskRegistry>;
  try {
    created = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    reg = new TaskRegistry(paths);
  } catch {
    return fn(); // the data dir is not writable (a read-only check): the command still runs
  }
  let id = '';
  try {
    await reg.run({ kind, target, owner: 'cli' }, async () => {
      id = reg.current()!;
      reg.log(id, `kvmctl ${kind}${args.filter((a) => typeof a === 'string' || Array.isArray(a)).map((a) => ` ${a}`).join('')}`);
      await fn();
      if (process.exitCode) throw Object.assign(new Error(`exit status ${process.exitCode}`), { code: 'EXIT' });
    });
  } catch (e) {
    // Bad input (exit 2) changes nothing, so it leaves no task either (and no directory made for it).
    if ((e as { exit?: number }).exit === 2 || process.exitCode === 2) {
      reg.close();
      fs.rmSync(path.join(dir, `${id}.json`), { force: true });
      if (created) {
        for (let d = dir; d.length >= created.length; d = path.dirname(d)) {
          try {
            fs.rmdirSync(d);
          } catch {
            break;
          }
        }
      }
    }
    if ((e as { code?: string }).code !== 'EXIT') throw e;
  } finally {
    reg.close();
  }
}
