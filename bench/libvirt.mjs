/**
 * libvirt on the same guest: an equivalent domain (q35, TCG, -cpu max, 256M, 1 vCPU, direct boot
 * of the same vmlinux/initrd/command line, virtio-rng, serial console to a file, no graphics
 * element — `<graphics type='none'/>` is rejected — and no video, USB or balloon). Alternating:
 * `virsh start` vs `kvmctl start --wait` (return time), then guest ready via each; `virsh list
 * --all` / `virsh domstate` vs `kvmctl list` / `kvmctl status`; RSS of libvirtd + virtlogd.
 * Setup (apt-get, daemons started by hand: PID 1 is not systemd) is bench/setup-libvirt.sh; the
 * daemons it started are ended by PID at the end. If libvirt cannot work here, the reason is
 * recorded and the benchmark is skipped.
 *
 *   node bench/libvirt.mjs [--quick]
 */
import fs from 'node:fs';
import path from 'node:path';
import { cmdlineArgv, line, load1, makeHome, now, QUICK, ratio, Results, ROOT, rssKb, sleep, stats, timed, tinyVm, waitMarker } from './lib.mjs';

const VIRSH = ['virsh', '-c', 'qemu:///system'];
const DOM = 'kvmctl-bench-tiny';
const BOOT = '/var/lib/libvirt/boot/kvmctl-bench';

const xml = (k) => `<domain type='qemu'>
  <name>${DOM}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>${k.kernel}</kernel><initrd>${k.initrd}</initrd><cmdline>${k.append}</cmdline></os>
  <features><acpi/></features>
  <cpu mode='maximum' check='none'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>${k.qemu}</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='${k.log}' append='off'/><target port='0'/></serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
</domain>
`;

async function virsh(args, ok = true) {
  const r = await timed([...VIRSH, ...args], { timeoutMs: 120_000 });
  if (ok && r.code !== 0) throw new Error(`virsh ${args.join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

export async function run(results) {
  const command = `node bench/libvirt.mjs${QUICK ? ' --quick' : ''}`;
  const setup = await timed(['bash', path.join(ROOT, 'bench/setup-libvirt.sh'), 'start'], { timeoutMs: 600_000 });
  if (setup.code !== 0) {
    const why = setup.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${setup.code}`;
    console.log(`libvirt: skipped (${why})`);
    results.add({ id: 'libvirt', title: 'libvirt comparison', command, skipped: why });
    return;
  }
  const daemons = Object.fromEntries(setup.stdout.trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
  const h = makeHome('l');
  const runs = QUICK ? 3 : 5;
  const figures = {};
  const loads = [];
  try {
    await h.apply(tinyVm('lv'));
    const argv = await cmdlineArgv(h, 'lv');
    const at = (f) => argv[argv.indexOf(f) + 1];
    // libvirt relabels (chowns) the kernel and initrd it boots: give it private copies.
    fs.mkdirSync(BOOT, { recursive: true });
    const kernel = path.join(BOOT, 'vmlinux');
    const initrd = path.join(BOOT, 'initrd.img');
    fs.copyFileSync(at('-kernel'), kernel);
    fs.copyFileSync(at('-initrd'), initrd);
    const log = `/var/log/libvirt/qemu/${DOM}-serial.log`;
    const xmlFile = path.join(h.dir, 'dom.xml');
    fs.writeFileSync(xmlFile, xml({ kernel, initrd, append: at('-append'), qemu: argv[0], log }));
    await virsh(['destroy', DOM], false);
    await virsh(['undefine', DOM], false);
    await virsh(['define', xmlFile]);

    const ms = { virshStart: [], kvmctlStart: [], virshReady: [], kvmctlReady: [] };
    for (let i = -1; i < runs; i++) {
      loads.push(load1());
      fs.rmSync(log, { force: true });
      const t0 = now();
      const v = await virsh(['start', DOM]);
      const vReady = await waitMarker(log, t0, 240_000);
      await virsh(['destroy', DOM]);
      const k = await h.cliOk(['start', 'lv', '--wait-for-guest', '--json'], { timeoutMs: 240_000 });
      const kj = JSON.parse(k.stdout);
      await h.cliOk(['kill', 'lv']);
      if (i < 0) continue; // warm-up
      ms.virshStart.push(v.ms);
      ms.virshReady.push(vReady);
      ms.kvmctlStart.push(kj.qmpReadyMs + (k.ms - kj.guestReadyMs)); // what `start --wait` alone would have taken, approx.
      ms.kvmctlReady.push(k.ms);
    }
    // A separate, exact `kvmctl start --wait` series (no guest wait), alternating with virsh start.
    const kStartExact = [];
    for (let i = 0; i < runs; i++) {
      const k = await h.cliOk(['start', 'lv', '--wait']);
      kStartExact.push(k.ms);
      await h.cliOk(['kill', 'lv']);
    }
    const cli = { virshList: [], virshDomstate: [], kvmctlList: [], kvmctlStatus: [] };
    for (let i = 0; i < (QUICK ? 5 : 10); i++) {
      cli.virshList.push((await virsh(['list', '--all'])).ms);
      cli.kvmctlList.push((await h.cliOk(['list'])).ms);
      cli.virshDomstate.push((await virsh(['domstate', DOM])).ms);
      cli.kvmctlStatus.push((await h.cliOk(['status', 'lv'])).ms);
    }
    const st = Object.fromEntries(Object.entries({ ...ms, kvmctlStartExact: kStartExact, ...cli }).map(([k, v]) => [k, stats(v)]));
    const rss = Object.fromEntries(Object.entries(daemonPids()).map(([k, p]) => [k, Math.round(rssKb(p) / 1024)]));
    figures.stats = st;
    figures.daemonRssMiB = rss;
    figures.virshStartOverKvmctlStart = ratio(st.virshStart.median, st.kvmctlStartExact.median);
    figures.kvmctlReadyOverVirshReady = ratio(st.kvmctlReady.median, st.virshReady.median);
    console.log('libvirt vs kvmctl (same guest, standard q35):');
    console.log(line('virsh start (returns)', st.virshStart));
    console.log(line('kvmctl start --wait (returns)', st.kvmctlStartExact));
    console.log(line('virsh start → guest ready', st.virshReady));
    console.log(line('kvmctl start --wait-for-guest', st.kvmctlReady));
    console.log(line('virsh list --all', st.virshList));
    console.log(line('kvmctl list', st.kvmctlList));
    console.log(line('virsh domstate', st.virshDomstate));
    console.log(line('kvmctl status', st.kvmctlStatus));
    console.log(`  virsh start / kvmctl start ${figures.virshStartOverKvmctlStart}× (target ≥ 4), kvmctl ready / libvirt ready ${figures.kvmctlReadyOverVirshReady} (target ≤ 0.75); daemons RSS MiB`, rss);
    await virsh(['destroy', DOM], false);
    await virsh(['undefine', DOM], false);
  } catch (e) {
    figures.error = e.message;
    console.log(`libvirt: failed: ${e.message}`);
  } finally {
    await h.cleanup();
    fs.rmSync(BOOT, { recursive: true, force: true });
    if (Object.keys(daemons).length) await timed(['bash', path.join(ROOT, 'bench/setup-libvirt.sh'), 'stop', ...Object.values(daemons).map(String)]);
    await sleep(200);
  }
  results.add({ id: 'libvirt', title: 'libvirt comparison', command, figures, loads, daemonsStartedByBench: daemons });
}

function daemonPids() {
  const out = {};
  for (const n of ['libvirtd', 'virtlogd']) {
    try {
      out[n] = Number(fs.readFileSync(`/run/${n}.pid`, 'utf8').trim());
    } catch {
      /* not running */
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = new Results();
  await run(r);
  r.save(path.join(ROOT, 'bench/results/libvirt.json'));
}
