/**
 * Command-line import, the machine family: -name, -machine/-M, -accel/-enable-kvm, -cpu, -smp, -m,
 * -boot, -kernel/-initrd/-append, -runas/-run-with and the flags kvmctl sets itself (dropped with
 * a note). Also QEMU's machine, CPU and memory defaults where kvmctl's differ, and the boot
 * entries that point at nothing.
 */
import { baseMachine } from '../import/generated-line.js';
import { parseSize, formatSize } from '../definition/units.js';
import type { ImportState, Opt } from './import-state.js';
import { parseBool } from './parse-opts.js';

/** Map one option of this family; false when the option is not one of its. */
/** Options kvmctl always sets itself: dropped on import, with why. */
const DROPPED: Record<string, string> = {
  daemonize: 'kvmctl always runs QEMU detached (its own session, pidfile, logs)',
  pidfile: "kvmctl keeps the pidfile in the VM's runtime dir",
  nodefaults: 'kvmctl always passes -nodefaults',
  'no-user-config': 'kvmctl always passes -no-user-config',
  sandbox: 'kvmctl sets its own -sandbox from the host facts',
  msg: 'kvmctl always passes -msg timestamp=on',
};

export function mapMachineOption(s: ImportState, o: Opt, v: string): boolean {
  const { vm, P, warn, note, extra, mapped, dropped, unresolved, extraArgsPush } = s;
  switch (o.name) {
    case 'name': {
      const p = P(o, 'guest');
      const n = p.get('guest');
      const rest = p.unknown(['guest']);
      if (rest.length) warn(o, `-name ${v}: ${p.describe(rest)} not imported (kvmctl names QEMU's process itself)`);
      if (n !== undefined && !unresolved(o, n)) vm.name = n;
      else warn(o, `-name ${v}: not a literal name; give --name`);
      mapped(o);
      break;
    }
    case 'machine':
    case 'M': {
      const p = P(o, 'type');
      if (p.get('type') === 'help') { extra(o, 'it only prints help'); break; }
      if (p.has('type')) {
        const b = baseMachine(p.get('type'));
        s.machineType = b.type;
        if (b.versioned) note(o, `machine ${p.get('type')}: imported as ${b.type} (the host QEMU's current ${b.type}; a versioned or vendor type such as +pve0 may not exist in this QEMU)`);
      }
      if (p.has('accel')) s.accels.push(...p.get('accel')!.split(':'));
      if (p.has('mem-merge')) s.memMerge = parseBool(p.get('mem-merge'));
      const rest = p.unknown(['type', 'accel', 'mem-merge']);
      if (rest.length) {
        // QEMU merges repeated -machine options, so the rest can ride in extraArgs.
        extraArgsPush(o, '-machine', p.pick(rest).toString(), `machine properties ${p.describe(rest)} have no field in the definition`);
      }
      mapped(o);
      break;
    }
    case 'enable-kvm':
      s.accels.push('kvm');
      mapped(o);
      break;
    case 'accel': {
      const p = P(o, 'accel');
      s.accels.push(p.get('accel')!);
      const rest = p.unknown(['accel']);
      if (rest.length) warn(o, `-accel ${v}: ${p.describe(rest)} not imported (-accel and -machine accel= cannot be combined, and kvmctl uses the latter)`);
      mapped(o);
      break;
    }
    case 'cpu': {
      // The schema takes a model with its flags (qemu64,+ssse3,hv-relaxed=on); what it cannot hold keeps only the model.
      const model = /^[A-Za-z0-9][A-Za-z0-9_.,=+-]*$/.test(v) ? v : v.split(',')[0]!;
      vm.cpu = { ...(vm.cpu ?? {}), model };
      if (model !== v) warn(o, `-cpu ${v}: only the model ${model} is kept (a flag value has characters a definition's cpu.model cannot hold; add the flags in extraArgs)`);
      mapped(o);
      break;
    }
    case 'smp': {
      const p = P(o, 'cpus');
      const num = (k: string) => (p.has(k) ? Number(p.get(k)) : undefined);
      const cpus = num('cpus');
      const topo = { sockets: num('sockets'), cores: num('cores'), threads: num('threads') };
      const bad = [cpus, topo.sockets, topo.cores, topo.threads].some((x) => x !== undefined && !(Number.isInteger(x) && x > 0));
      if (bad) { extra(o, 'it is not a CPU count'); break; }
      const given = Object.values(topo).filter((x) => x !== undefined);
      const count = cpus ?? (given.length ? given.reduce((a, b) => a! * b!, 1)! : 1);
      const cpu: Record<string, unknown> = { ...(vm.cpu ?? {}), count };
      if (given.length) {
        let { sockets, cores, threads } = topo;
        const known = (sockets ?? 1) * (cores ?? 1) * (threads ?? 1);
        if (known !== count && cores === undefined && count % ((sockets ?? 1) * (threads ?? 1)) === 0) cores = count / ((sockets ?? 1) * (threads ?? 1));
        else if (known !== count && sockets === undefined && count % ((cores ?? 1) * (threads ?? 1)) === 0) sockets = count / ((cores ?? 1) * (threads ?? 1));
        if ((sockets ?? 1) * (cores ?? 1) * (threads ?? 1) === count) Object.assign(cpu, { sockets, cores, threads });
        else warn(o, `-smp ${v}: the topology does not multiply to ${count}; only the count is imported`);
      }
      vm.cpu = cpu;
      const rest = p.unknown(['cpus', 'sockets', 'cores', 'threads']);
      if (rest.length) extraArgsPush(o, '-smp', p.pick(rest).toString(), `-smp ${p.describe(rest)} has no field in the definition`);
      mapped(o);
      break;
    }
    case 'm': {
      const p = P(o, 'size');
      const sz = p.get('size');
      const bytes = sz === undefined ? undefined : /^\d+$/.test(sz) ? Number(sz) * 1024 ** 2 : parseSize(sz.replace(/([kmgt])b?$/i, (x) => x[0]!.toUpperCase()));
      if (bytes === undefined) { extra(o, 'it is not a memory size'); break; }
      vm.memory = formatSize(bytes);
      const rest = p.unknown(['size']);
      if (rest.length) extraArgsPush(o, '-m', p.pick(rest).toString(), `-m ${p.describe(rest)} has no field in the definition`);
      mapped(o);
      break;
    }
    case 'boot': {
      const p = P(o, 'order');
      const letters = (x: string | undefined) => [...new Set([...(x ?? '')])];
      const dev = (l: string) => ({ c: 'disk', d: 'cdrom', n: 'network' } as Record<string, string>)[l];
      const boot: Record<string, unknown> = {};
      const order = letters(p.get('order')).map(dev);
      if (order.some((x) => !x)) warn(o, `-boot ${v}: floppy boot (a, b) is not supported; left out`);
      if (order.filter(Boolean).length) boot.order = order.filter(Boolean);
      const once = letters(p.get('once')).map(dev)[0];
      if (once) {
        boot.once = once;
        note(o, `-boot once=${p.get('once')}: kvmctl applies boot.once only when asked on start (an install boot), not on every start`);
      }
      const menu = parseBool(p.get('menu'));
      if (menu !== undefined) boot.menu = menu;
      if (Object.keys(boot).length) vm.boot = boot;
      const rest = p.unknown(['order', 'once', 'menu']);
      if (rest.length) extraArgsPush(o, '-boot', p.pick(rest).toString(), `-boot ${p.describe(rest)} has no field in the definition`);
      mapped(o);
      break;
    }
    case 'no-kvm':
      dropped(o, 'an old flag; the accelerator comes from -machine accel= / -enable-kvm');
      break;
    case 'kernel':
      vm.kernel = { ...(vm.kernel ?? {}), path: v };
      mapped(o);
      break;
    case 'initrd':
    case 'append':
      break; // with -kernel: mapKernelParts
    case 'runas':
      vm.runAs = v;
      mapped(o);
      break;
    case 'run-with': {
      const p = P(o);
      const u = p.get('user');
      if (!u || p.unknown(['user']).length) { extra(o, `-run-with ${v}: only user= is imported`); break; }
      const [user, group] = u.split(':');
      vm.runAs = group ? { user, group } : user;
      mapped(o);
      break;
    }
    case 'nodefaults':
      s.nodefaults = true;
      dropped(o, DROPPED.nodefaults!);
      break;
    default:
      if (!Object.hasOwn(DROPPED, o.name)) return false;
      dropped(o, DROPPED[o.name]!);
  }
  return true;
}

/** -initrd and -append go with -kernel. */
export function mapKernelParts(s: ImportState): void {
  const { vm, all, extra, mapped } = s;
  for (const o of [...all('initrd'), ...all('append')]) {
    if (!vm.kernel) { extra(o, `-${o.name} without -kernel`); continue; }
    vm.kernel[o.name === 'initrd' ? 'initrd' : 'append'] = o.value;
    mapped(o);
  }
}

/** QEMU's machine, accelerator, CPU and memory defaults where kvmctl's differ. Returns the machine type. */
export function machineDefaults(s: ImportState): string {
  const { vm, warn, note, given } = s;
  if (s.machineType === undefined && !given('machine', 'M')) note(undefined, 'no -machine: QEMU\'s default machine is pc (i440fx); imported as machine type pc (kvmctl\'s own default is q35)');
  const type = s.machineType ?? 'pc';
  const acc = [...new Set(s.accels.filter((a) => a === 'kvm' || a === 'tcg'))];
  for (const a of s.accels.filter((x) => x !== 'kvm' && x !== 'tcg')) warn(undefined, `accelerator ${a} is not supported by kvmctl (kvm, tcg): left out`);
  if (acc.length === 0) note(undefined, 'no -enable-kvm / accel=: QEMU runs such a script under TCG, so accel is [tcg]; use [kvm, tcg] to prefer KVM');
  vm.machine = { type, accel: acc.length ? acc : ['tcg'], ...(s.memMerge !== undefined ? { memMerge: s.memMerge } : {}) };
  if (!vm.cpu?.model) {
    vm.cpu = { model: 'qemu64', ...(vm.cpu ?? {}) };
    if (!given('cpu')) note(undefined, 'no -cpu: QEMU\'s default model qemu64 is kept (host is faster under KVM)');
  }
  if (!vm.cpu.count) vm.cpu.count = 1;
  if (!vm.memory) {
    vm.memory = '128M';
    if (!given('m')) note(undefined, 'no -m: QEMU\'s default of 128M is kept');
  }
  return type;
}

/** Boot entries that point at nothing would not validate: leave them out, saying so. */
export function bootFixups(s: ImportState): void {
  const { vm, disks, cdroms, nics, warn, note } = s;
  if (vm.boot && !vm.boot.order && !disks.length && !vm.kernel) {
    // boot: {menu: …} alone means order [disk]: with no disk, say so instead.
    note(undefined, `-boot ${vm.boot.menu !== undefined ? `menu=${vm.boot.menu ? 'on' : 'off'}` : ''}: the script has no disk to boot; boot options left out`.replace('-boot : ', '-boot: '));
    delete vm.boot;
  }
  if (vm.boot) {
    const has = { disk: disks.length > 0 || !!vm.kernel, cdrom: cdroms.length > 0, network: nics.length > 0 } as Record<string, boolean>;
    const miss = [...(vm.boot.order ?? []), vm.boot.once].filter((b) => b && !has[b]);
    if (miss.length) {
      warn(undefined, `-boot: boots from ${miss.join(', ')} but the script defines none: left out`);
      vm.boot.order = (vm.boot.order ?? []).filter((b: string) => has[b]);
      if (vm.boot.once && !has[vm.boot.once]) delete vm.boot.once;
      if (!vm.boot.order.length) delete vm.boot.order;
      if (!Object.keys(vm.boot).length) delete vm.boot;
    }
  }
}

/**
 * Hot-plugged DIMMs (`-device pc-dimm,memdev=X` with its `-object memory-backend-*,id=X,size=N`)
 * become boot memory: kvmctl has no memory slots, and the guest keeps the same amount of RAM.
 * Other memory devices (nvdimm, virtio-mem, virtio-pmem) are not RAM at boot: they stay in extraArgs.
 */
export function mapMemoryDevices(s: ImportState): void {
  const { vm, P, note, mapped, extra } = s;
  for (const o of s.all('device')) {
    const p = P(o, 'driver');
    if (p.get('driver') !== 'pc-dimm') continue;
    const ob = s.objects.get(p.get('memdev') ?? '');
    const size = ob && !ob.status ? Number(P(ob, 'qom-type').get('size')) : NaN;
    const base = typeof vm.memory === 'string' ? parseSize(vm.memory) : undefined;
    if (!ob || !Number.isSafeInteger(size) || size <= 0 || base === undefined) { extra(o, 'a pc-dimm without a memory backend of known size, or without -m'); continue; }
    vm.memory = formatSize(base + size);
    note(o, `pc-dimm ${p.get('id') ?? ''} (${formatSize(size)}): added to the boot memory, now ${vm.memory} (kvmctl has no memory slots)`.replace('  ', ' '));
    mapped(o, ob);
  }
}
