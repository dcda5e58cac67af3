/**
 * How long kvmctl waits for QEMU's reply to each QMP command before giving up (QMP_TIMEOUT).
 * Queries answer in milliseconds; commands that touch disks or wait on the guest get longer.
 * An explicit `timeoutMs` passed to `QmpClient.execute` always wins.
 */
export const DEFAULT_QMP_TIMEOUT_MS = 10_000;

/** Any `query-*` command not listed below. */
export const QUERY_TIMEOUT_MS = 5_000;

export const QMP_TIMEOUTS: Readonly<Record<string, number>> = {
  qmp_capabilities: 5_000,
  system_powerdown: 5_000,
  system_reset: 5_000,
  stop: 5_000,
  cont: 5_000,
  quit: 10_000,
  'human-monitor-command': 30_000,
  'blockdev-snapshot-sync': 60_000,
  'blockdev-change-medium': 30_000,
  eject: 10_000,
  'query-blockstats': 10_000,
};

/** Reply timeout for `command` in milliseconds. */
export function timeoutFor(command: string): number {
  const t = QMP_TIMEOUTS[command];
  if (t !== undefined) return t;
  if (command.startsWith('query-')) return QUERY_TIMEOUT_MS;
  return DEFAULT_QMP_TIMEOUT_MS;
}
