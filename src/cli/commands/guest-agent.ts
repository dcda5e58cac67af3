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

/** Our stdin carries data (a pipe, socket or file), not a terminal or /dev/null. */
function stdinIsData(): boolean {
  try {
    const st = fs.fstatSync(0);
    return st.isFIFO() || st.isSocket() || st.isFile();
  } catch {
    return false;
  }
}
/** Our stdin to its end, refused (before the agent is asked) past the agent's input limit. */
async function readStdin(): Promise<Buffer> {
  const { EXEC_MAX_INPUT } = await import('../../qga/commands.js');
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    n += (c as Buffer).length;
    if (n > EXEC_MAX_INPUT) {
      process.stdin.destroy();
      throw badInput('INPUT_TOO_LARGE', `standard input is over ${EXEC_MAX_INPUT} bytes (8 MiB), the most that goes through the agent`, 'copy large data another way (a share, scp, a disk) and pass its path; --no-stdin ignores stdin');
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

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
    .description('run a program in the guest through the agent: stdin from a pipe, a file or --input-file; its stdout and stderr printed as they arrive; its exit code is ours (no shell unless you run one)')
    .argument('<name>')
    .argument('<command...>', 'program and arguments, after --')
    .option('--stdin', 'send our standard input to the program (the default when stdin is a pipe, socket or file, not a terminal)')
    .option('--no-stdin', 'do not read our standard input')
    .option('--input-file <file>', 'send this file to its standard input instead')
    .option('-e, --env <NAME=VALUE...>', "the program's environment (replaces the agent's)")
    .option('--timeout <seconds>', 'kill the program in the guest after this long and exit 124 (default 60)', seconds)
    .addHelpText(
      'after',
      [
        '',
        'Standard input is read to its end first and sent with the command (at most 8 MiB): the',
        "agent has no way to feed a running program. QEMU's qemu-ga (7.2 here, and later) hands",
        'over output only when the program has exited, so it is printed then; kvmctl prints',
        'whatever the agent returns as soon as it returns it. Up to 16 MiB of each stream are',
        'kept by the agent (a warning says when output was cut). Exit status: the program\'s,',
        '128+N when signal N ended it, 124 on --timeout, 130 on Ctrl-C (the program is killed',
        'in the guest either way).',
        '',
        'Examples:',
        '  kvmctl guest exec deb1 -- /usr/bin/uname -a',
        '  echo hello | kvmctl guest exec deb1 -- /usr/bin/tee /tmp/greeting',
        '  kvmctl guest exec deb1 --timeout 600 -- /usr/bin/apt-get -y upgrade',
      ].join('\n'),
    )
    .action(
      action(async (ctx, name: string, argv: string[], o: { stdin?: boolean; inputFile?: string; env?: string[]; timeout?: number }) => {
        let input: Buffer | undefined;
        if (o.inputFile) {
          if (!fs.existsSync(o.inputFile)) throw badInput('FILE_NOT_FOUND', `${o.inputFile}: no such file`);
          input = fs.readFileSync(o.inputFile);
        } else if (o.stdin ?? stdinIsData()) input = await readStdin();
        const ac = new AbortController();
        const onInt = () => ac.abort();
        process.once('SIGINT', onInt);
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let r;
        try {
          r = await (await ga()).agentExecStream(ctx.paths, name, argv, {
            input,
            env: o.env,
            timeoutMs: o.timeout === undefined ? undefined : o.timeout * 1000,
            signal: ac.signal,
            // Printed as it arrives (in --json: collected for the one JSON answer).
            onOutput: (s, b) => (ctx.json ? (s === 'stdout' ? out : err).push(b) : (s === 'stdout' ? process.stdout : process.stderr).write(b)),
          });
        } finally {
          process.off('SIGINT', onInt);
        }
        const { exitStatusOf } = await import('../../qga/commands.js');
        const status = r.aborted ? 130 : r.timedOut ? 124 : exitStatusOf(r);
        if (ctx.json) ctx.out({ ...r, status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
        if (r.truncated) ctx.warn('the guest agent cut the output at 16 MiB per stream');
        if (r.timedOut || r.aborted)
          ctx.warn(`${r.aborted ? 'interrupted' : `still running after ${o.timeout ?? 60} s`}: ${r.killed ? `killed ${argv[0]} (pid ${r.pid}) in the guest` : `could not kill ${argv[0]} (pid ${r.pid}) in the guest; it keeps running there`}`);
        process.exitCode = status;
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
