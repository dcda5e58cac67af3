/**
 * `kvmctl service install|uninstall`: the boot-time service that runs `kvmctl autostart` at host
 * start and `kvmctl shutdown-all` at host shutdown (what libvirt-guests does for libvirt).
 *   - OpenRC: /etc/init.d/kvmctl, whose depend() needs the network services of the interfaces the
 *     autostart VMs use (net.br0 …, as the seed's netifrc `depend_br0() { need net.tap0; }` do);
 *   - systemd: /etc/systemd/system/kvmctl.service, Type=oneshot + RemainAfterExit.
 * Both call the absolute path of this kvmctl (node + bin/kvmctl.js) and carry KVMCTL_HOME when it
 * is set. Both stay "started" even when some VM failed to start: a failed service is not stopped
 * at shutdown, and then the VMs that did start would not be shut down gracefully.
 * Files carry a marker line; uninstall (and install without --force) only touch a file with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { badInput, KvmError } from '../errors.js';
import type { Paths } from './paths.js';

export const MARKER = 'kvmctl-managed';
export const INIT_SYSTEMS = ['openrc', 'systemd'] as const;
export type InitSystem = (typeof INIT_SYSTEMS)[number];

/** Where each init system's file goes, relative to the prefix. */
export const SERVICE_FILES: Record<InitSystem, string> = {
  openrc: 'etc/init.d/kvmctl',
  systemd: 'etc/systemd/system/kvmctl.service',
};

/** Symlinks that enable the service (made by rc-update / systemctl enable), relative to the prefix. */
const ENABLE_LINK_DIRS: Record<InitSystem, string[]> = {
  openrc: ['etc/runlevels/default', 'etc/runlevels/boot'],
  systemd: ['etc/systemd/system/multi-user.target.wants'],
};

export type ServiceConfig = {
  /** Absolute path of node and of bin/kvmctl.js. */
  node: string;
  script: string;
  kvmctlHome?: string;
  /** shutdown-all --timeout. */
  timeoutSec: number;
  /** Interfaces whose boot service the VMs need (bridges, static taps, macvtap parents). */
  interfaces: { ifname: string; netifrc: boolean }[];
  /** `autostart --netns NS`: the namespace install was run with (--netns / KVMCTL_NETNS), resolved by the CLI. */
  netns?: string;
};

/** This kvmctl's entry point: bin/kvmctl.js of the package this module belongs to. */
export function kvmctlScript(): string {
  const mine = fileURLToPath(new URL('../../bin/kvmctl.js', import.meta.url));
  if (fs.existsSync(mine)) return mine;
  // Installed some other way: the script this process was started as.
  const argv1 = process.argv[1];
  if (argv1 && /kvmctl(\.js)?$/.test(argv1)) return fs.realpathSync(argv1);
  throw new KvmError('KVMCTL_NOT_FOUND', `cannot tell where the kvmctl executable is (no ${mine})`, { hint: 'run kvmctl service install from an installed kvmctl (bin/kvmctl.js)' });
}

/** POSIX shell single quoting. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** systemd unit-file quoting of one argument: double quotes, backslash escapes, % doubled. */
export function sdq(s: string): string {
  const e = s.replace(/%/g, '%%');
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(e) ? e : `"${e.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function openrcScript(c: ServiceConfig): string {
  const need = c.interfaces.filter((i) => i.netifrc).map((i) => `net.${i.ifname}`);
  const use = c.interfaces.filter((i) => !i.netifrc).map((i) => `net.${i.ifname}`);
  const kv = shq(c.node);
  return `#!/sbin/openrc-run
# ${MARKER}: written by "kvmctl service install --init openrc"; "kvmctl service uninstall" removes it.
# Starts the VMs marked autostart at boot (kvmctl autostart) and shuts every VM down at shutdown
# (kvmctl shutdown-all: ACPI, then QMP quit, then SIGKILL after ${c.timeoutSec} s).

description="kvmctl: start autostart VMs at boot, shut all VMs down at shutdown"

kvmctl() {
	${c.kvmctlHome !== undefined ? `KVMCTL_HOME=${shq(c.kvmctlHome)} ` : ''}${kv} ${shq(c.script)} "$@"
}

depend() {
	need net${need.length ? ` ${need.join(' ')}` : ''}
${use.length ? `\t# made by kvmctl itself (autostart brings them up), or by a net.* service if there is one:\n\tuse ${use.join(' ')}\n` : ''}\tafter localmount netmount nfsmount iptables ip6tables nftables firewall
}

start() {
	ebegin "Starting the VMs marked autostart"
	if ! kvmctl autostart${c.netns ? ` --netns ${shq(c.netns)}` : ''}; then
		# Stay started all the same, so that stop() shuts down the VMs that did start.
		ewarn "kvmctl autostart: some VMs did not start (kvmctl autostart --dry-run, kvmctl status NAME)"
	fi
	eend 0
}

stop() {
	ebegin "Shutting down all VMs (up to ${c.timeoutSec} s, then forced)"
	kvmctl shutdown-all --timeout ${c.timeoutSec}
	eend $?
}
`;
}

export function systemdUnit(c: ServiceConfig): string {
  const exec = (args: string) => `${sdq(c.node)} ${sdq(c.script)} ${args}`;
  return `# ${MARKER}: written by "kvmctl service install --init systemd"; "kvmctl service uninstall" removes it.
# Starts the VMs marked autostart at boot (kvmctl autostart) and shuts every VM down at shutdown
# (kvmctl shutdown-all: ACPI, then QMP quit, then SIGKILL after ${c.timeoutSec} s).
[Unit]
Description=kvmctl: start autostart VMs at boot, shut all VMs down at shutdown
Wants=network-online.target
After=network-online.target local-fs.target remote-fs.target nftables.service
# Bridges the autostart VMs use (${c.interfaces.length ? c.interfaces.map((i) => i.ifname).join(', ') : 'none'}): made by systemd-networkd before
# network-online.target when it owns them (kvmctl net export --format networkd), else by kvmctl autostart.

[Service]
Type=oneshot
RemainAfterExit=yes
${c.kvmctlHome !== undefined ? `Environment=${sdq(`KVMCTL_HOME=${c.kvmctlHome}`)}\n` : ''}# "-": stay active when some VM failed to start, so that ExecStop still shuts the others down.
ExecStart=-${exec(c.netns ? `autostart --netns ${sdq(c.netns)}` : 'autostart')}
ExecStop=${exec(`shutdown-all --timeout ${c.timeoutSec}`)}
# shutdown-all ends everything by the timeout + the force time (QMP quit 2 s, SIGKILL 5 s).
TimeoutStopSec=${c.timeoutSec + 30}
# The QEMUs live in this unit's cgroup; systemd signals what is left only after ExecStop.

[Install]
WantedBy=multi-user.target
`;
}

/** The interfaces the autostart VMs depend on; `netifrc` = /etc/init.d/net.IF exists under the prefix. */
export async function serviceInterfaces(paths: Paths): Promise<string[]> {
  const { autostartPlan, readAllVms } = await import('../vm/autostart.js');
  const { readNetwork } = await import('../definition/store.js');
  const { bridgeIfname } = await import('../definition/network-views.js');
  const { vms } = readAllVms(paths);
  const auto = vms.filter((v) => v.autostart.enabled);
  const out = new Set<string>();
  for (const name of autostartPlan(auto).networks) {
    try {
      const net = readNetwork(paths, name);
      const br = bridgeIfname(net);
      if (br) out.add(br);
      else if (net.type === 'macvtap') out.add(net.parent);
    } catch {
      /* an unknown network: autostart reports it */
    }
  }
  for (const v of auto) for (const n of v.nics) if (n.tap) out.add(n.tap);
  return [...out].sort();
}

export type ServiceOptions = {
  init: string;
  prefix?: string;
  timeoutSec?: number;
  dryRun?: boolean;
  force?: boolean;
  /** For tests: the node and script paths to write (default: this process's). */
  node?: string;
  script?: string;
  env?: NodeJS.ProcessEnv;
  /** Network namespace autostart works in at boot (already resolved and checked by the caller). */
  netns?: string;
};

export type InstallResult = {
  init: InitSystem;
  file: string;
  action: 'created' | 'replaced' | 'unchanged' | 'would-write';
  text: string;
  interfaces: { ifname: string; netifrc: boolean }[];
  next: string[];
};

function checkInit(init: string): InitSystem {
  if (!(INIT_SYSTEMS as readonly string[]).includes(init)) throw badInput('BAD_INIT', `--init ${init}: not one of ${INIT_SYSTEMS.join(', ')}`, 'kvmctl service install --init openrc (Gentoo, Alpine) or --init systemd');
  return init as InitSystem;
}

function resolvePrefix(prefix = '/'): string {
  const p = path.resolve(prefix);
  if (!fs.existsSync(p)) throw badInput('PREFIX_NOT_FOUND', `--prefix ${prefix}: no such directory`);
  return p;
}

export async function installService(paths: Paths, o: ServiceOptions): Promise<InstallResult> {
  const init = checkInit(o.init);
  const prefix = resolvePrefix(o.prefix);
  const timeoutSec = o.timeoutSec ?? 120;
  if (!Number.isInteger(timeoutSec) || timeoutSec < 0 || timeoutSec > 86_400) throw badInput('BAD_TIMEOUT', `--timeout ${timeoutSec}: must be whole seconds, 0–86400`);
  const env = o.env ?? process.env;
  const ifnames = await serviceInterfaces(paths);
  const interfaces = ifnames.map((ifname) => ({ ifname, netifrc: fs.existsSync(path.join(prefix, 'etc/init.d', `net.${ifname}`)) }));
  const cfg: ServiceConfig = {
    node: o.node ?? process.execPath,
    script: o.script ?? kvmctlScript(),
    kvmctlHome: env.KVMCTL_HOME ? path.resolve(env.KVMCTL_HOME) : undefined,
    timeoutSec,
    interfaces,
    netns: o.netns,
  };
  const text = init === 'openrc' ? openrcScript(cfg) : systemdUnit(cfg);
  const file = path.join(prefix, SERVICE_FILES[init]);
  const next =
    init === 'openrc'
      ? [`rc-update add kvmctl default`, ...interfaces.filter((i) => !i.netifrc).map((i) => `# ${i.ifname} has no /etc/init.d/net.${i.ifname}: kvmctl brings it up itself (or: kvmctl net export --format netifrc, then ln -s net.lo /etc/init.d/net.${i.ifname})`)]
      : ['systemctl daemon-reload', 'systemctl enable kvmctl.service'];
  // /var/run/netns is a tmpfs: at boot the namespace is gone until something makes it again.
  if (o.netns) next.push(`# autostart runs with --netns ${o.netns}: the namespace must exist before this service starts at boot (ip netns add ${o.netns}, and its links, in an earlier boot service); else autostart refuses (NETNS_NOT_FOUND) and starts nothing`);
  const old = readIfExists(file);
  if (old !== undefined && !old.includes(MARKER) && !o.force) {
    throw new KvmError('SERVICE_FOREIGN', `${file} exists and was not written by kvmctl`, { hint: 'move it away first, or pass --force to overwrite it', exit: 2 });
  }
  if (o.dryRun) return { init, file, action: 'would-write', text, interfaces, next };
  if (old === text) return { init, file, action: 'unchanged', text, interfaces, next };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.kvmctl-${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: init === 'openrc' ? 0o755 : 0o644 });
  fs.chmodSync(tmp, init === 'openrc' ? 0o755 : 0o644); // umask
  fs.renameSync(tmp, file);
  return { init, file, action: old === undefined ? 'created' : 'replaced', text, interfaces, next };
}

export type UninstallResult = { removed: string[]; links: string[]; absent: string[]; next: string[] };

/** Remove the service file(s) kvmctl wrote (both init systems unless `init` is given) and the symlinks that enable them. */
export async function uninstallService(o: { init?: string; prefix?: string; dryRun?: boolean }): Promise<UninstallResult> {
  const inits = o.init ? [checkInit(o.init)] : [...INIT_SYSTEMS];
  const prefix = resolvePrefix(o.prefix);
  const found: { init: InitSystem; file: string }[] = [];
  const absent: string[] = [];
  for (const init of inits) {
    const file = path.join(prefix, SERVICE_FILES[init]);
    const text = readIfExists(file);
    if (text === undefined) {
      absent.push(file);
      continue;
    }
    // Refuse before touching anything: all or nothing.
    if (!text.includes(MARKER)) throw new KvmError('SERVICE_FOREIGN', `${file} was not written by kvmctl (no "${MARKER}" marker); left as it is`, { hint: 'remove it yourself if it is no longer wanted', exit: 2 });
    found.push({ init, file });
  }
  const removed: string[] = [];
  const links: string[] = [];
  const next: string[] = [];
  for (const { init, file } of found) {
    for (const dir of ENABLE_LINK_DIRS[init]) {
      const link = path.join(prefix, dir, path.basename(file));
      let target: string;
      try {
        target = fs.readlinkSync(link);
      } catch {
        continue;
      }
      if (path.resolve(path.dirname(link), target) !== file && target !== `/${SERVICE_FILES[init]}`) continue;
      if (!o.dryRun) fs.rmSync(link, { force: true });
      links.push(link);
    }
    if (!o.dryRun) fs.rmSync(file, { force: true });
    removed.push(file);
    if (init === 'systemd') next.push('systemctl daemon-reload');
  }
  return { removed, links, absent, next };
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KvmError('SERVICE_UNREADABLE', `${file}: ${(e as Error).message}`);
  }
}
