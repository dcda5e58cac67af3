/**
 * `kvmctl guest ping|info|ip|exec|fsfreeze|fsthaw|set-time|ssh-key|shutdown NAME`: the QEMU guest
 * agent of a running VM (src/vm/guest-agent.ts).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Action } from '../action.js';

const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`"${v}" is not a number of seconds`);
  return n;
};
const ga = () => import('../../vm/guest-agent.js');

export function registerAgent(guest: Command, action: Action): void {
  guest
    .command('ping')
    .description('is the guest agent answering? (exit 1 if not); --wait waits for it')
    .argument('<name>', 'a running VM with agent: true')
    .option('--wait <seconds>', 'keep trying this long (the agent starts late in a boot)', seconds)
    .action(
      action(async (ctx, name: string, o: { wait?: number }) => {
        const m = await ga();
        const r = o.wait ? await m.waitForAgent(ctx.paths, name, o.wait * 1000) : (await m.withAgent(ctx.paths, name, async (a) => (await import('../../qga/commands.js')).ping(a)), { ms: 0 });
        ctx.out({ name, agent: true, waitedMs: r.ms }, () => `${name}: guest agent answers${r.ms ? ` (after ${(r.ms / 1000).toFixed(1)} s)` : ''}`);
      }),
    );

  guest
    .command('info')
    .description('agent version, guest OS, host name and filesystem freeze state')
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const i = await (await ga()).agentInfo(ctx.paths, name);
        ctx.out(i, () =>
          [
            `agent     qemu-ga ${i.version} (${i.commands} commands)`,
            `os        ${i.os?.['pretty-name'] ?? i.os?.name ?? '?'} (kernel ${i.os?.['kernel-release'] ?? '?'})`,
            `hostname  ${i.hostname ?? '?'}`,
            `fs        ${i.fsfreeze ?? '?'}`,
          ].join('\n'),
        );
      }),
    );

  guest
    .command('ip')
    .description("the guest's addresses, as the guest agent reports them (no loopback, no link-local)")
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const ifs = await (await ga()).agentAddresses(ctx.paths, name);
        ctx.out(ifs, () => (ifs.length ? ifs.map((i) => `${i.name.padEnd(10)} ${(i.mac ?? '').padEnd(17)} ${i.addresses.join(' ') || '-'}`).join('\n') : `${name}: no network interfaces besides loopback`));
      }),
    );

  guest
    .command('exec')
    .description('run a program in the guest through the agent, print its output, exit with its exit code (no shell unless you run one)')
    .argument('<name>')
    .argument('<command...>', 'program and arguments, after --')
    .option('--input-file <file>', 'send this file to its standard input')
    .option('--timeout <seconds>', 'give up waiting after this long (default 60)', seconds)
    .addHelpText('after', '\nExamples:\n  kvmctl guest exec deb1 -- /usr/bin/uname -a\n  kvmctl guest exec deb1 -- /usr/bin/systemctl is-system-running')
    .action(
      action(async (ctx, name: string, argv: string[], o: { inputFile?: string; timeout?: number }) => {
        const input = o.inputFile ? fs.readFileSync(o.inputFile, 'utf8') : undefined;
        const r = await (await ga()).agentExec(ctx.paths, name, argv, { input, timeoutMs: o.timeout === undefined ? undefined : o.timeout * 1000 });
        if (ctx.json) ctx.out(r, () => '');
        else {
          process.stdout.write(r.stdout);
          process.stderr.write(r.stderr);
        }
        process.exitCode = r.exitCode ?? (r.signal ? 128 + r.signal : 1);
      }),
    );

  for (const [cmd, desc, fn] of [
    ['fsfreeze', "freeze the guest's filesystems (writes wait until fsthaw)", 'agentFreeze'],
    ['fsthaw', "thaw the guest's filesystems", 'agentThaw'],
  ] as const) {
    guest
      .command(cmd)
      .description(desc)
      .argument('<name>')
      .action(
        action(async (ctx, name: string) => {
          const n = await (await ga())[fn](ctx.paths, name);
          ctx.out({ name, filesystems: n }, () => `${name}: ${cmd === 'fsfreeze' ? 'froze' : 'thawed'} ${n} filesystem(s)`);
        }),
      );
  }

  guest
    .command('set-time')
    .description("set the guest's clock to the host's")
    .argument('<name>')
    .action(
      action(async (ctx, name: string) => {
        const r = await (await ga()).agentSyncTime(ctx.paths, name);
        ctx.out(r, () => `${name}: guest clock was ${((r.before - r.host) / 1e9).toFixed(3)} s off the host's; now ${((r.after - r.host) / 1e9).toFixed(3)} s`);
      }),
    );

  guest
    .command('ssh-key')
    .description("add OpenSSH public keys to a guest user's authorized_keys")
    .argument('<name>')
    .argument('<pubkey-files...>', '.pub files')
    .option('--user <user>', 'guest user', 'root')
    .option('--reset', "replace the user's authorized_keys instead of adding")
    .action(
      action(async (ctx, name: string, files: string[], o: { user: string; reset?: boolean }) => {
        const keys = files.flatMap((f) => {
          if (!fs.existsSync(f)) throw badInput('FILE_NOT_FOUND', `${f}: no such file`);
          return fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
        });
        await (await ga()).agentAddSshKeys(ctx.paths, name, o.user, keys, o.reset);
        ctx.out({ name, user: o.user, keys: keys.length }, () => `${name}: ${o.reset ? 'set' : 'added'} ${keys.length} key(s) for ${o.user}`);
      }),
    );

  guest
    .command('shutdown')
    .description('shut the guest down through its agent (kvmctl stop NAME --method agent also waits and escalates)')
    .argument('<name>')
    .option('--reboot', 'reboot instead')
    .option('--halt', 'halt instead of powering off')
    .action(
      action(async (ctx, name: string, o: { reboot?: boolean; halt?: boolean }) => {
        const mode = o.reboot ? 'reboot' : o.halt ? 'halt' : 'powerdown';
        await (await ga()).agentShutdown(ctx.paths, name, mode);
        ctx.out({ name, mode }, () => `${name}: asked the guest agent to ${mode}`);
      }),
    );
}
