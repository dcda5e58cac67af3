/**
 * Where kvmctl keeps things. KVMCTL_HOME relocates everything (tests, demos):
 *   $KVMCTL_HOME/config/{vms,networks}/NAME.yaml   definitions
 *   $KVMCTL_HOME/data/{images,cache}               disks, the built test guest, probe cache
 *   $KVMCTL_HOME/run/vms/NAME/                     pid, sockets, argv, serial log
 * Without it: /etc/kvmctl, /var/lib/kvmctl, /run/kvmctl as root; XDG dirs otherwise.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type Paths = {
  config: string;
  vmDefs: string;
  netDefs: string;
  data: string;
  images: string;
  cache: string;
  run: string;
};

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): Paths {
  let config: string, data: string, run: string;
  if (env.KVMCTL_HOME) {
    const h = path.resolve(env.KVMCTL_HOME);
    config = path.join(h, 'config');
    data = path.join(h, 'data');
    run = path.join(h, 'run');
  } else if (process.getuid?.() === 0) {
    config = '/etc/kvmctl';
    data = '/var/lib/kvmctl';
    run = '/run/kvmctl';
  } else {
    const home = os.homedir();
    config = path.join(env.XDG_CONFIG_HOME || path.join(home, '.config'), 'kvmctl');
    data = path.join(env.XDG_DATA_HOME || path.join(home, '.local/share'), 'kvmctl');
    run = path.join(env.XDG_RUNTIME_DIR || path.join(os.tmpdir(), `kvmctl-${process.getuid?.() ?? 'u'}`), 'kvmctl');
  }
  return {
    config,
    vmDefs: path.join(config, 'vms'),
    netDefs: path.join(config, 'networks'),
    data,
    images: path.join(data, 'images'),
    cache: path.join(data, 'cache'),
    run,
  };
}

/** Where the built test guest is cached: $KVMCTL_GUEST_CACHE, else <data>/guest. */
export function guestCacheRoot(paths: Paths, env: NodeJS.ProcessEnv = process.env): string {
  return env.KVMCTL_GUEST_CACHE ? path.resolve(env.KVMCTL_GUEST_CACHE) : path.join(paths.data, 'guest');
}

/**
 * Persistent per-VM state kvmctl makes (not the definition, not disks): the UEFI vars (nvram.fd),
 * the TPM state (tpm/), their copies per snapshot (snapshots/NAME/). Kept when the VM is removed
 * unless asked (see src/vm/remove.ts).
 */
export function vmStateDir(paths: Paths, name: string): string {
  return path.join(paths.data, 'vms', name);
}

/** Runtime directory of one VM. */
export function vmRunDir(paths: Paths, name: string): string {
  return path.join(paths.run, 'vms', name);
}

/** Runtime files of a VM, all inside its runtime dir. */
export function vmRuntimeFiles(paths: Paths, name: string) {
  const dir = vmRunDir(paths, name);
  return {
    dir,
    pidfile: path.join(dir, 'qemu.pid'),
    qmp: path.join(dir, 'qmp.sock'),
    serial: path.join(dir, 'serial.sock'),
    serialLog: path.join(dir, 'serial.log'),
    vnc: path.join(dir, 'vnc.sock'),
    qemuLog: path.join(dir, 'qemu.log'),
    argv: path.join(dir, 'argv.json'),
    state: path.join(dir, 'state.json'),
    lock: path.join(dir, '..', `${name}.lock`),
  };
}

/** The kvmctl checkout or package this code runs from (where examples/ and package.json are). */
export function installRoot(fromUrl: string): string {
  let dir = path.dirname(new URL(fromUrl).pathname);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'kvmctl') return dir;
    } catch {
      /* keep looking upwards */
    }
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the kvmctl install root above ${fromUrl}`);
}
