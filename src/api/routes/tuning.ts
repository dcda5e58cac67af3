/**
 * A VM's tuned hardware over HTTP (docs/tuning.md "HTTP API and web UI"), thin over the same
 * service as `kvmctl memory|cpu|usb`: the balloon (src/vm/hotplug.ts setBalloon/balloonInfo), vCPU
 * hotplug (setCpus, re-pinned), usb-host attach/detach, and what is there now (src/vm/hardware.ts:
 * vCPU counts, the pinning read back from /proc, plugged USB devices, the definition's PCI devices),
 * plus the host's USB devices (src/host/usb-devices.ts). The mutating routes become tasks through
 * the contract (src/api/routes/tasks.ts); roles are declared in src/api/contract.ts.
 */
import type { FastifyInstance } from 'fastify';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

export function tuningRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  const hot = () => import('../../vm/hotplug.js');
  const hw = () => import('../../vm/hardware.js');

  bind(app, R.vmMemory, async ({ params }) => (await hot()).balloonInfo(paths, params.name));
  bind(app, R.setVmMemory, async ({ params, body }) => (await hot()).setBalloon(paths, params.name, String(body.size)));
  bind(app, R.vmCpus, async ({ params }) => (await hw()).cpuInfo(paths, params.name));
  bind(app, R.setVmCpus, async ({ params, body }) => (await hot()).setCpus(paths, params.name, body.count));
  bind(app, R.vmPinning, async ({ params }) => (await hw()).pinningReport(paths, params.name));
  bind(app, R.vmPci, async ({ params }) => (await hw()).pciDevices(paths, params.name));
  bind(app, R.hostUsb, async () => {
    const [{ listHostUsb }, { sysfsRoot }] = await Promise.all([import('../../host/usb-devices.js'), import('../../host/tuning-facts.js')]);
    return listHostUsb(sysfsRoot());
  });
  bind(app, R.vmUsb, async ({ params }) => (await hw()).usbPlugged(paths, params.name));
  bind(app, R.attachVmUsb, async ({ params, body }) => (await hot()).usbAttach(paths, params.name, body.device, body.id));
  bind(app, R.detachVmUsb, async ({ params }) => (await hot()).usbDetach(paths, params.name, params.id));
}
