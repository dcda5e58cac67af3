/**
 * The kernel's rules for bridge settings, in one place: the network validator (src/definition/network.ts)
 * reports a definition that breaks them, and the importers (src/net/import/*) use the same rules
 * to import what the host really ends up with instead of a definition `apply` would refuse.
 *
 * Linux (net/bridge/br_private.h, br_stp.c, br_stp_if.c), measured with sysfs in a namespace:
 * - forward_delay is free while STP is off; with STP on a write outside 2–30 s fails (ERANGE) and
 *   the old value stays, and turning STP on clamps the current value into 2–30 s.
 * - hello_time outside 1–10 s always fails (ERANGE); the bridge keeps its default of 2 s.
 * No zod here: importers and the CLI's hot paths use it.
 */
export const BRIDGE_RULES = {
  /** kvmctl's own range for forwardDelay (seconds) without STP. */
  forwardDelay: { min: 0, max: 30 },
  /** The kernel's range with STP on. */
  stpForwardDelay: { min: 2, max: 30 },
  helloTime: { min: 1, max: 10, kernelDefault: 2 },
  mtu: { min: 68, max: 65535 },
  /** A new bridge's forward delay. */
  kernelForwardDelay: 15,
} as const;

export type RuleIssue = { path: string; message: string };

/** Issues across a bridge's fields (each field's own range is checked by the schema). */
export function bridgeCrossIssues(n: { stp?: boolean; forwardDelay?: number }): RuleIssue[] {
  const { min, max } = BRIDGE_RULES.stpForwardDelay;
  const fd = n.forwardDelay ?? 0;
  if (n.stp && (fd < min || fd > max)) {
    return [{ path: 'forwardDelay', message: `with stp: true the kernel needs a forwardDelay of ${min}–${max} seconds, got ${fd}` }];
  }
  return [];
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

export type SettledTimers = { stp?: boolean; forwardDelay?: number; helloTime?: number; notes: { field: 'forwardDelay' | 'helloTime'; message: string }[] };

/**
 * What a bridge ends up with when a tool writes these values through sysfs in the order of the
 * files' names (netifrc: forward_delay, then hello_time, then stp_state), as kvmctl values.
 * `notes` say each change, for the importer's warning.
 */
export function settleSysfsTimers(v: { stp?: boolean; forwardDelay?: number; helloTime?: number }): SettledTimers {
  const notes: SettledTimers['notes'] = [];
  const out: SettledTimers = { notes };
  if (v.stp !== undefined) out.stp = v.stp;
  if (v.helloTime !== undefined) {
    const { min, max, kernelDefault } = BRIDGE_RULES.helloTime;
    if (v.helloTime < min || v.helloTime > max) notes.push({ field: 'helloTime', message: `hello time ${v.helloTime} s is outside the kernel's ${min}–${max} s, which refuses it: the bridge keeps its default ${kernelDefault} s` });
    else out.helloTime = v.helloTime;
  }
  if (v.forwardDelay !== undefined) {
    let fd = v.forwardDelay;
    if (v.stp) {
      const { min, max } = BRIDGE_RULES.stpForwardDelay;
      // forward_delay is written while STP is still off (accepted), then stp_state=1 clamps it.
      const c = clamp(fd, min, max);
      if (c !== fd) notes.push({ field: 'forwardDelay', message: `forward delay ${fd} s with STP on: turning STP on makes the kernel clamp it into ${min}–${max} s, so the bridge runs with ${c} s` });
      fd = c;
    } else if (fd > BRIDGE_RULES.forwardDelay.max) {
      notes.push({ field: 'forwardDelay', message: `forward delay ${fd} s is over kvmctl's ${BRIDGE_RULES.forwardDelay.max} s (it only matters with STP, which is off): imported as ${BRIDGE_RULES.forwardDelay.max} s` });
      fd = BRIDGE_RULES.forwardDelay.max;
    }
    out.forwardDelay = fd;
  } else if (v.stp) {
    // kvmctl's default (0) is for STP off; the host's bridge keeps the kernel's 15 s.
    out.forwardDelay = BRIDGE_RULES.kernelForwardDelay;
  }
  return out;
}

/** An MTU the kernel takes for a bridge, or a reason it does not. */
export function mtuIssue(mtu: number): string | undefined {
  const { min, max } = BRIDGE_RULES.mtu;
  return Number.isInteger(mtu) && mtu >= min && mtu <= max ? undefined : `MTU ${mtu} is outside ${min}–${max}; the kernel refuses it and the bridge keeps its MTU`;
}

export type PortIssue = RuleIssue & { port: string; index: number };

/** Uplinks and taps of bridge `br`: neither the bridge itself nor a name listed twice. */
export function bridgePortIssues(br: string, uplinks: readonly string[], taps: readonly string[]): PortIssue[] {
  const out: PortIssue[] = [];
  const seen = new Map<string, string>();
  const note = (v: string, where: 'uplinks' | 'taps', index: number) => {
    if (v === br) out.push({ path: where, port: v, index, message: `"${v}" is the bridge itself` });
    else if (seen.has(v)) out.push({ path: where, port: v, index, message: `"${v}" is listed twice (also in ${seen.get(v)})` });
    seen.set(v, where);
  };
  uplinks.forEach((u, i) => note(u, 'uplinks', i));
  taps.forEach((t, i) => note(t, 'taps', i));
  return out;
}

/** An address with prefix length as the schema takes it: IPv4 octets ≤ 255 and prefix ≤ 32, or IPv6 with prefix ≤ 128. */
export function isCidr(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (m) return m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
  const v6 = /^[0-9a-fA-F:]+\/(\d{1,3})$/.exec(s);
  return !!v6 && s.includes(':') && Number(v6[1]) <= 128;
}
