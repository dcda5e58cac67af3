/**
 * The README's main job, `kvmctl demo`, run as a user runs it: the seed's exam_vm printed, then
 * the seed's layout booted for real in a namespace of the demo's own — demo-a on the standard
 * profile (q35), demo-b on the fast profile (microvm) — with every check passing, and nothing
 * left behind (namespace, QEMU).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/host/exec.js';
import { isAlive as alive } from '../../src/vm/proc.js';
import { BIN, GUEST_CACHE, ROOT } from '../helpers/kvmctl.js';
import { canUseNetns, tempHome } from '../helpers/netns.js';

const can = canUseNetns().ok;

describe.skipIf(!can)('kvmctl demo (the quick start\'s main job)', () => {
  const home = tempHome();
  const pids: number[] = [];
  afterAll(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL'); // only QEMUs the demo reported starting
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('boots the seed layout with a standard and a fast-profile guest, passes every check, leaves nothing', async () => {
    const child = spawn(process.execPath, [BIN, 'demo'], {
      cwd: ROOT,
      env: { ...process.env, KVMCTL_HOME: home, KVMCTL_GUEST_CACHE: GUEST_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    for (const m of out.matchAll(/started demo-[ab] \(pid (\d+)/g)) pids.push(Number(m[1]));

    expect(code, out).toBe(0);
    expect(out).toContain('-name exam_vm');
    expect(out).toMatch(/started demo-a \(pid \d+, (kvm|tcg), machine q35\)/);
    expect(out).toMatch(/started demo-b \(pid \d+, (kvm|tcg), machine microvm\)/);
    expect(out).toMatch(/PASS {2}a file written by demo-a into the 9p share is on the host/);
    expect(out).toContain('7 of 7 checks passed; namespace, links, QEMUs and files removed');
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(alive(pid), `QEMU ${pid} still running`).toBe(false);
    const ns = /network namespace (kvmctl-demo-[0-9a-f]+)/.exec(out)![1]!;
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(ns);
  }, 180_000);
});
