/** console (attach to the serial console; Ctrl-] detaches) and logs (the serial log). */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  program
    .command('console')
    .description('attach this terminal to the VM\'s serial console (Ctrl-] detaches)')
    .argument('<name>')
    .option('--no-replay', 'do not print the recent console output first')
    .action(
      action(async (ctx, name: string, opts: { replay: boolean }) => {
        const { attachConsole } = await import('../../vm/console.js');
        await attachConsole(ctx.paths, name, { replay: opts.replay });
      }),
    );

  program
    .command('logs')
    .description('print the serial console log')
    .argument('<name>')
    .option('-f, --follow', 'keep printing new output')
    .option('-n, --lines <n>', 'only the last N lines', (v) => Number(v))
    .action(
      action(async (ctx, name: string, opts: { follow?: boolean; lines?: number }) => {
        const { printLogs } = await import('../../vm/console.js');
        await printLogs(ctx.paths, name, opts);
      }),
    );
}
