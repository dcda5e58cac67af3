/** demo: boots the seed's layout in a private network namespace and checks it end to end. */
import path from 'node:path';
import type { Command } from 'commander';
import type { Action } from '../action.js';

export function register(program: Command, action: Action): void {
  program
    .command('demo')
    .description("boot the seed's layout (bridge + host-only net, two guests, a 9p share) in a private network namespace and check it")
    .option('--keep', 'keep the demo\'s KVMCTL_HOME (definitions, logs) afterwards')
    .action(
      action(async (ctx, opts: { keep?: boolean }) => {
        // The demo makes (and deletes) a namespace of its own and touches nothing outside it;
        // running it "inside" another namespace is not something namespaces can do (they do
        // not nest), and silently ignoring the request would look like confinement it is not.
        const ns = ctx.netns();
        if (ns !== undefined) {
          const { badInput } = await import('../../errors.js');
          throw badInput('DEMO_NETNS', `the demo does not run in network namespace "${ns}" (--netns / KVMCTL_NETNS): it creates a private namespace of its own, kvmctl-demo-*, and deletes it afterwards`, 'run it without --netns and with KVMCTL_NETNS unset; it changes nothing in the host\'s namespace or in any other');
        }
        const { runDemo } = await import('../../demo/demo.js');
        const { installRoot } = await import('../../host/paths.js');
        const examples = path.join(installRoot(import.meta.url), 'examples');
        const r = await runDemo({ examples, out: (s) => process.stdout.write(`${s}\n`), keep: opts.keep });
        if (ctx.json) ctx.out(r);
        if (!r.ok) process.exitCode = 1;
      }),
    );
}
