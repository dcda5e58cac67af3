/**
 * kvmctl tasks list|show|log|cancel: the tasks `kvmctl serve` ran (every mutating API call),
 * read from <data>/tasks/ (src/tasks/registry.ts); cancel goes to the running server over its
 * unix socket, since the task runs there.
 */
import type { Command } from 'commander';
import type { Action } from '../action.js';

const when = (iso?: string) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
const took = (a: string, b?: string) => (b ? `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1)}s` : '-');

export function register(program: Command, action: Action): void {
  const tasks = program
    .command('tasks')
    .description('tasks run by kvmctl serve (starts, stops, disks, backups, …): list, show, log, cancel')
    .addHelpText('after', '\nExamples:\n  kvmctl tasks list --vm web\n  kvmctl tasks show mj3k2a1-0007\n  kvmctl tasks log mj3k2a1-0007\n  kvmctl tasks cancel mj3k2a1-0007');
  tasks
    .command('list', { isDefault: true })
    .alias('ls')
    .description('tasks, newest first')
    .option('--vm <name>', 'only tasks on this VM (or image)')
    .option('--state <state>', 'running, ok, failed or cancelled')
    .option('-n, --limit <n>', 'at most this many', '30')
    .action(
      action(async (ctx, o: { vm?: string; state?: string; limit: string }) => {
        const { readTasks, recoverInterrupted, summarize } = await import('../../tasks/registry.js');
        const { badInput } = await import('../../errors.js');
        if (o.state && !['running', 'ok', 'failed', 'cancelled'].includes(o.state)) throw badInput('BAD_OPTION', `--state ${o.state} is not one of running, ok, failed, cancelled`);
        const n = Number(o.limit);
        if (!Number.isInteger(n) || n < 1) throw badInput('BAD_OPTION', `--limit ${o.limit} is not a positive number`);
        recoverInterrupted(ctx.paths);
        const rows = readTasks(ctx.paths)
          .filter((t) => (!o.vm || t.target === o.vm) && (!o.state || t.state === o.state))
          .slice(0, n)
          .map(summarize);
        ctx.out(rows, () => {
          if (!rows.length) return 'no tasks';
          const lines = [['ID', 'KIND', 'TARGET', 'OWNER', 'STATE', 'PROGRESS', 'STARTED', 'TOOK']];
          for (const t of rows) lines.push([t.id, t.kind, t.target ?? '-', t.owner, t.state, t.progress === null ? '-' : `${t.progress}%`, when(t.startedAt), took(t.startedAt, t.endedAt)]);
          const w = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
          return lines.map((l) => l.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
        });
      }),
    );
  tasks
    .command('show')
    .description('one task: what, who, when, progress, result or error')
    .argument('<id>')
    .action(
      action(async (ctx, id: string) => {
        const { readTask, recoverInterrupted } = await import('../../tasks/registry.js');
        recoverInterrupted(ctx.paths);
        const t = readTask(ctx.paths, id);
        ctx.out(t, () =>
          [
            `id:       ${t.id}`,
            `kind:     ${t.kind}`,
            `target:   ${t.target ?? '-'}`,
            `owner:    ${t.owner}`,
            `state:    ${t.state}${t.progress !== null ? ` (${t.progress}%)` : ''}`,
            `started:  ${when(t.startedAt)}`,
            `ended:    ${when(t.endedAt)} (${took(t.startedAt, t.endedAt)})`,
            ...(t.error ? [`error:    ${t.error.code}: ${t.error.message}`] : []),
            ...(t.result !== undefined ? [`result:   ${JSON.stringify(t.result)}`] : []),
            `log:      ${t.log.length} lines (kvmctl tasks log ${t.id})`,
          ].join('\n'),
        );
      }),
    );
  tasks
    .command('log')
    .description("a task's log lines")
    .argument('<id>')
    .action(
      action(async (ctx, id: string) => {
        const { readTask, recoverInterrupted } = await import('../../tasks/registry.js');
        recoverInterrupted(ctx.paths);
        const t = readTask(ctx.paths, id);
        ctx.out(t.log, () => t.log.map((l) => `${when(l.at)}  ${l.line}`).join('\n') || '(no lines)');
      }),
    );
  tasks
    .command('cancel')
    .description('cancel a running task (only operations that can stop safely: disk create/convert)')
    .argument('<id>')
    .action(
      action(async (ctx, id: string) => {
        const { readTask, elsewhere } = await import('../../tasks/registry.js');
        const { KvmError } = await import('../../errors.js');
        const t = readTask(ctx.paths, id); // TASK_NOT_FOUND, exit 2
        if (t.state === 'running' && t.owner === 'cli') throw elsewhere(t);
        if (t.state !== 'running') throw new KvmError('TASK_ENDED', `task ${id} already ended (${t.state})`, { hint: 'only a running task can be cancelled', exit: 2 });
        const { request } = await import('../../api/client.js');
        const { default: path } = await import('node:path');
        let r: unknown;
        try {
          r = await request({ socketPath: path.join(ctx.paths.run, 'kvmctl.sock') }, 'POST', `/api/tasks/${encodeURIComponent(id)}/cancel`, {}, 30_000);
        } catch (e) {
          if (e instanceof KvmError) throw e;
          throw new KvmError('SERVER_UNAVAILABLE', `cannot reach kvmctl serve to cancel task ${id}: ${(e as Error).message}`, { hint: 'the task runs in kvmctl serve; is it running on this host?' });
        }
        ctx.out(r, () => `cancel requested: ${id}`);
      }),
    );
}
