/**
 * `kvmctl demo`: the seed, for real. Prints the seed's exam_vm as a validated definition and its
 * QEMU command line, then boots the seed's network layout inside a network namespace of its own
 * (nothing touches the host's interfaces) and checks, as it goes: guest↔guest ping over the
 * bridge, guest→"LAN" through the bridge's uplink, guest→host on the host-only net, a file
 * written by a guest into a 9p share seen on the host, graceful ACPI power-down. Exits 0 only if
 * every check passed, and leaves no namespace, link, QEMU or file behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { guestCacheRoot } from '../guest/test-guest.js';
import { run } from '../host/exec.js';
import { resolvePaths, type Paths } from '../host/paths.js';
import { probeHost } from '../host/probe.js';
import { formatCommandLine } from '../qemu/quote.js';
import { applyDefinitions } from '../vm/definitions.js';
import { planCommandLine } from '../vm/plan.js';
import { serialExec } from '../vm/serial-exec.js';
import { startVm } from '../vm/start.js';
import { stopVm, killVm } from '../vm/stop.js';
import { vmStatus } from '../vm/status.js';
import { seedDemoYaml } from './seed-layout.js';

type Check = { name: string; ok: boolean; detail: string; ms: number };

export async function runDemo(o: { examples: string; out: (s: string) => void; keep?: boolean }): Promise<{ checks: Check[]; ok: boolean }> {
  const say = o.out;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmctl-demo-'));
  const paths: Paths = resolvePaths({ ...process.env, KVMCTL_HOME: home });
  // The test guest comes from the caller's cache (built once by setup), not rebuilt in the
  // throw-away home: a rebuild downloads two .debs and costs ~8 s per demo.
  process.env.KVMCTL_GUEST_CACHE ??= guestCacheRoot(resolvePaths());
  const ns = `kvmctl-demo-${randomBytes(3).toString('hex')}`;
  const checks: Check[] = [];
  const check = async (name: string, fn: () => Promise<string>) => {
    const t0 = Date.now();
    try {
      const detail = await fn();
      checks.push({ name, ok: true, detail, ms: Date.now() - t0 });
      say(`  PASS  ${name} (${Date.now() - t0} ms)${detail ? ` — ${detail}` : ''}`);
    } catch (e) {
      checks.push({ name, ok: false, detail: (e as Error).message, ms: Date.now() - t0 });
      say(`  FAIL  ${name}: ${(e as Error).message}`);
    }
  };
  let nsMade = false;
  try {
    // 1. The seed's launch script, as a definition and a command line.
    say('== The seed\'s exam_vm as a kvmctl definition (examples/exam_vm.yaml) ==');
    // The seed keeps its monitor socket and share under /home/kvm-admin; definitions name paths only
    // inside storage roots, so record it as one (as `kvmctl storage add` would; nothing is created there).
    const { readHostConfig, writeHostConfig } = await import('../host/host-config.js');
    const hc = readHostConfig(paths);
    writeHostConfig(paths, { ...hc, storage: { ...hc.storage, roots: [...hc.storage.roots, '/home/kvm-admin'] } });
    say('  storage root /home/kvm-admin (the seed\'s layout) recorded in this demo\'s own host config');
    const applied = applyDefinitions(paths, [path.join(o.examples, 'exam_vm.yaml')]);
    say(applied.map((a) => `  ${a.kind}/${a.name} ${a.action}`).join('\n'));
    const facts = await probeHost(resolvePaths());
    const cmd = await planCommandLine(paths, 'exam_vm', facts);
    say(`\n== kvmctl cmdline exam_vm (on this host: ${cmd.accel}) ==`);
    say(formatCommandLine(cmd.argv, { multiline: true }));
    for (const w of cmd.warnings) say(`  note: ${w}`);

    // 2. The seed's network layout, for real, in a namespace of its own.
    say(`\n== Booting the seed's layout in network namespace ${ns} ==`);
    await run(['ip', 'netns', 'add', ns]);
    nsMade = true;
    const ipn = (...a: string[]) => run(['ip', '-n', ns, ...a]);
    await ipn('link', 'set', 'lo', 'up');
    // eth1 is the guest NIC of the seed's host; its veth peer "lan0" plays the physical LAN.
    await ipn('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'lan0');
    await ipn('addr', 'add', '10.0.0.1/24', 'dev', 'lan0');
    await ipn('link', 'set', 'lan0', 'up');
    const share = path.join(home, 'share_dir');
    fs.mkdirSync(share);
    (await import('../host/storage-roots.js')).addStorage(paths, share);
    const yaml = path.join(home, 'seed-demo.yaml');
    fs.writeFileSync(yaml, seedDemoYaml({ share }));
    for (const a of applyDefinitions(paths, [yaml])) say(`  ${a.kind}/${a.name} ${a.action}`);

    const { bridgeUp } = await import('../net/bridge.js');
    const { readNetwork } = await import('../definition/store.js');
    for (const n of ['br0', 'br_local0']) {
      const up = await bridgeUp(readNetwork(paths, n) as Parameters<typeof bridgeUp>[0], { paths, netns: ns });
      say(`  net up ${n}: ${up.action}`);
    }
    const t0 = Date.now();
    const started = await Promise.all(
      ['demo-a', 'demo-b'].map((vm) => startVm(paths, vm, { netns: ns, waitForGuest: true, timeoutMs: 120_000 })),
    );
    const machineOf = (argv: string[]) => (argv[argv.indexOf('-machine') + 1] ?? '?').split(',')[0]!.replace(/^type=/, '');
    for (const s of started) say(`  started ${s.name} (pid ${s.pid}, ${s.accel}, machine ${machineOf(s.argv)}): QMP ready ${s.qmpReadyMs} ms, guest ready ${s.guestReadyMs} ms`);
    say(`  both guests ready in ${Date.now() - t0} ms`);
    const links = JSON.parse((await ipn('-json', 'link', 'show')).stdout) as { ifname: string; master?: string }[];
    say(`  links in ${ns}: ${links.map((l) => (l.master ? `${l.ifname}→${l.master}` : l.ifname)).join(', ')}`);

    // A bridge port forwards only after the guest's first frames (and STP's delays, if on), and a
    // loaded 2-core host can be seconds late: try a few rounds before calling it a failure.
    const ping = async (vm: string, addr: string) => {
      let last = '';
      for (let round = 1; round <= 4; round++) {
        const r = await serialExec(paths, vm, `ping -c 2 -W 3 ${addr}`, 30_000);
        const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.output);
        if (m && m[2] !== '0') return `${m[2]}/${m[1]} replies${round > 1 ? ` (round ${round})` : ''}`;
        last = r.output.trim().split('\n').pop() ?? '';
      }
      throw new Error(`${vm} → ${addr}: no reply in 4 rounds (${last})`);
    };
    await check('demo-a pings demo-b over the bridge br0', () => ping('demo-a', '10.0.0.12'));
    await check('demo-b reaches the "LAN" (10.0.0.1) through br0\'s uplink eth1', () => ping('demo-b', '10.0.0.1'));
    await check('demo-a pings the host on the host-only net br_local0 (192.168.1.1)', () => ping('demo-a', '192.168.1.1'));
    await check('demo-b pings demo-a on the host-only net', () => ping('demo-b', '192.168.1.11'));
    await check('a file written by demo-a into the 9p share is on the host', async () => {
      const r = await serialExec(paths, 'demo-a', 'echo "hello from $(hostname)" > /mnt/share/from-guest.txt && sync', 15_000);
      if (r.status !== 0) throw new Error(`guest write failed: ${r.output}`);
      const text = fs.readFileSync(path.join(share, 'from-guest.txt'), 'utf8').trim();
      if (text !== 'hello from demo-a') throw new Error(`host read "${text}"`);
      const xattrs = await run(['getfattr', '-d', '-m', 'user.virtfs', path.join(share, 'from-guest.txt')], { allowFailure: true });
      return `host reads "${text}"${xattrs.stdout.includes('user.virtfs') ? ' (owner kept in user.virtfs.* xattrs: mapped-xattr)' : ''}`;
    });
    for (const vm of ['demo-a', 'demo-b']) {
      await check(`${vm} powers down gracefully (ACPI via QMP)`, async () => {
        const r = await stopVm(paths, vm, { timeoutSec: 20 });
        if (r.how !== 'acpi') throw new Error(`ended by ${r.how}, not by the guest`);
        return `in ${r.tookMs} ms`;
      });
    }
  } catch (e) {
    checks.push({ name: 'demo ran to the end', ok: false, detail: (e as Error).message, ms: 0 });
    say(`  FAIL  ${(e as Error).message}`);
  } finally {
    for (const vm of ['demo-a', 'demo-b']) {
      const s = await vmStatus(paths, vm).catch(() => undefined);
      if (s && (s.state === 'running' || s.state === 'paused' || s.state === 'stopping')) await killVm(paths, vm).catch(() => undefined);
    }
    if (nsMade) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    if (!o.keep) fs.rmSync(home, { recursive: true, force: true });
  }
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  const left = (await run(['ip', 'netns', 'list'])).stdout.includes(ns);
  say(`\n${checks.filter((c) => c.ok).length} of ${checks.length} checks passed${left ? `; namespace ${ns} was NOT removed` : '; namespace, links, QEMUs and files removed'}`);
  return { checks, ok: ok && !left };
}
