/**
 * Typed wrappers for the QMP commands kvmctl uses. Result types follow QEMU 7.2's QAPI schema
 * (only the fields kvmctl reads are required; the rest are optional so that older or newer QEMUs
 * still fit). Each takes an open QmpClient and the same per-call options as `execute`.
 */
import { KvmError } from '../errors.js';
import type { QmpClient, QmpExecuteOptions, QmpVersion } from './client.js';

/** QAPI RunState (7.2). */
export type RunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

/** QAPI StatusInfo. `singlestep` exists up to QEMU 8.0. */
export type StatusInfo = { status: RunState; running: boolean; singlestep?: boolean };

export type KvmInfo = { enabled: boolean; present: boolean };

/** QAPI ImageInfo (subset). */
export type ImageInfo = {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'cluster-size'?: number;
  'dirty-flag'?: boolean;
  encrypted?: boolean;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'backing-image'?: ImageInfo;
  'format-specific'?: { type: string; data: Record<string, unknown> };
};

/** QAPI BlockDeviceInfo (subset): the medium inserted in a block device. */
export type BlockDeviceInfo = {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  backing_file?: string;
  backing_file_depth: number;
  encrypted: boolean;
  detect_zeroes: string;
  image: ImageInfo;
  cache: { writeback: boolean; direct: boolean; 'no-flush': boolean };
  bps?: number;
  bps_rd?: number;
  bps_wr?: number;
  iops?: number;
  iops_rd?: number;
  iops_wr?: number;
  write_threshold?: number;
};

/** QAPI BlockInfo: one entry of query-block. */
export type BlockInfo = {
  device: string;
  qdev?: string;
  type: string;
  removable: boolean;
  locked: boolean;
  inserted?: BlockDeviceInfo;
  tray_open?: boolean;
  'io-status'?: 'ok' | 'failed' | 'nospace';
};

/** QAPI BlockDeviceStats (subset). */
export type BlockDeviceStats = {
  rd_bytes: number;
  wr_bytes: number;
  unmap_bytes?: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  unmap_operations?: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
  wr_highest_offset: number;
  rd_merged?: number;
  wr_merged?: number;
  idle_time_ns?: number;
  failed_rd_operations?: number;
  failed_wr_operations?: number;
  failed_flush_operations?: number;
  invalid_rd_operations?: number;
  invalid_wr_operations?: number;
  invalid_flush_operations?: number;
  account_invalid?: boolean;
  account_failed?: boolean;
};

/** QAPI BlockStats: one entry of query-blockstats. */
export type BlockStats = {
  device?: string;
  qdev?: string;
  'node-name'?: string;
  stats: BlockDeviceStats;
  parent?: BlockStats;
  backing?: BlockStats;
  'driver-specific'?: Record<string, unknown>;
};

/** Which block device to act on: the -drive id (`device`) or a node name. */
export type BlockTarget = { device: string; 'node-name'?: never } | { 'node-name': string; device?: never };

export type SnapshotSyncArgs = BlockTarget & {
  /** Path of the new overlay; QEMU creates it (mode 'absolute-paths') unless mode is 'existing'. */
  'snapshot-file': string;
  'snapshot-node-name'?: string;
  /** Format of the new overlay (QEMU's default: qcow2). */
  format?: string;
  mode?: 'existing' | 'absolute-paths';
};

export async function queryStatus(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<StatusInfo> {
  return qmp.execute<StatusInfo>('query-status', undefined, opts);
}

export async function queryVersion(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<QmpVersion> {
  return qmp.execute<QmpVersion>('query-version', undefined, opts);
}

export async function queryKvm(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<KvmInfo> {
  return qmp.execute<KvmInfo>('query-kvm', undefined, opts);
}

export async function queryName(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<{ name?: string }> {
  return qmp.execute<{ name?: string }>('query-name', undefined, opts);
}

export async function queryBlock(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<BlockInfo[]> {
  return qmp.execute<BlockInfo[]>('query-block', undefined, opts);
}

export async function queryBlockstats(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<BlockStats[]> {
  return qmp.execute<BlockStats[]>('query-blockstats', undefined, opts);
}

/** Press the ACPI power button. Returns at once; the guest decides whether to shut down. */
export async function systemPowerdown(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('system_powerdown', undefined, opts);
}

export async function systemReset(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('system_reset', undefined, opts);
}

/** Pause the guest's vCPUs. */
export async function stop(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('stop', undefined, opts);
}

/** Resume the guest (also starts a VM launched with -S). */
export async function cont(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('cont', undefined, opts);
}

/**
 * Make QEMU exit now (no guest shutdown) and wait until it has closed the QMP socket. QEMU often
 * resets the connection right after (or instead of) its reply: that counts as success.
 */
export async function quit(qmp: QmpClient, opts?: QmpExecuteOptions): Promise<void> {
  try {
    await qmp.execute('quit', undefined, opts);
  } catch (e) {
    if (!(e instanceof KvmError && e.code === 'QMP_DISCONNECTED')) throw e;
  }
  await qmp.waitForClose({ timeoutMs: opts?.timeoutMs ?? 10_000 });
}

/**
 * Run an HMP command through QMP and return its text output (line ends normalised to `\n`, no
 * trailing newline: the same text hmpCommand gives over a monitor socket).
 * HMP reports its own errors as text (e.g. "unknown command: 'x'"), not as QMP errors.
 */
export async function humanMonitorCommand(qmp: QmpClient, cmdline: string, opts?: QmpExecuteOptions): Promise<string> {
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': cmdline }, opts);
  return String(out ?? '').replace(/\r\n/g, '\n').replace(/\n+$/, '');
}

/** Take an external snapshot: the device's current image becomes the backing file of a new overlay. */
export async function blockdevSnapshotSync(qmp: QmpClient, args: SnapshotSyncArgs, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('blockdev-snapshot-sync', args as Record<string, unknown>, opts);
}

/** Eject the medium of a removable device, by qdev id (e.g. the ide-cd's `id=`). */
export async function eject(qmp: QmpClient, args: { id: string; force?: boolean }, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('eject', args, opts);
}

export type ChangeMediumArgs = {
  /** qdev id of the removable device (e.g. the ide-cd's `id=`). */
  id: string;
  filename: string;
  format?: string;
  force?: boolean;
  'read-only-mode'?: 'retain' | 'read-only' | 'read-write';
};

/** Insert (or replace) the medium of a removable device, e.g. a CD image. */
export async function changeMedium(qmp: QmpClient, args: ChangeMediumArgs, opts?: QmpExecuteOptions): Promise<void> {
  await qmp.execute('blockdev-change-medium', args as Record<string, unknown>, opts);
}
