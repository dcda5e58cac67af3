/**
 * Real guests (issue #15): what a vTPM costs at start, and how fast the Debian 12 guest comes up
 * and goes down. Alternating A/B in one invocation:
 *   1. the test guest on q35, start → guest ready: PVH vmlinux without TPM (baseline), the bzImage
 *      without TPM (what a TPM VM boots, see src/vm/kernel.ts), the bzImage with a TPM 2.0 (swtpm);
 *   2. the Debian 12 image (desktop profile: UEFI Secure Boot, TPM, agent): start → agent answers,
 *      then `stop --method agent` and `stop` (ACPI) alternately.
 *
 *   node bench/real-guests.mjs [--quick]     (root; builds the Debian image first if not cached)
 */
import fs from 'node:fs';
import path from 'node:path';
import { load1, makeHome, QUICK, ratio, stats } from './lib.mjs';

const runs = QUICK ? 3 : 5;
const debRuns = QUICK ? 2 : 3;
const h = makeHome('rg');
const loads = [];
const fmt = (s) => `${(s.median / 1000).toFixed(2)} s (${(s.min / 1000).toFixed(2)}–${(s.max / 1000).toFixed(2)} s, n=${s.n})`;
try {
  const g = JSON.parse((await h.cliOk(['image', 'test-guest', '--json'])).stdout);
  const base = (name, extra) => `name: ${name}\nmachine: q35\nmemory: 256M\nstopTimeout: 10\n${extra}`;
  const bz = `kernel: { path: ${g.kernel}, initrd: ${g.initrd}, append: "${g.appendDefault}" }\n`;
  await h.apply(base('pvh', 'kernel: { builtin: test-guest }\n'));
  await h.apply(base('bz', bz));
  await h.apply(base('bztpm', `${bz}tpm: { version: "2.0" }\n`));
  const t = { pvh: [], bz: [], bztpm: [] };
  await h.cliOk(['start', 'bztpm', '--wait-for-guest']); // first start makes the TPM state (not measured)
  await h.cliOk(['kill', 'bztpm']);
  for (let i = 0; i < runs; i++) {
    for (const vm of Object.keys(t)) {
      loads.push(load1());
      const r = await h.cliOk(['start', vm, '--wait-for-guest', '--json'], { timeoutMs: 120_000 });
      t[vm].push(JSON.parse(r.stdout).guestReadyMs);
      await h.cliOk(['kill', vm]);
    }
  }
  const s = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, stats(v)]));
  console.log('## vTPM at start (test guest, q35, TCG) — start → guest ready');
  console.log(`PVH vmlinux, no TPM (baseline)   ${fmt(s.pvh)}`);
  console.log(`bzImage, no TPM                  ${fmt(s.bz)}   ratio ${ratio(s.bz.median, s.pvh.median)}×`);
  console.log(`bzImage + TPM 2.0 (swtpm)        ${fmt(s.bztpm)}   ratio ${ratio(s.bztpm.median, s.pvh.median)}× (vs bzImage ${ratio(s.bztpm.median, s.bz.median)}×)`);

  const img = JSON.parse((await h.cliOk(['image', 'debian-12', '--disk', 'deb.qcow2', '--json'], { timeoutMs: 1_800_000 })).stdout);
  await h.apply('name: deb\nprofile: desktop\nmemory: 1G\ncpu: { count: 2 }\ndisks: [{ file: deb.qcow2 }]\nstopTimeout: 60\n');
  const up = [];
  const down = { agent: [], acpi: [] };
  for (let i = 0; i < debRuns * 2; i++) {
    loads.push(load1());
    const t0 = performance.now();
    await h.cliOk(['start', 'deb']);
    await h.cliOk(['guest', 'ping', 'deb', '--wait', '300'], { timeoutMs: 320_000 });
    up.push(performance.now() - t0);
    const method = i % 2 ? 'acpi' : 'agent';
    const r = JSON.parse((await h.cliOk(['stop', 'deb', '--method', method, '--json'], { timeoutMs: 120_000 })).stdout);
    if (r.how !== method) throw new Error(`stop --method ${method} ended by ${r.how}`);
    down[method].push(r.tookMs);
  }
  console.log(`\n## Debian 12 (image built in ${img.buildSeconds} s; desktop profile: UEFI Secure Boot, TPM 2.0, agent; 2 vCPUs, 1 GiB)`);
  console.log(`start → agent answers            ${fmt(stats(up))}`);
  console.log(`stop --method agent              ${fmt(stats(down.agent))}`);
  console.log(`stop (ACPI)                      ${fmt(stats(down.acpi))}   agent/ACPI ${ratio(stats(down.agent).median, stats(down.acpi).median)}×`);
  console.log(`\nload average (1 min) during the runs: ${Math.min(...loads)}–${Math.max(...loads)}`);
} finally {
  await h.cleanup();
  fs.rmSync(path.join(h.dir), { recursive: true, force: true });
}
