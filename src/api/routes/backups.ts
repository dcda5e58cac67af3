/** Backup routes: list, create, prune, verify, restore — through src/backup/, in the host's default repository only. */
import type { FastifyInstance } from 'fastify';
import { routes as R } from '../contract.js';
import { bind } from '../route.js';
import type { ServerCtx } from '../context.js';
import { badInput } from '../../errors.js';
import { parseSize } from '../../definition/units.js';

const bwlimitOf = (v: string | number | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = parseSize(v);
  if (n === undefined || n <= 0) throw badInput('BACKUP_BAD_OPTION', `bwlimit: ${JSON.stringify(v)} is not a size per second`, 'e.g. "50M" (bytes per second)', [{ path: 'body.bwlimit', message: 'a size such as 50M' }]);
  return n;
};

export function backupRoutes(app: FastifyInstance, ctx: ServerCtx): void {
  const { paths } = ctx;
  bind(app, R.backupTasks, async () => ctx.backups?.tasks() ?? []);
  bind(app, R.listBackups, async ({ params }) => {
    const r = await import('../../backup/repo.js');
    return r.listBackups(r.resolveRepo(paths), params.name);
  });
  bind(app, R.createBackup, async ({ params, body }) =>
    (await import('../../backup/create.js')).createBackup(paths, params.name, { mode: body?.mode ?? 'auto', noFreeze: body?.freeze === false, netns: ctx.netns, bwlimit: bwlimitOf(body?.bwlimit) }),
  );
  bind(app, R.pruneBackups, async ({ params, body }) => {
    const rules = { last: body.keepLast, hourly: body.keepHourly, daily: body.keepDaily, weekly: body.keepWeekly, monthly: body.keepMonthly, yearly: body.keepYearly };
    if (!Object.values(rules).some((n) => n)) {
      const { badInput } = await import('../../errors.js');
      throw badInput('BACKUP_BAD_OPTION', 'prune needs at least one keep rule', 'e.g. {"keepLast": 3, "keepDaily": 7}');
    }
    return (await import('../../backup/verify-prune.js')).pruneBackups(paths, params.name, rules, { dryRun: body.dryRun, netns: ctx.netns });
  });
  bind(app, R.verifyBackup, async ({ params }) => (await import('../../backup/verify-prune.js')).verifyBackup(paths, `${params.name}@${params.id}`));
  bind(app, R.restoreBackup, async ({ params, body }) =>
    (await import('../../backup/restore.js')).restoreBackup(paths, `${params.name}@${params.id}`, { as: body?.as, force: body?.force, netns: ctx.netns }),
  );
}
