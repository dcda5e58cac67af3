/** The host check's item and tool types (below check.ts and check-firmware.ts, so imports point down). */
export type Status = 'PASS' | 'WARN' | 'FAIL';

export type CheckItem = {
  id: string;
  title: string;
  status: Status;
  /** What was found. */
  detail: string;
  /** What the host loses (for WARN / FAIL). */
  cost?: string;
  /** How to fix it. */
  fix?: string;
  menuconfig?: string;
  gentoo?: string;
  debian?: string;
};

export type ToolState = { path?: string; version?: string; accels?: string[] };
