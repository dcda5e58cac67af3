/** Host routes: the host check and KSM — through src/host/check*.ts and src/host/ksm.ts. */
import type { FastifyInstance } from 'fastify';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';

export function hostRoutes(app: FastifyInstance, _ctx: ServerCtx): void {
  const ksm = async () => {
    const m = await import('../../host/ksm.js');
    return { m, root: process.env.KVMCTL_KSM_ROOT || m.KSM_ROOT };
  };
  bind(app, R.hostCheck, async () => {
    const { gatherHostInputs } = await import('../../host/check-gather.js');
    const { checkHost, summarize } = await import('../../host/check.js');
    const inputs = await gatherHostInputs();
    const items = checkHost(inputs);
    return { kernel: inputs.kernelRelease, kernelConfig: inputs.kernelConfig?.source ?? null, summary: summarize(items), items };
  });
  bind(app, R.ksm, async () => {
    const { m, root } = await ksm();
    return m.readKsm(root);
  });
  bind(app, R.ksmOn, async ({ body }) => {
    const { m, root } = await ksm();
    return m.writeKsm({ run: 1, pagesToScan: body.pagesToScan, sleepMillisecs: body.sleepMillisecs }, root);
  });
  bind(app, R.ksmOff, async ({ body }) => {
    const { m, root } = await ksm();
    return m.writeKsm({ run: body.unmerge ? 2 : 0 }, root);
  });
}
