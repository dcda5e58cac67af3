/** kvmctl image test-guest | debian-12: build (once per machine, cached) and show the built-in guests. */
import type { Command } from 'commander';
import type { Action } from '../action.js';

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
  image
    .command('debian-12')
    .description('build the Debian 12 guest image (UEFI + Secure Boot, qemu-guest-agent, cloud kernel) once, then print where it is')
    .option('--disk <file>', 'also make FILE a qcow2 overlay on it for a VM (the cached base is never written)')
    .addHelpText('after', '\nExamples:\n  kvmctl image debian-12\n  kvmctl image debian-12 --disk /var/lib/kvmctl/images/deb1.qcow2   # then: disks: [{file: deb1.qcow2}], profile: server')
    .action(
      action(async (ctx, o: { disk?: string }) => {
        const { ensureDebianImage } = await import('../../guest/debian-image.js');
        const log = ctx.json ? undefined : (m: string) => process.stderr.write(`${m}\n`);
        const img = await ensureDebianImage(ctx.paths, { log });
        let overlay: string | undefined;
        if (o.disk) {
          const { cloneImage } = await import('../../disk/images.js');
          const path = await import('node:path');
          (await import('node:fs')).mkdirSync(ctx.paths.images, { recursive: true });
          overlay = (await cloneImage({ base: img.disk, dst: path.resolve(ctx.paths.images, o.disk) })).path;
        }
        ctx.out({ ...img, overlay }, () =>
          [
            `Debian 12 image (kernel ${img.kernelVersion}, built ${img.builtAt} in ${img.buildSeconds} s)`,
            `  disk      ${img.disk} (read-only base, ${(img.virtualSize / 2 ** 30).toFixed(1)} GiB virtual)`,
            `  packages  ${Object.entries(img.packages).map(([k, v]) => `${k} ${v}`).join(', ')}`,
            ...(overlay ? [`  overlay   ${overlay} (boot this one: profile: server or desktop)`] : []),
          ].join('\n'),
        );
      }),
    );
}
