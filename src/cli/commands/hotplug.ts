/**
 * Changes to a running VM (src/vm/hotplug.ts, docs/tuning.md): `kvmctl memory show|set` (the
 * virtio balloon), `kvmctl cpu set` (vCPU hotplug up to cpu.maxCount, re-pinned), `kvmctl usb
 * list|attach|detach` (usb-host on the VM's xHCI controller). Nothing is written to the definition.
 */
import type { Command } from 'commander';
import type { Action } from '../action.js';
import { badInput } from '../../errors.js';

const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;

export function register(program: Command, action: Action): void {
  const svc = () => import('../../vm/hotplug.js');
  const memory = program.command('memory').description("a running VM's memory balloon (memory.balloon): show, set")
    .addHelpText('after', '\nExamples:\n  kvmctl memory set db1 2G     (the guest gives memory back until it has 2 GiB)\n  kvmctl memory show db1');
  memory.command('show').description('the guest memory the balloon leaves the guest, and the defined size').argument('<name>')
    .action(action(async (ctx, name: string) => {
      const r = await (await svc()).balloonInfo(ctx.paths, name);
      ctx.out(r, () => `${name}: ${mib(r.actual)} of ${mib(r.memory)}`);
    }));
  memory.command('set').description('set the balloon target (64M … the defined memory); the guest driver inflates or deflates towards it').argument('<name>').argument('<size>')
    .action(action(async (ctx, name: string, size: string) => {
      const r = await (await svc()).setBalloon(ctx.paths, name, size);
      ctx.out(r, () => `${name}: target ${mib(r.target!)}, now ${mib(r.actual)} of ${mib(r.memory)}`);
    }));

  const cpu = program.command('cpu').description("a running VM's vCPUs: set (hotplug up to cpu.maxCount, pinned as cpu.pin says)");
  cpu.command('set').description('hotplug vCPUs until the VM has N (at most cpu.maxCount); cpu.pin is applied to the new threads').argument('<name>').argument('<count>')
    .action(action(async (ctx, name: string, count: string) => {
      if (!/^\d+$/.test(count)) throw badInput('BAD_CPU_COUNT', `"${count}" is not a vCPU count`, 'a whole number, at least 1');
      const r = await (await svc()).setCpus(ctx.paths, name, Number(count));
      ctx.out(r, () => `${name}: ${r.before} → ${r.after} vCPUs${r.added.length ? ` (added ${r.added.join(', ')})` : ''}${r.pinned ? `, ${r.pinned.length} threads pinned` : ''}`);
    }));

  const usb = program.command('usb').description("USB devices of a running VM (usb-host): list, attach, detach")
    .addHelpText('after', '\nExamples:\n  kvmctl usb attach desk 046d:c52b      (by vendor:product, as lsusb shows it)\n  kvmctl usb attach desk 1-1.4          (by bus-port)\n  kvmctl usb detach desk usbhot0');
  usb.command('list').description('usb-host devices of the running VM (from the definition and attached)').argument('<name>')
    .action(action(async (ctx, name: string) => {
      const rows = await (await svc()).usbList(ctx.paths, name);
      ctx.out(rows, () => rows.map((r) => r.id).join('\n'));
    }));
  usb.command('attach').description('plug a host USB device into the running VM (needs usb: entries or usbController: true)').argument('<name>').argument('<device>', 'VENDOR:PRODUCT (hex) or BUS-PORT').option('--id <id>', 'device id (default usbhotN)')
    .action(action(async (ctx, name: string, device: string, opts: { id?: string }) => {
      const r = await (await svc()).usbAttach(ctx.paths, name, device, opts.id);
      ctx.out(r, () => `${name}: attached ${device} as ${r.id}`);
    }));
  usb.command('detach').description('unplug a usb-host device by its id').argument('<name>').argument('<id>')
    .action(action(async (ctx, name: string, id: string) => {
      const r = await (await svc()).usbDetach(ctx.paths, name, id);
      ctx.out(r, () => `${name}: detached ${r.id}`);
    }));
}
