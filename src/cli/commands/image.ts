/** kvmctl image test-guest: build (once per machine) and show the tiny test guest. */
import type { Command } from 'commander';
import type { Action } from '../main.js';

export function register(program: Command, action: Action): void {
  const image = program.command('image').description('built-in guest images');
  image
    .command('test-guest')
    .description('build the tiny test guest (Debian kernel + busybox initramfs) once, then print where it is')
    .option('--rebuild', 'build it again even when a current build is cached')
    .action(
      action(async (ctx, o: { rebuild?: boolean }) => {
        const { ensureTestGuest, guestCacheRoot } = await import('../../guest/test-guest.js');
        const log = ctx.json ? undefined : (m: string) => process.stderr.write(`${m}\n`);
        const g = await ensureTestGuest(ctx.paths, { rebuild: o.rebuild, log });
        ctx.out(g, () =>
          [
            `test guest (kernel ${g.kernelVersion}, built ${g.builtAt}) in ${g.dir}`,
            `  kernel   ${g.kernel}`,
            `  vmlinux  ${g.vmlinux ?? `(none: ${g.vmlinuxNote ?? 'not extracted'})`}`,
            `  initrd   ${g.initrd}`,
            `  append   ${g.appendDefault}`,
            `  modules  ${g.modules.map((m) => m.replace(/\.ko$/, '')).join(' ')}`,
            ...(g.modulesMissing.length ? [`  missing  ${g.modulesMissing.join(' ')}`] : []),
            `cache: ${guestCacheRoot(ctx.paths)} (set KVMCTL_GUEST_CACHE to share one build)`,
          ].join('\n'),
        );
      }),
    );
}
