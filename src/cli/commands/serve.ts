/** `kvmctl serve`: the REST + WebSocket API, events, restart policies, metrics; `serve token rotate|show|add|list|rm`, `serve audit`. */
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
    .option('--max-upload <size>', 'largest ISO upload through the API (default 16G)')
    .addHelpText('after', '\nExamples:\n  kvmctl serve\n  kvmctl serve --listen 127.0.0.1:8006\n  kvmctl --remote /run/kvmctl/kvmctl.sock list')
    .action(
      action(async (ctx, opts: { socket?: string; listen?: string; cert?: string; key?: string; watch?: boolean; maxUpload?: string }) => {
        const netns = ctx.netns();
        let maxUploadBytes: number | undefined;
        if (opts.maxUpload !== undefined) {
          const { parseSize } = await import('../../definition/units.js');
          maxUploadBytes = parseSize(opts.maxUpload);
          if (maxUploadBytes === undefined || maxUploadBytes <= 0) {
            const { badInput } = await import('../../errors.js');
            throw badInput('BAD_SIZE', `--max-upload: "${opts.maxUpload}" is not a size`, 'e.g. --max-upload 8G');
          }
        }
        const { settleHeap } = await import('../../api/lean.js'); // memory over peak speed (src/api/lean.ts)
        const { serve: run } = await import('../../api/listen.js');
        const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
        const s = await run({ paths: ctx.paths, socket: opts.socket, listen: opts.listen, cert: opts.cert, key: opts.key, watch: opts.watch, netns, log, maxUploadBytes });
        const where = s.url ?? `unix:${s.socket}`;
        log(`kvmctl serve listening on ${where} (pid ${process.pid})${netns ? ` in network namespace ${netns}` : ''}${s.tokenSource ? `; token ${s.tokenSource === 'env' ? 'from KVMCTL_TOKEN' : `in ${ctx.paths.config}/token`}` : ''}`);
        ctx.out({ listening: where, pid: process.pid }, () => '');
        settleHeap();
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
  token
    .command('add')
    .description('make a named token with a role (viewer: read only; operator: lifecycle and consoles; admin: everything), optionally only for VMs matching a pattern; printed once, stored hashed in <config>/tokens.json (0600); a running server takes it at once')
    .argument('<name>')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .option('--vms <glob>', 'only VMs whose names match (* and ?), e.g. "web-*"')
    .action(
      action(async (ctx, name: string, o: { role: string; vms?: string }) => {
        const { addToken } = await import('../../api/users.js');
        const r = addToken(ctx.paths, name, o.role, o.vms);
        ctx.out(r, () => `token "${r.name}" (${r.role}${r.vms ? `, VMs ${r.vms}` : ''}) made; it is shown only now:\n${r.token}`);
      }),
    );
  token
    .command('list')
    .alias('ls')
    .description('the named tokens (names, roles, scopes; never the tokens)')
    .action(
      action(async (ctx) => {
        const { listTokens } = await import('../../api/users.js');
        const list = listTokens(ctx.paths);
        ctx.out(list, () => (list.length ? list.map((t) => `${t.name.padEnd(20)} ${t.role.padEnd(9)} ${(t.vms ?? '*').padEnd(16)} ${t.createdAt}`).join('\n') : 'no named tokens (the main token is an admin: kvmctl serve token show)'));
      }),
    );
  token
    .command('rm')
    .description('revoke a named token (a running server refuses it from its next request on)')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const { removeToken } = await import('../../api/users.js');
        ctx.out(removeToken(ctx.paths, name), () => `token "${name}" removed`);
      }),
    );

  serve
    .command('audit')
    .description('the API audit log (<data>/audit.log): who changed what, opened a console or was refused')
    .option('-n, --limit <n>', 'the last N entries (default 200)', (v) => Number(v))
    .option('--user <name>', 'only this token name')
    .action(
      action(async (ctx, o: { limit?: number; user?: string }) => {
        const { readAudit } = await import('../../api/audit.js');
        const { badInput } = await import('../../errors.js');
        if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit > 0)) throw badInput('BAD_LIMIT', '--limit must be a positive whole number');
        const list = readAudit(ctx.paths, o);
        ctx.out(list, () => list.map((e) => `${e.at} ${e.user.padEnd(12)} ${String(e.status).padEnd(3)} ${e.method.padEnd(6)} ${e.route}${e.target ? ` ${e.target}` : ''}`).join('\n') || 'the audit log is empty');
      }),
    );
}
