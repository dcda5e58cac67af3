/** #14 item 7: `serve token rotate` — what its help says is what a running TCP server does (the old token is refused at once). */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/host/paths.js';
import { serve, type Serving } from '../../src/api/listen.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
let srv: Serving;
const get = (token: string) => fetch(`${srv.url}/api/vms`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

beforeAll(async () => {
  h = makeHome();
  const env = { ...h.env };
  delete env.KVMCTL_TOKEN;
  srv = await serve({ paths: resolvePaths(env), listen: '127.0.0.1:0', watch: false });
}, 60_000);
afterAll(async () => {
  await srv?.close();
  await h?.cleanup();
});

describe('serve token rotate', () => {
  it('the help says the old token is refused at once, and a running server does refuse it', async () => {
    const help = await h.cli(['serve', 'token', 'rotate', '--help'], { env: { KVMCTL_TOKEN: '' } });
    expect(help.code).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('the old token is refused from its next request on (no restart)');
    expect(help.stdout).not.toMatch(/next server start/);

    const old = srv.token!;
    expect(srv.tokenSource).toBe('generated');
    expect(await get(old)).toBe(200);
    const r = await h.cli(['serve', 'token', 'rotate', '--json'], { env: { KVMCTL_TOKEN: '' } });
    expect(r.code, r.stderr).toBe(0);
    const fresh = (JSON.parse(r.stdout) as { token: string; file: string });
    expect(fresh.file).toBe(path.join(h.dir, 'config', 'token'));
    expect(fresh.token).not.toBe(old);
    expect(await get(old)).toBe(401);
    expect(await get(fresh.token)).toBe(200);
  }, 60_000);
});
