/**
 * A VM's vTPM: one `swtpm socket` per VM (Debian's swtpm 0.7), supervised like virtiofsd. Its
 * state lives with the VM's other persistent state (<data>/vms/NAME/tpm, 0700), made once by
 * swtpm_setup (EK + platform certificates from kvmctl's own local CA under <data>/tpm-ca, so the
 * host's /var/lib/swtpm-localca is never touched) and never re-made or overwritten. swtpm is up
 * (its control socket open) before QEMU starts, and ends when QEMU closes the connection
 * (`--terminate`); after a kill -9 of QEMU the next status/start ends any leftover by PID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badInput, KvmError } from '../errors.js';
import { run, spawnDetached } from '../host/exec.js';
import { vmStateDir, type Paths } from '../host/paths.js';
import type { RuntimePaths } from '../qemu/argv.js';
import type { TpmSpec } from '../definition/vm-effective.js';
import { MAX_SOCKET_PATH } from './preflight.js';
import { waitGone } from './proc.js';

export const SWTPM_HINT = "install Debian's swtpm and swtpm-tools: apt-get install swtpm swtpm-tools";
const STATE_FILE = { '2.0': 'tpm2-00.permall', '1.2': 'tpm-00.permall' } as const;

export const tpmStateDir = (paths: Paths, name: string) => path.join(vmStateDir(paths, name), 'tpm');
export const tpmCaDir = (paths: Paths) => path.join(paths.data, 'tpm-ca');
const pidFile = (runtimeDir: string) => path.join(runtimeDir, 'swtpm.pid');

/** The swtpm command line (pure). */
export function swtpmArgv(o: { stateDir: string; stateFile?: string; socket: string; log: string; version: '2.0' | '1.2' }): string[] {
  return [
    'swtpm', 'socket',
    '--tpmstate', o.stateFile ? `backend-uri=file://${o.stateFile}` : `dir=${o.stateDir},mode=0600`,
    '--ctrl', `type=unixio,path=${o.socket},mode=0600`,
    '--log', `file=${o.log},level=1`,
    '--terminate',
    ...(o.version === '2.0' ? ['--tpm2'] : []),
  ];
}

/** The swtpm_setup command line (pure): certificates unless `certs` is false. */
export function swtpmSetupArgv(o: { stateDir: string; stateFile?: string; version: '2.0' | '1.2'; config?: string; certs: boolean; log: string }): string[] {
  return [
    'swtpm_setup',
    ...(o.version === '2.0' ? ['--tpm2'] : []),
    '--tpmstate', o.stateFile ? `file://${o.stateFile}` : o.stateDir,
    '--createek',
    ...(o.certs ? ['--create-ek-cert', '--create-platform-cert'] : []),
    '--lock-nvram',
    '--not-overwrite',
    ...(o.config ? ['--config', o.config] : []),
    '--logfile', o.log,
  ];
}

/** swtpm_setup's and swtpm_localca's config, pointing the local CA at <data>/tpm-ca. */
function writeCaConfig(caDir: string): string {
  fs.mkdirSync(caDir, { recursive: true, mode: 0o700 });
  const setup = path.join(caDir, 'swtpm_setup.conf');
  const localca = path.join(caDir, 'swtpm-localca.conf');
  const options = path.join(caDir, 'swtpm-localca.options');
  fs.writeFileSync(localca, `statedir = ${caDir}\nsigningkey = ${caDir}/signkey.pem\nissuercert = ${caDir}/issuercert.pem\ncertserial = ${caDir}/certserial\n`);
  fs.writeFileSync(options, '--platform-manufacturer kvmctl\n--platform-version 2.1\n--platform-model QEMU\n');
  fs.writeFileSync(setup, `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${localca}\ncreate_certs_tool_options = ${options}\nactive_pcr_banks = sha256\n`);
  return setup;
}

export type TpmMeta = { version: '2.0' | '1.2'; createdAt: string; certs: boolean };

export type TpmStateResult = { dir: string; file?: string; created: boolean; warnings: string[] };

/** The VM's TPM state: made on first use, kept as is after that (never overwritten). */
export async function ensureTpmState(paths: Paths, name: string, tpm: TpmSpec): Promise<TpmStateResult> {
  const dir = tpmStateDir(paths, name);
  const warnings: string[] = [];
  if (tpm.state) return ensureTpmStateFile(paths, name, tpm, tpm.state);
  const other = tpm.version === '2.0' ? '1.2' : '2.0';
  if (fs.existsSync(path.join(dir, STATE_FILE[other])) && !fs.existsSync(path.join(dir, STATE_FILE[tpm.version]))) {
    throw new KvmError('TPM_MISMATCH', `VM "${name}" has TPM ${other} state in ${dir} but its definition asks for TPM ${tpm.version}`, {
      exit: 2,
      hint: `kvmctl never overwrites TPM state: set tpm.version: "${other}", or move ${dir} aside for a fresh TPM`,
    });
  }
  if (fs.existsSync(path.join(dir, STATE_FILE[tpm.version]))) return { dir, created: false, warnings };
  const existed = fs.existsSync(dir);
  if (existed && fs.readdirSync(dir).some((f) => !f.startsWith('.') && f !== 'tpm.json' && f !== 'setup.log')) {
    throw new KvmError('TPM_STATE_UNKNOWN', `${dir} holds files that are not a TPM ${tpm.version} state`, { exit: 2, hint: `move ${dir} aside` });
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = path.join(dir, 'setup.log');
  const setup = async (certs: boolean) =>
    run(swtpmSetupArgv({ stateDir: dir, version: tpm.version, config: certs ? writeCaConfig(tpmCaDir(paths)) : undefined, certs, log }), {
      allowFailure: true,
      timeoutMs: 60_000,
    });
  try {
    let r = await setup(true);
    let certs = true;
    if (r.exitCode !== 0) {
      warnings.push(`TPM of "${name}": swtpm_setup could not make EK/platform certificates (see ${log}); made the TPM without them`);
      for (const f of fs.readdirSync(dir)) if (f !== 'setup.log') fs.rmSync(path.join(dir, f), { force: true });
      r = await setup(false);
      certs = false;
    }
    if (r.exitCode !== 0 || !fs.existsSync(path.join(dir, STATE_FILE[tpm.version]))) {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join('\n') : r.stderr.trim();
      throw new KvmError('TPM_SETUP_FAILED', `swtpm_setup failed for VM "${name}"${tail ? `: ${tail}` : ''}`, { hint: `see ${log}` });
    }
    fs.writeFileSync(path.join(dir, 'tpm.json'), `${JSON.stringify({ version: tpm.version, createdAt: new Date().toISOString(), certs } satisfies TpmMeta, null, 2)}\n`);
    return { dir, created: true, warnings };
  } catch (e) {
    // Undo: the state we began to make is not a TPM anybody used.
    if (!existed) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * File-backed state (`tpm.state`): a file or block device that holds swtpm's state as one blob,
 * as Proxmox keeps it. Used as it is when it has content; made by swtpm_setup (never over
 * existing content) when it is absent or empty; the setup log sits in <data>/vms/NAME/tpm.
 */
async function ensureTpmStateFile(paths: Paths, name: string, tpm: TpmSpec, file: string): Promise<TpmStateResult> {
  const dir = tpmStateDir(paths, name);
  let size = 0;
  try {
    const st = fs.statSync(file);
    size = st.isBlockDevice() ? 1 : st.size; // a block device is a volume given to this TPM: used as it is
  } catch {
    size = 0;
  }
  if (size > 0) return { dir, file, created: false, warnings: [] };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const log = path.join(dir, 'setup.log');
  const r = await run(swtpmSetupArgv({ stateDir: dir, stateFile: file, version: tpm.version, config: writeCaConfig(tpmCaDir(paths)), certs: true, log }), { allowFailure: true, timeoutMs: 60_000 });
  if (r.exitCode !== 0 || !fs.existsSync(file) || fs.statSync(file).size === 0) {
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join('\n') : r.stderr.trim();
    fs.rmSync(file, { force: true }); // only ever an empty or half-made file of ours: it had no content before
    throw new KvmError('TPM_SETUP_FAILED', `swtpm_setup failed for VM "${name}" (state file ${file})${tail ? `: ${tail}` : ''}`, { hint: `see ${log}` });
  }
  fs.writeFileSync(path.join(dir, 'tpm.json'), `${JSON.stringify({ version: tpm.version, createdAt: new Date().toISOString(), certs: true } satisfies TpmMeta, null, 2)}\n`);
  return { dir, file, created: true, warnings: [] };
}

export function readTpmMeta(paths: Paths, name: string): TpmMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(tpmStateDir(paths, name), 'tpm.json'), 'utf8')) as TpmMeta;
  } catch {
    return undefined;
  }
}

function isSwtpmOf(pid: number, socket: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return path.basename(argv[0] ?? '') === 'swtpm' && argv.some((a) => a.includes(socket));
  } catch {
    return false;
  }
}

/** The PID of the VM's swtpm if one recorded in its runtime dir still runs. */
export function swtpmPid(runtimeDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile(runtimeDir), 'utf8').trim());
    return pid > 1 && isSwtpmOf(pid, path.join(runtimeDir, 'swtpm.sock')) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** End the VM's swtpm (by the PID recorded, checked to be that VM's swtpm). Returns whether one ran. */
export async function killSwtpm(runtimeDir: string): Promise<boolean> {
  const pid = swtpmPid(runtimeDir);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    if (!(await waitGone(pid, 2000))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await waitGone(pid, 2000);
    }
  }
  fs.rmSync(pidFile(runtimeDir), { force: true });
  fs.rmSync(path.join(runtimeDir, 'swtpm.sock'), { force: true });
  return pid !== undefined;
}

export type Swtpm = { pid: number; socket: string; warnings: string[]; stop: () => Promise<void> };

/** Make the state if needed, start swtpm and wait for its control socket. */
export async function startSwtpm(paths: Paths, name: string, tpm: TpmSpec, rt: RuntimePaths, timeoutMs = 10_000): Promise<Swtpm> {
  await killSwtpm(rt.dir); // a leftover of a start killed half-way
  const socket = rt.tpm ?? path.join(rt.dir, 'swtpm.sock');
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw badInput('SOCKET_PATH_TOO_LONG', `swtpm socket path is over ${MAX_SOCKET_PATH} bytes: ${socket}`, 'use a shorter KVMCTL_HOME or VM name');
  const probe = await run(['swtpm', '--version'], { allowFailure: true }).catch(() => undefined);
  if (!probe || probe.exitCode !== 0) throw new KvmError('TPM_MISSING', `VM "${name}" has a TPM but swtpm was not found`, { exit: 2, hint: SWTPM_HINT });
  const state = await ensureTpmState(paths, name, tpm);
  const logFile = path.join(rt.dir, 'swtpm.log');
  const log = fs.openSync(logFile, 'a');
  let child: Awaited<ReturnType<typeof spawnDetached>>;
  try {
    child = await spawnDetached(swtpmArgv({ stateDir: state.dir, stateFile: state.file, socket, log: logFile, version: tpm.version }), { stdio: ['ignore', log, log] });
  } finally {
    fs.closeSync(log);
  }
  fs.writeFileSync(pidFile(rt.dir), `${child.pid}\n`);
  const stop = async () => void (await killSwtpm(rt.dir));
  let dead = false;
  void child.exited.then(() => (dead = true));
  const end = Date.now() + timeoutMs;
  while (!fs.existsSync(socket)) {
    if (dead || Date.now() > end) {
      await stop();
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join('\n');
      throw new KvmError('SWTPM_FAILED', `swtpm for VM "${name}" ${dead ? 'exited' : 'did not open its socket'}${tail ? `: ${tail}` : ''}`, { hint: `see ${logFile}` });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { pid: child.pid, socket, warnings: state.warnings, stop };
}
