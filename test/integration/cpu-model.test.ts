/**
 * cpu.model and cpu.enforce on the real QEMU of this machine (TCG), through the CLI: the model is
 * checked against `-cpu help` probed into the host facts (an unknown one is refused with the
 * nearest names, exit 2, nothing started); with enforce a model TCG cannot give whole
 * (Skylake-Server) fails to start with QEMU's reason, and one it can (Nehalem) runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../../src/guest/test-guest.js';
import { resolvePaths } from '../../src/host/paths.js';
import { makeHome, type Home } from '../helpers/kvmctl.js';

let h: Home;
beforeAll(async () => {
  h = makeHome();
  await h.apply(`name: typo
cpu: { model: Skylake-Servr }
kernel: { builtin: test-guest }
---
name: strict
cpu: { model: Skylake-Server, enforce: true }
kernel: { builtin: test-guest }
---
name: fits
cpu: { model: Nehalem, enforce: true }
kernel: { builtin: test-guest }
stopTimeout: 5
`);
  await ensureTestGuest(resolvePaths(h.env));
}, 320_000);
afterAll(async () => h?.cleanup());

describe('cpu.model against the host QEMU', () => {
  it('an unknown model is refused with close names; nothing starts', async () => {
    const r = await h.cli(['start', 'typo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/CPU_MODEL_UNKNOWN.*CPU model "Skylake-Servr" is not known to \S+ \(close: Skylake-Server/);
    expect(h.pids()).toEqual([]);
    const facts = JSON.parse(fs.readFileSync(path.join(h.dir, 'data/cache/host-facts.json'), 'utf8')).facts;
    expect(facts.cpuModels).toContain('Skylake-Server');
  });

  it('enforce: a model TCG cannot give whole does not start; one it can runs with enforce=on', async () => {
    const bad = await h.cli(['start', 'strict']);
    expect(bad.code).toBe(1);
    expect(bad.stderr + bad.stdout).toMatch(/TCG doesn't support requested feature/);
    expect(h.pids()).toEqual([]);
    const ok = await h.cli(['start', 'fits', '--json'], { timeoutMs: 60_000 });
    expect(ok.code, ok.stderr).toBe(0);
    const pid = JSON.parse(ok.stdout).pid as number;
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('Nehalem,enforce=on');
    expect((await h.cli(['kill', 'fits'])).code).toBe(0);
  }, 120_000);
});
