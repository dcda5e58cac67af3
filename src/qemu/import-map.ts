/**
 * Command-line import: the mapping of a QEMU argv onto the definition's input form, option by
 * option, in the script's order. Each option family maps its own options into the shared
 * per-import state (import-state.ts): import-machine.ts, import-drives.ts, import-net.ts,
 * import-console.ts; -device is dispatched here by driver. Then the options that pair with
 * others, QEMU's defaults where kvmctl's differ, the name, extraArgs with their reasons, and the
 * validation of the result.
 */
import path from 'node:path';
import { KvmError, badInput } from '../errors.js';
import type { ImportResult } from '../import/types.js';
import { validateNetwork, validateVm } from '../definition/load.js';
import { NAME_RE } from '../definition/names.js';
import type { VmSpec } from '../definition/vm.js';
import { effectiveHotplugSlots } from '../definition/vm-effective.js';
import { HOTPLUG_PORT_PREFIX } from './platform.js';
import { consoleDefaults, mapConsoleOption } from './import-console.js';
import { mapDiskDevice, mapDriveOption, mapScsiControllers, mapShareDevice } from './import-drives.js';
import { bootFixups, machineDefaults, mapKernelParts, mapMachineOption, mapMemoryDevices } from './import-machine.js';
import { mapLegacyNet, mapNetOption, mapNicDevice, netDefaults } from './import-net.js';
import { DEVICE_PLACEMENT, ImportState, splitOptions, type Ctx, type Opt } from './import-state.js';
import type { QemuOpts } from './parse-opts.js';
import type { Redirect, Word } from './shell-words.js';

export function mapArgv(words: Word[], redirects: Redirect[], ctx: Ctx): Omit<ImportResult, 'argv' | 'line'> {
  // 1. Split into options; 2. backends by id (ImportState).
  const s = new ImportState(splitOptions(words, ctx.notes), redirects, ctx);
  const { opts, notes, vm, disks, cdroms, nics, shares, P, warn, extra, mapped } = s;

  // 3. Option by option. Values with shell substitutions that are not understood stay verbatim.
  for (const o of opts) {
    if (o.status) continue;
    if (o.word && o.word.unresolved.length && !['netdev', 'device', 'nic', 'name'].includes(o.name)) {
      extra(o, `its value contains ${o.word.unresolved.map((u) => u.text).join(' ')}, which kvmctl does not run`);
      continue;
    }
    const v = o.value ?? '';
    if (mapMachineOption(s, o, v) || mapDriveOption(s, o, v) || mapNetOption(s, o) || mapConsoleOption(s, o, v)) continue;
    switch (o.name) {
      case 'device':
        mapDevice(s, o);
        break;
      case 'object':
      case 'chardev':
      case 'fsdev':
        break; // with the device that uses them
      default:
        extra(o, `-${o.name} has no field in the definition`);
    }
  }

  // 4. Options that pair with others.
  mapKernelParts(s);
  mapMemoryDevices(s);
  mapLegacyNet(s);
  mapScsiControllers(s);
  // Backends nothing imported uses.
  for (const o of opts.filter((x) => ['drive', 'netdev', 'chardev', 'fsdev', 'object'].includes(x.name) && !x.status)) {
    if (o.name === 'object' && ['rng-random', 'rng-builtin'].includes(P(o, 'qom-type').get('qom-type') ?? '') && s.rng !== false) { mapped(o); continue; }
    extra(o, `no device that kvmctl imports uses it`);
  }

  // 5. QEMU's defaults where kvmctl's differ.
  const type = machineDefaults(s);
  // kvmctl's own hotplug ports (kvhp0…): machine.hotplugSlots, left out when it is the default.
  if (s.hotplugPorts > 0 && s.hotplugPorts !== effectiveHotplugSlots({ profile: 'standard', machine: { type } as VmSpec['machine'] }, type)) vm.machine.hotplugSlots = s.hotplugPorts;
  netDefaults(s, type);
  consoleDefaults(s);
  bootFixups(s);

  // 6. Name.
  let name = ctx.name ?? vm.name;
  if (!name && ctx.source && ctx.source !== '-') name = path.basename(ctx.source).replace(/\.[^.]*$/, '');
  if (!name) throw badInput('NAME_REQUIRED', `${ctx.source ?? 'input'}: the command has no -name`, 'give one with --name NAME');
  if (!NAME_RE.test(name)) {
    const fixed = name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
    if (!fixed || ctx.name) throw badInput('BAD_NAME', `"${name}" is not a valid VM name`, 'give one with --name NAME (letters, digits, "_", "." or "-")');
    warn(undefined, `name "${name}" is not a valid kvmctl name: using "${fixed}"`);
    name = fixed;
  }

  // 7. extraArgs in the script's order, each with its reason.
  const extraArgs: string[] = [];
  for (const o of opts) {
    if (o.status === 'extra') {
      const args = o.spelled === '' ? [o.value!] : o.value === undefined ? [o.spelled] : [o.spelled.replace(/^--/, '-'), o.value];
      extraArgs.push(...args);
      warn(o, `${args.join(' ')}: kept in extraArgs (${o.reason})`);
    }
    for (const [flag, value, why] of s.pushes.get(o) ?? []) {
      extraArgs.push(flag, value);
      warn(o, `${flag} ${value}: kept in extraArgs (${why})`);
    }
  }

  dedupeIds(nics, 'net');
  dedupeIds(disks, 'disk');
  dedupeIds(shares, 'fs');
  const out: Record<string, unknown> = { kind: 'vm', name };
  out.machine = vm.machine;
  out.cpu = vm.cpu;
  out.memory = vm.memory;
  out.rng = s.rng;
  if (disks.length) out.disks = disks;
  if (cdroms.length) out.cdroms = cdroms;
  if (vm.boot) out.boot = vm.boot;
  if (vm.kernel) out.kernel = vm.kernel;
  out.nics = nics.map((n) => orderKeys(n, ['id', 'network', 'tap', 'user', 'model', 'mac', 'vhost']));
  if (vm.monitor !== undefined) out.monitor = vm.monitor;
  if (vm.qmp) out.qmp = vm.qmp;
  if (vm.serial) out.serial = vm.serial;
  out.display = s.display;
  if (shares.length) out.shares = shares;
  if (vm.runAs) out.runAs = vm.runAs;
  if (extraArgs.length) out.extraArgs = extraArgs;

  let spec: VmSpec;
  try {
    spec = validateVm(out, `${ctx.source ?? 'input'} (imported)`);
  } catch (e) {
    if (e instanceof KvmError) throw new KvmError('IMPORT_INVALID', `${e.message}`, { exit: 2, issues: e.issues, hint: 'the script uses values kvmctl cannot accept; fix them in the script (or in the written YAML) and import again' });
    throw e;
  }
  const emittedNetworks = s.emittedNetworks;
  const networkSpecs = emittedNetworks.map((n) => validateNetwork(n, `network ${String(n.name)} (imported)`));
  return { name, vm: out, networks: emittedNetworks, spec, networkSpecs, notes };
}

/** -device, by driver: a NIC, an RNG, a disk or CD-ROM, a 9p share, the SCSI controller, VGA, or extraArgs. */
function mapDevice(s: ImportState, o: Opt): void {
  const { P, note, extra, mapped, dropped } = s;
  const p = P(o, 'driver');
  const drv = p.get('driver') ?? '';
  const placement = p.pick(DEVICE_PLACEMENT.filter((k) => k !== 'id'));
  const dropPlacement = () => {
    if (placement.pairs.length) note(o, `-device ${drv}: ${placement.toString()} dropped (kvmctl places devices and sets the boot order from boot:)`);
  };
  if (unresolvedOther(o, p, ['mac'])) { extra(o, `its value contains ${o.word!.unresolved.map((u) => u.text).join(' ')}, which kvmctl does not run`); return; }
  if (drv === 'pc-dimm') return; // mapMemoryDevices, once -m is known
  if (mapNicDevice(s, o, p, drv, dropPlacement)) return;
  if (drv === 'virtio-rng-pci' || drv === 'virtio-rng-device') {
    const rest = p.unknown(['driver', 'rng', ...DEVICE_PLACEMENT]);
    if (rest.length) { extra(o, `device properties ${p.describe(rest)} have no field in the definition`); return; }
    if (!p.has('rng')) { s.rng = true; mapped(o); return; }
    const ob = s.objects.get(p.get('rng')!);
    const op = ob && P(ob, 'qom-type');
    if (!ob || !op || op.unknown(['qom-type', 'id', 'filename']).length || !['rng-random', 'rng-builtin'].includes(op.get('qom-type')!)) {
      extra(o, `its rng backend ${p.get('rng')} is not an rng-random or rng-builtin object kvmctl imports`);
      return;
    }
    s.rng = op.get('qom-type') === 'rng-random' ? { source: op.get('filename') ?? '/dev/urandom' } : true;
    mapped(o, ob);
    return;
  }
  if (mapDiskDevice(s, o, p, drv, dropPlacement)) return;
  if (mapShareDevice(s, o, p, drv, dropPlacement)) return;
  if (drv === 'pcie-root-port' && new RegExp(`^${HOTPLUG_PORT_PREFIX}\\d+$`).test(p.get('id') ?? '')) {
    s.hotplugPorts++; // kvmctl's own spare ports (src/qemu/platform.ts hotplugPortArgs)
    mapped(o);
    return;
  }
  if (drv === 'virtio-scsi-pci') return; // the controller: decided once its disks are known (mapScsiControllers)
  if (drv === 'VGA' && s.display?.type !== 'none') { dropped(o, 'kvmctl adds the standard VGA adapter itself when the display is not none'); return; }
  extra(o, /^usb-|xhci|ehci|uhci/.test(drv) ? 'USB devices have no field in the definition' : `device ${drv} has no field in the definition`);
}

function unresolvedOther(o: Opt, p: QemuOpts, allowed: string[]): boolean {
  if (!o.word?.unresolved.length) return false;
  return p.pairs.some(([k, val]) => !allowed.includes(k) && o.word!.unresolved.some((u) => val.includes(u.text)));
}

function orderKeys<T extends object>(o: T, order: string[]): T {
  const src = o as Record<string, unknown>;
  const keys = [...order.filter((k) => k in src), ...Object.keys(src).filter((k) => !order.includes(k))];
  return Object.fromEntries(keys.map((k) => [k, src[k]])) as T;
}

/** Make effective ids (id ?? PREFIXi) unique, renaming later duplicates. */
function dedupeIds(items: Record<string, unknown>[], prefix: string): void {
  const eff = (x: Record<string, unknown>, i: number) => (x.id as string | undefined) ?? `${prefix}${i}`;
  const seen = new Set<string>();
  items.forEach((x, i) => {
    let id = eff(x, i);
    if (seen.has(id.toLowerCase())) {
      let k = 0;
      while (items.some((y, j) => eff(y, j).toLowerCase() === `${prefix}${k}`) || seen.has(`${prefix}${k}`)) k++;
      id = `${prefix}${k}`;
      x.id = id;
    }
    seen.add(id.toLowerCase());
  });
}
