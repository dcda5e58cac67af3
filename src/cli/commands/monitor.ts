/** monitor (HMP, no socat needed) and qmp (raw QMP JSON). */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  program
    .command('monitor')
    .description('run a human-monitor command (through QMP), or open an interactive monitor session')
    .argument('<name>')
    .argument('[command...]', "e.g. 'info status'")
    .option('--socket <path>', 'talk to a seed-style -monitor unix socket instead of QMP')
    .addHelpText('after', "\nExamples:\n  kvmctl monitor exam_vm 'info status'\n  kvmctl monitor exam_vm system_powerdown\n  kvmctl monitor exam_vm            (interactive)")
    .action(
      action(async (ctx, name: string, words: string[], opts: { socket?: string }) => {
        const cmd = words.join(' ');
        if (opts.socket || !cmd) {
          const { monitorSocketFor } = await import('../../vm/monitor-socket.js');
          const sock = opts.socket ?? (await monitorSocketFor(ctx.paths, name));
          const hmp = await import('../../qmp/hmp.js');
          if (!cmd) {
            await hmp.openInteractive(sock, process.stdin, process.stdout);
            return;
          }
          const out = await hmp.hmpCommand(sock, cmd, { timeoutMs: 30_000 });
          ctx.out({ output: out }, () => out);
          return;
        }
        const { monitorCommand } = await import('../../vm/control.js');
        const out = await monitorCommand(ctx.paths, name, cmd);
        ctx.out({ output: out }, () => out);
      }),
    );

  program
    .command('qmp')
    .description('send one raw QMP command and print the reply')
    .argument('<name>')
    .argument('<json>', `e.g. '{"execute":"query-status"}'`)
    .action(
      action(async (ctx, name: string, json: string) => {
        const { qmpCommand } = await import('../../vm/control.js');
        const r = await qmpCommand(ctx.paths, name, json);
        process.stdout.write(`${JSON.stringify({ return: r }, null, ctx.json ? 2 : undefined)}\n`);
      }),
    );
}
