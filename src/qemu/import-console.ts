/**
 * Command-line import, the console family: -monitor, -mon with its -chardev, -qmp, -serial,
 * -display, -vnc, -vga, -nographic, -curses, and QEMU's monitor, serial and display defaults
 * where kvmctl's differ (kvmctl runs QEMU detached: consoles are sockets).
 */
import type { ImportState, Opt } from './import-state.js';
import { parseBool, parseOpts, type QemuOpts } from './parse-opts.js';

/** Map one option of this family; false when the option is not one of its. */
export function mapConsoleOption(s: ImportState, o: Opt, v: string): boolean {
  const { vm, P, warn, note, extra, mapped, dropped, chardevs } = s;
  switch (o.name) {
    case 'monitor': {
      const r = mapChardevSpec(v);
      if (r.kind === 'none') vm.monitor = false;
      else if (r.kind === 'stdio') {
        if (vm.monitor === undefined) vm.monitor = true;
        note(o, `-monitor ${v}: kvmctl runs QEMU detached, so the monitor is on a socket in the VM's runtime dir instead (kvmctl monitor NAME)`);
      } else if (r.kind === 'chardev') {
        const cd = chardevs.get(r.id);
        const c = cd && !cd.status ? chardevMonitor(P(cd, 'backend')) : undefined;
        if (!c || 'reason' in c) { extra(o, c?.reason ?? `chardev ${r.id} is not one kvmctl imports`); break; }
        if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
        vm.monitor = c.monitor;
        mapped(cd);
      } else if (r.kind === 'reason') { extra(o, r.reason); break; }
      else {
        if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
        vm.monitor = r.monitor;
        if (r.waitOn) note(o, `-monitor ${v}: wait dropped: kvmctl never waits for a monitor client`);
      }
      mapped(o);
      break;
    }
    case 'mon': {
      const p = P(o, 'chardev');
      const cd = chardevs.get(p.get('chardev') ?? '');
      const rest = p.unknown(['chardev', 'mode', 'pretty']);
      if (!cd || cd.status || rest.length) { extra(o, rest.length ? `-mon ${p.describe(rest)} has no field in the definition` : `chardev ${p.get('chardev')} is not one kvmctl imports`); break; }
      const c = chardevMonitor(P(cd, 'backend'));
      if ('reason' in c) { extra(o, c.reason); break; }
      if ((p.get('mode') ?? 'readline') === 'control') {
        if (!('socket' in (c.monitor as object))) { extra(o, 'kvmctl imports QMP on a unix socket only'); break; }
        vm.qmp = c.monitor;
        note(o, 'QMP: kvmctl always keeps its own QMP socket in the VM\'s runtime dir; the imported path is recorded in qmp.socket');
      } else {
        if (vm.monitor !== undefined && vm.monitor !== true) { extra(o, 'kvmctl keeps one monitor'); break; }
        vm.monitor = c.monitor;
      }
      if (c.waitOn) note(o, 'wait=on dropped: kvmctl never waits for a monitor client');
      mapped(o, cd);
      break;
    }
    case 'qmp': {
      const r = mapChardevSpec(v);
      if (r.kind !== 'socket' || !('socket' in (r.monitor as object))) { extra(o, 'kvmctl imports a QMP unix server socket only (it always keeps its own)'); break; }
      vm.qmp = r.monitor;
      note(o, 'QMP: kvmctl always keeps its own QMP socket in the VM\'s runtime dir; the imported path is recorded in qmp.socket');
      mapped(o);
      break;
    }
    case 'serial': {
      if (vm.serial !== undefined) { extra(o, 'kvmctl keeps one serial port'); break; }
      if (v === 'none' || v === 'null') { vm.serial = 'none'; mapped(o); break; }
      vm.serial = 'socket';
      if (v === 'mon:stdio') {
        if (vm.monitor === undefined) vm.monitor = true;
        note(o, '-serial mon:stdio: kvmctl runs QEMU detached: the serial console is on a socket with a log (kvmctl console NAME) and the monitor on its own socket (kvmctl monitor NAME)');
      } else {
        const m = /^chardev:(.*)$/.exec(v);
        const cd = m ? chardevs.get(m[1]!) : undefined;
        if (cd) mapped(cd);
        note(o, `-serial ${v}: kvmctl puts the serial console on a socket with a log instead (kvmctl console NAME)`);
      }
      mapped(o);
      break;
    }
    case 'display': {
      const p = P(o, 'type');
      const t = p.get('type');
      if (p.has('vnc')) s.display = { type: 'vnc', vnc: vncOf(p.get('vnc')!) };
      else if (t === 'none' || t === 'curses') s.display = { ...(s.display ?? {}), type: t };
      else if (t === 'vnc') s.display = { type: 'vnc' };
      else {
        s.display = { type: 'vnc' };
        warn(o, `-display ${v}: kvmctl runs QEMU detached, without a window: imported as a VNC display on a socket (kvmctl vnc NAME)`);
      }
      const rest = p.unknown(['type', 'vnc']);
      if (rest.length) warn(o, `-display ${v}: ${p.describe(rest)} not imported`);
      mapped(o);
      break;
    }
    case 'vnc': {
      const p = P(o, 'vnc');
      if (p.unknown(['vnc']).length) { extra(o, `-vnc ${p.describe(p.unknown(['vnc']))} has no field in the definition`); break; }
      if (p.get('vnc') === 'none') { dropped(o, 'no VNC'); break; }
      const vnc = vncOf(p.get('vnc')!);
      if (!vnc) { extra(o, 'it is not a unix socket or HOST:DISPLAY'); break; }
      s.display = { type: 'vnc', vnc };
      mapped(o);
      break;
    }
    case 'vga':
      if (v === 'std') dropped(o, 'kvmctl adds the standard VGA adapter itself when the display is not none');
      else if (v === 'none') dropped(o, 'no VGA adapter: kvmctl adds none when display is none');
      else extra(o, `VGA model ${v} has no field in the definition`);
      break;
    case 'nographic':
      s.nographic = true;
      note(o, '-nographic: imported as display none; kvmctl runs QEMU detached: the serial console is on a socket (kvmctl console NAME), the monitor too (kvmctl monitor NAME)');
      mapped(o);
      break;
    case 'curses':
      s.display = { type: 'curses' };
      mapped(o);
      break;
    default:
      return false;
  }
  return true;
}

/** -nographic keeps a monitor, -nodefaults means no serial port, no -display means QEMU's window (VNC here). */
export function consoleDefaults(s: ImportState): void {
  const { vm } = s;
  // -nographic multiplexes a monitor onto the terminal (Ctrl-A c): keep one, on a socket.
  if (s.nographic && !s.nodefaults && vm.monitor === undefined) vm.monitor = true;
  if (s.nodefaults && vm.serial === undefined) vm.serial = 'none'; // -nodefaults and no -serial: QEMU has no serial port
  if (!s.display) {
    s.display = { type: s.nographic ? 'none' : 'vnc' };
    if (!s.nographic) s.note(undefined, 'no -display: QEMU would open a window; kvmctl runs QEMU detached, so the display is VNC on a socket (kvmctl vnc NAME)');
  }
}

type ChardevResult =
  | { kind: 'socket'; monitor: { socket: string } | { telnet: string }; waitOn: boolean }
  | { kind: 'stdio' }
  | { kind: 'none' }
  | { kind: 'chardev'; id: string }
  | { kind: 'reason'; reason: string };

/** `-monitor`/`-qmp`/`-serial` chardev shorthand: unix:PATH,server,nowait / telnet:H:P,server,nowait / stdio … */
function mapChardevSpec(v: string): ChardevResult {
  if (v === 'none' || v === 'null') return { kind: 'none' };
  if (v === 'stdio' || v === 'vc' || v === 'mon:stdio' || v.startsWith('vc:')) return { kind: 'stdio' };
  const cm = /^chardev:(.+)$/.exec(v);
  if (cm) return { kind: 'chardev', id: cm[1]! };
  const p = parseOpts(v, 'backend');
  const b = p.get('backend') ?? '';
  const colon = b.indexOf(':');
  const kind = colon < 0 ? b : b.slice(0, colon);
  const target = colon < 0 ? '' : b.slice(colon + 1);
  const rest = p.unknown(['backend', 'server', 'wait', 'telnet']);
  if (rest.length) return { kind: 'reason', reason: `${p.describe(rest)} has no field in the definition` };
  if (!parseBool(p.get('server'))) return { kind: 'reason', reason: 'it connects to a socket as a client (no server)' };
  const waitOn = p.get('wait') === undefined ? true : !!parseBool(p.get('wait'));
  if (kind === 'unix' && target) return { kind: 'socket', monitor: { socket: target }, waitOn };
  if ((kind === 'telnet' || (kind === 'tcp' && parseBool(p.get('telnet')))) && /^[A-Za-z0-9.:[\]-]+:\d{1,5}$/.test(target)) return { kind: 'socket', monitor: { telnet: target }, waitOn };
  return { kind: 'reason', reason: `${kind || v} has no field in the definition (monitor sockets are unix:PATH or telnet:HOST:PORT)` };
}

/** `-chardev socket,id=X,path=P,server=on,wait=off` (or host=,port=,telnet=on) → a monitor. */
function chardevMonitor(p: QemuOpts): { monitor: { socket: string } | { telnet: string }; waitOn: boolean } | { reason: string } {
  if (p.get('backend') !== 'socket') return { reason: `chardev ${p.get('backend')} has no field in the definition (monitors are unix or telnet sockets)` };
  const rest = p.unknown(['backend', 'id', 'path', 'host', 'port', 'server', 'wait', 'telnet']);
  if (rest.length) return { reason: `chardev properties ${p.describe(rest)} have no field in the definition` };
  if (!parseBool(p.get('server'))) return { reason: 'the chardev connects as a client (no server=on)' };
  const waitOn = p.get('wait') === undefined ? true : !!parseBool(p.get('wait'));
  if (p.get('path')) return { monitor: { socket: p.get('path')! }, waitOn };
  if (p.get('port') && parseBool(p.get('telnet'))) return { monitor: { telnet: `${p.get('host') || '127.0.0.1'}:${p.get('port')}` }, waitOn };
  return { reason: 'a TCP monitor without telnet has no field in the definition' };
}

function vncOf(v: string): { socket: string } | { listen: string } | undefined {
  if (v.startsWith('unix:')) return { socket: v.slice(5) };
  if (/^[A-Za-z0-9.:[\]-]*:\d+$/.test(v)) return { listen: v };
  return undefined;
}
