/**
 * Guest-agent schemas of the API beyond info/interfaces: a program run in the guest
 * (`POST /api/vms/:name/agent/exec`) and a VM's addresses by source (`GET /api/vms/:name/addresses`,
 * also in the VM detail). Additive only, like src/api/contract.ts.
 */
import { z } from 'zod';

/**
 * One program, request/response: the agent hands over output only when the program has exited
 * (qemu-ga 7.2 and later), so a stream would carry nothing earlier. Limits: stdin at most 8 MiB
 * (and the server's 4 MiB request body), up to 16 MiB of each of stdout/stderr (then `truncated`),
 * timeoutSec at most 3600 (default 60), after which the program is killed in the guest and the
 * answer says `timedOut: true`, `status: 124`.
 */
export const agentExecBodySchema = z.strictObject({
  /** Program and arguments; no shell unless you run one. */
  argv: z.array(z.string()).min(1).max(4096),
  /** Standard input as UTF-8 text … */
  input: z.string().optional(),
  /** … or as base64 (binary). */
  inputBase64: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64').optional(),
  /** NAME=VALUE entries: the program's whole environment. */
  env: z.array(z.string()).max(4096).optional(),
  timeoutSec: z.number().positive().max(3600).optional(),
});
export const agentExecResultSchema = z.object({
  pid: z.number().int(),
  exitCode: z.number().int().optional(),
  signal: z.number().int().optional(),
  /** As a process status: exitCode, 128 + signal, 124 after the timeout. */
  status: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  /** Only when the output is not valid UTF-8: the exact bytes. */
  stdoutBase64: z.string().optional(),
  stderrBase64: z.string().optional(),
  truncated: z.boolean(),
  timedOut: z.boolean(),
  /** After the timeout: the program was killed in the guest (false: it keeps running there). */
  killed: z.boolean(),
  ms: z.number(),
});

export const addressRowSchema = z.object({
  ip: z.string(),
  prefix: z.number().int().optional(),
  /** Where it was seen: the DHCP lease of a nat network, the guest agent, or both. */
  sources: z.array(z.enum(['lease', 'agent'])),
  nic: z.string().optional(),
  network: z.string().optional(),
  /** The guest's interface name, as its agent reports it. */
  iface: z.string().optional(),
  mac: z.string().optional(),
});
export const addressReportSchema = z.object({
  addresses: z.array(addressRowSchema),
  leases: z.array(z.object({ nic: z.string(), network: z.string(), mac: z.string(), ip: z.string().optional() })),
  agent: z.array(z.object({ name: z.string(), mac: z.string().optional(), addresses: z.array(z.string()) })).optional(),
  /** answered (now or within 15 s), cached (no answer now: its last answer of this run), unavailable, off, not-running. */
  agentState: z.enum(['answered', 'cached', 'unavailable', 'off', 'not-running']),
  agentAt: z.string().optional(),
  agentNote: z.string().optional(),
});
