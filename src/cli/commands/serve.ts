/** `kvmctl serve`: the REST + WebSocket API, events, restart policies, metrics; `serve token rotate|show`. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  const serve = program
    .command('serve')
    .description('run the API server (unix socket by default; TCP with --listen, then a bearer token)')
    .option('--socket <path>', 'unix socket path (default: <run>/kvmctl.sock)')
    .option('--listen <host:port>', 'listen on TCP instead (requires the token: Authorization: Bearer …)')
    .option('--cert <file>', 'TLS certificate (PEM), with --key')
    .option('--key <file>', 'TLS private key (PEM), with --cert')
    .option('--no-watch', 'no events, restart policies or QMP connections (API only)')
    .option('--netns <name>', 'every VM start and network action of the API (and restart policies) works in this existing network namespace (default: env KVMCTL_NETNS, read once at start)')
    .addHelpText('after', '\nExamples:\n  kvmctl serve\n  kvmctl serve --listen 127.0.0.1:8006\n  kvmctl --remote /run/kvmctl/kvmctl.sock list')
    .action(
      action(async (ctx, opts: { socket?: string; listen?: string; cert?: string; key?: string; watch?: boolean }) => {
        const netns = ctx.netns();
        const { serve: run } = await import('../../api/listen.js');
        const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
        const s = await run({ paths: ctx.paths, socket: opts.socket, listen: opts.listen, cert: opts.cert, key: opts.key, watch: opts.watch, netns, log });
        const where = s.url ?? `unix:${s.socket}`;
        log(`kvmctl serve listening on ${where} (pid ${process.pid})${netns ? ` in network namespace ${netns}` : ''}${s.tokenSource ? `; token ${s.tokenSource === 'env' ? 'from KVMCTL_TOKEN' : `in ${ctx.paths.config}/token`}` : ''}`);
        ctx.out({ listening: where, pid: process.pid }, () => '');
        await new Promise<void>((resolve) => {
          const stop = (sig: string) => {
            log(`${sig}: closing (running VMs keep running)`);
            void s.close().finally(resolve);
          };
          process.once('SIGINT', () => stop('SIGINT'));
          process.once('SIGTERM', () => stop('SIGTERM'));
        });
      }),
    );

  const token = serve.command('token').description('the bearer token for TCP');
  token
    .command('rotate')
    .description('write a new random token (0600); a running server re-reads the file, so the old token is refused from its next request on (no restart); a server started with KVMCTL_TOKEN keeps that token')
    .action(
      action(async (ctx) => {
        const { rotateToken } = await import('../../api/token.js');
        const r = rotateToken(ctx.paths);
        ctx.out({ file: r.file, token: r.token }, () => `new token written to ${r.file}\n${r.token}`);
      }),
    );
  token
    .command('show')
    .description('print the token (creating it when there is none)')
    .action(
      action(async (ctx) => {
        const { loadToken } = await import('../../api/token.js');
        const r = loadToken(ctx.paths);
        ctx.out(r, () => r.token);
      }),
    );
}
