/**
 * Checks before a start, so bad input gets a clear error and nothing is changed: files that must
 * exist, unix socket paths that fit in sun_path (108 bytes), a runAs user that exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, type ErrorIssue } from '../errors.js';
import type { RuntimePaths } from '../qemu/argv.js';
import type { VmSpec } from '../definition/vm.js';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export type UserIds = { uid: number; gid: number; name: string };

/** Look a user up in /etc/passwd (no shell, no getent). */
export function lookupUser(user: string, passwd = '/etc/passwd'): UserIds | undefined {
  let text = '';
  try {
    text = fs.readFileSync(passwd, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return { name: user, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

export function lookupGroup(group: string, file = '/etc/group'): number | undefined {
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === group) return Number(f[2]);
    }
  } catch {
    /* no group file */
  }
  return undefined;
}

/** `confinement`: the path-check issues of the definition (src/vm/path-check.ts), reported with the rest. */
export function preflight(vm: VmSpec, rt: RuntimePaths, imagesDir: string, kernel?: { path: string; initrd?: string }, confinement: ErrorIssue[] = []): { runAs?: UserIds } {
  const issues: ErrorIssue[] = [...confinement];
  const sockets: [string, string][] = [['qmp', rt.qmp]];
  if (vm.serial === 'socket') sockets.push(['serial', rt.serial]);
  if (vm.display.type === 'vnc' && !vm.display.vnc?.listen) sockets.push(['display.vnc.socket', vm.display.vnc?.socket ?? rt.vnc]);
  if (vm.monitor !== false && vm.monitor !== true && 'socket' in vm.monitor) sockets.push(['monitor.socket', vm.monitor.socket]);
  for (const [what, p] of sockets) {
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
      issues.push({ path: what, message: `socket path is ${Buffer.byteLength(p)} bytes, over the ${MAX_SOCKET_PATH}-byte limit of a unix socket: ${p}` });
    }
  }
  vm.disks.forEach((d, i) => {
    if (d.file === undefined) return; // a volume: src/storage/volumes.ts checks it exists before QEMU starts
    const file = path.resolve(imagesDir, d.file);
    if (!d.create && !fs.existsSync(file)) issues.push({ path: `disks[${i}].file`, message: `${file} does not exist (add create: {size: …} to make it on first start, or kvmctl disk create)` });
  });
  vm.cdroms.forEach((c, i) => {
    const file = path.resolve(imagesDir, c.file);
    if (!fs.existsSync(file)) issues.push({ path: `cdroms[${i}].file`, message: `${file} does not exist` });
  });
  vm.shares.forEach((s, i) => {
    let ok = false;
    try {
      ok = fs.statSync(s.path).isDirectory();
    } catch {
      /* missing */
    }
    if (!ok) issues.push({ path: `shares[${i}].path`, message: `${s.path} is not an existing directory` });
  });
  if (kernel) {
    if (!fs.existsSync(kernel.path)) issues.push({ path: 'kernel.path', message: `${kernel.path} does not exist` });
    if (kernel.initrd && !fs.existsSync(kernel.initrd)) issues.push({ path: 'kernel.initrd', message: `${kernel.initrd} does not exist` });
  }
  let runAs: UserIds | undefined;
  if (vm.runAs) {
    runAs = lookupUser(vm.runAs.user);
    if (!runAs) issues.push({ path: 'runAs.user', message: `user "${vm.runAs.user}" does not exist on this host` });
    else if (vm.runAs.group) {
      const gid = lookupGroup(vm.runAs.group);
      if (gid === undefined) issues.push({ path: 'runAs.group', message: `group "${vm.runAs.group}" does not exist on this host` });
      else runAs.gid = gid;
    }
    if (process.getuid?.() !== 0) issues.push({ path: 'runAs', message: 'only root can start a VM that runs as another user' });
    if (runAs) {
      const blocked = unreachableFor(path.dirname(rt.dir), runAs);
      if (blocked) issues.push({ path: 'runAs', message: `user "${runAs.name}" cannot reach ${blocked} (no search permission), so QEMU could not clean up its runtime files; chmod o+x it or move KVMCTL_HOME` });
    }
  }
  if (issues.length) {
    throw badInput('PREFLIGHT_FAILED', `VM "${vm.name}" cannot start:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`, 'fix the definition or the host, then start again', issues);
  }
  return { runAs };
}

/** The first directory on the way to `dir` that `user` may not search, if any. */
export function unreachableFor(dir: string, user: UserIds): string | undefined {
  const parts = path.resolve(dir).split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      return undefined; // created later by kvmctl itself (0750 with the right owner)
    }
    const bits = st.uid === user.uid ? (st.mode >> 6) & 7 : st.gid === user.gid ? (st.mode >> 3) & 7 : st.mode & 7;
    if ((bits & 1) === 0) return d;
  }
  return undefined;
}
