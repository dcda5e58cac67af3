/**
 * The HTTP/WebSocket API of `kvmctl serve`: request and response schemas (zod) and the route
 * table. Shared by the server (validation, OpenAPI), the CLI's --remote client and the web UI.
 * Stable: changes are additive only.
 *
 * Transport
 * - Default: a unix socket `<run>/kvmctl.sock` (mode 0660, group kvm), no token.
 * - TCP only with `kvmctl serve --listen HOST:PORT`; then every request needs the token:
 *   `Authorization: Bearer TOKEN`. Browsers cannot set headers on a WebSocket, so WebSocket
 *   routes (and only they) also accept `?token=TOKEN`. `/api/health` needs no token.
 * - Errors: HTTP status + JSON body `ApiError` ({code, message, hint?, issues?}):
 *   400 bad input, 422 invalid definition (issues[] with paths, for field-level display),
 *   401 auth, 404 not found, 409 conflict (VM_RUNNING, VM_NOT_RUNNING, *_EXISTS, *_IN_USE), 500 other.
 *
 * WebSockets
 * - `/api/events?since=ID`: text frames, one JSON `ServerMessage` each. First a `hello`, then
 *   every buffered event with id > since (or, when since is older than the buffer, a `reset`:
 *   reload the full state with GET /api/vms), then live events. Ids are monotonic per server
 *   process (`hello.serverId` changes when the server restarts: then resume from 0).
 * - `/api/vms/:name/serial`: raw bytes both ways (binary frames; text frames from the client are
 *   sent as UTF-8), bridged to the VM's serial unix socket. Closes with code 4404 when the VM is
 *   not running / has no serial socket.
 * - `/api/vms/:name/vnc`: binary RFB both ways, bridged to the VM's VNC unix socket (noVNC:
 *   `new RFB(el, 'ws://host/api/vms/NAME/vnc')`, subprotocol 'binary' accepted). Closes 4404 when
 *   the VM has no VNC socket (display.type must be vnc).
 */
import { z } from 'zod';
import * as A from './contract-auth.js';
import * as B from './contract-backups.js';
import * as D from './contract-devices.js';
import * as M from './contract-manage.js';
import * as MH from './contract-metrics.js';
import * as C from './contract-cluster.js';
import * as V from './contract-volumes.js';
import * as G from './contract-agent.js';
import * as ISO from './contract-media.js';
import * as T from './contract-tuning.js';

/* ------------------------------------------------------------------ errors */

export const apiErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  /** Spec validation: every problem with its path, e.g. {path: "nics[1].mac", message: "..."} */
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ApiError = z.infer<typeof apiErrorSchema>;

/* ------------------------------------------------------------------ common */

export const nameParam = z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/) });

export const VM_STATES = ['running', 'paused', 'stopped', 'crashed', 'starting', 'stopping'] as const;
export const vmStateSchema = z.enum(VM_STATES);
export type VmStateName = z.infer<typeof vmStateSchema>;

export const lastExitSchema = z.object({
  at: z.string(),
  how: z.enum(['agent', 'acpi', 'quit', 'sigkill', 'guest', 'crashed', 'start-failed']),
  reason: z.string().optional(),
});

export const vmStatusSchema = z.object({
  name: z.string(),
  state: vmStateSchema,
  pid: z.number().int().optional(),
  accel: z.enum(['kvm', 'tcg']).optional(),
  startedAt: z.string().optional(),
  uptimeSec: z.number().optional(),
  rssBytes: z.number().optional(),
  qemuStatus: z.string().optional(),
  lastExit: lastExitSchema.optional(),
  reason: z.string().optional(),
});
export type VmStatusDto = z.infer<typeof vmStatusSchema>;

export const RESTART_POLICIES = ['no', 'on-failure', 'always'] as const;

/** What the server's supervisor knows about a VM (only when the server applies a policy). */
export const supervisionSchema = z.object({
  policy: z.enum(RESTART_POLICIES),
  /** Restarts done since the VM last ran long enough to reset the count. */
  restarts: z.number().int(),
  maxRetries: z.number().int(),
  /** Set while a restart is scheduled. */
  nextRestartAt: z.string().optional(),
  /** The limit was reached: the supervisor stopped trying. */
  gaveUp: z.boolean(),
});

export const vmListItemSchema = vmStatusSchema.extend({
  description: z.string().optional(),
  cpus: z.number().int().optional(),
  /** Bytes. */
  memory: z.number().optional(),
  display: z.enum(['none', 'curses', 'vnc']).optional(),
  restart: z.enum(RESTART_POLICIES).optional(),
  supervision: supervisionSchema.optional(),
  /** The stored definition does not validate (then only name/state are known). */
  definitionError: z.string().optional(),
});
export const vmListSchema = z.array(vmListItemSchema);
export type VmListItem = z.infer<typeof vmListItemSchema>;

/** A VM definition as stored (defaults filled in, sizes in bytes): src/definition/vm.ts `VmSpec`. */
export const vmSpecJsonSchema = z.record(z.string(), z.unknown());

export const vmDetailSchema = z.object({
  spec: vmSpecJsonSchema,
  /** The stored YAML text, as applied (comments kept): edit this and PUT it back. */
  yaml: z.string(),
  status: vmStatusSchema,
  supervision: supervisionSchema.optional(),
  /** Guest mount commands for the VM's shares. */
  guestMounts: z.array(z.string()),
  /** A running VM's addresses by source (DHCP lease, guest agent; the agent asked for 1 s at most, its answer kept 15 s). */
  addresses: G.addressReportSchema.optional(),
});

/**
 * Create/update body: either YAML text (one VM definition) or a definition object (the same
 * fields as the YAML: sizes may be "4G"). Validated with src/definition/vm.ts; 422 lists every issue.
 */
export const definitionBodySchema = z.union([
  z.strictObject({ yaml: z.string().min(1) }),
  z.strictObject({ definition: z.record(z.string(), z.unknown()) }),
]);
export type DefinitionBody = z.infer<typeof definitionBodySchema>;

export const applyResultSchema = z.object({
  kind: z.enum(['vm', 'network']),
  name: z.string(),
  action: z.enum(['created', 'configured', 'unchanged']),
  file: z.string(),
});

export const validateResultSchema = z.object({
  ok: z.boolean(),
  kind: z.enum(['vm', 'network']).optional(),
  name: z.string().optional(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })),
});

export const startBodySchema = z
  .strictObject({
    /** Also wait for the guest: true = the test guest's ready marker, or a text to wait for on the serial console. */
    waitForGuest: z.union([z.boolean(), z.string()]).optional(),
    timeoutSec: z.number().positive().max(3600).optional(),
  })
  .default({});
export const startResultSchema = z.object({
  name: z.string(),
  pid: z.number().int(),
  accel: z.enum(['kvm', 'tcg']),
  warnings: z.array(z.string()),
  argv: z.array(z.string()),
  qmpReadyMs: z.number(),
  guestReadyMs: z.number().optional(),
});

export const stopBodySchema = z
  .strictObject({
    /** Seconds to wait for the ACPI power-down (default: the definition's stopTimeout). */
    timeoutSec: z.number().min(0).max(3600).optional(),
    /** Skip ACPI: QMP quit, then SIGKILL. */
    force: z.boolean().optional(),
    /** acpi (default): the power button; agent: guest-shutdown through the guest agent (ACPI if none answers). */
    method: z.enum(['acpi', 'agent']).optional(),
  })
  .default({});
export const stopResultSchema = z.object({ name: z.string(), how: z.enum(['agent', 'acpi', 'quit', 'sigkill']), tookMs: z.number(), note: z.string().optional() });

export const restartBodySchema = z.strictObject({ timeoutSec: z.number().min(0).max(3600).optional() }).default({});
export const restartResultSchema = z.object({ stopped: stopResultSchema.optional(), started: startResultSchema });

export const doneResultSchema = z.object({ name: z.string(), done: z.string(), /** resume: the guest clock was set through the agent. */ clockSynced: z.boolean().optional(), note: z.string().optional() });

export const monitorBodySchema = z.strictObject({ command: z.string().min(1) });
export const monitorResultSchema = z.object({ output: z.string() });
export const agentInfoSchema = z.object({
  version: z.string(),
  commands: z.number(),
  os: z.record(z.string(), z.string()).optional(),
  hostname: z.string().optional(),
  fsfreeze: z.enum(['thawed', 'frozen']).optional(),
});
export const agentInterfacesSchema = z.array(z.object({ name: z.string(), mac: z.string().optional(), addresses: z.array(z.string()) }));

export const qmpBodySchema = z.strictObject({ execute: z.string().min(1), arguments: z.record(z.string(), z.unknown()).optional() });
export const qmpResultSchema = z.object({ return: z.unknown() });

export const removedResultSchema = z.object({ removed: z.string() });

/* ------------------------------------------------------------------ networks */

export const netStatusSchema = z.object({
  network: z.string(),
  type: z.string(),
  state: z.enum(['up', 'down', 'absent', 'foreign', 'n/a']),
  interface: z.string().optional(),
  ports: z.array(z.string()),
  addresses: z.array(z.string()),
  users: z.array(z.string()),
  description: z.string().optional(),
});
export const netListSchema = z.array(netStatusSchema);
export const netDetailSchema = z.object({ spec: z.record(z.string(), z.unknown()), yaml: z.string(), status: netStatusSchema });
/** A nat network's DHCP leases (dnsmasq's lease file), with the VM and NIC whose MAC holds each. */
export const netLeasesSchema = z.array(z.object({ mac: z.string(), ip: z.string(), hostname: z.string().optional(), expires: z.string(), vm: z.string().optional(), nic: z.string().optional() }));
export const netCreateQuerySchema = z.object({ replace: z.enum(['true', 'false']).optional() });
export const netCreateResultSchema = z.array(z.object({ name: z.string(), action: z.enum(['created', 'replaced']), file: z.string() }));
export const netDownBodySchema = z.strictObject({ force: z.boolean().optional() }).default({});
export const netDeleteQuerySchema = z.object({ force: z.enum(['true', 'false']).optional() });
/** up/down/delete results are the network layer's own reports: free-form objects. */
export const netActionResultSchema = z.record(z.string(), z.unknown());

/* ------------------------------------------------------------------ disks */

/** Paths are relative to the images dir (or absolute inside it); anything outside is refused (400). */
export const diskQuerySchema = z.object({ path: z.string().min(1) });
export const diskListSchema = z.array(z.object({ path: z.string(), file: z.string(), sizeBytes: z.number(), modified: z.string() }));
export const diskInfoSchema = z.object({ path: z.string(), info: z.record(z.string(), z.unknown()), inUse: z.boolean() });
export const diskCreateBodySchema = z.strictObject({
  path: z.string().min(1),
  /** "20G" or bytes. */
  size: z.union([z.string(), z.number()]),
  format: z.enum(['raw', 'qcow2']).optional(),
  prealloc: z.enum(['off', 'metadata', 'falloc', 'full']).optional(),
  /** A qcow2 base image (also inside the images dir). */
  backing: z.string().optional(),
});
export const diskCreateResultSchema = z.object({ path: z.string(), info: z.record(z.string(), z.unknown()) });

/* ------------------------------------------------------------------ host */

export const checkItemSchema = z.object({
  id: z.string(),
  title: z.string(),
  status: z.enum(['PASS', 'WARN', 'FAIL']),
  detail: z.string(),
  cost: z.string().optional(),
  fix: z.string().optional(),
  menuconfig: z.string().optional(),
  gentoo: z.string().optional(),
  debian: z.string().optional(),
});
export const hostCheckSchema = z.object({
  kernel: z.string(),
  kernelConfig: z.string().nullable(),
  summary: z.object({ pass: z.number(), warn: z.number(), fail: z.number(), accel: z.enum(['kvm', 'tcg']) }),
  items: z.array(checkItemSchema),
});

export const ksmStatusSchema = z.object({
  root: z.string(),
  run: z.number(),
  pagesToScan: z.number(),
  sleepMillisecs: z.number(),
  mergeAcrossNodes: z.number().optional(),
  pagesShared: z.number(),
  pagesSharing: z.number(),
  pagesUnshared: z.number(),
  pagesVolatile: z.number().optional(),
  fullScans: z.number(),
  pageSize: z.number(),
  savedBytes: z.number(),
});
export const ksmOnBodySchema = z.strictObject({ pagesToScan: z.number().int().min(0).optional(), sleepMillisecs: z.number().int().min(0).optional() }).default({});
export const ksmOffBodySchema = z.strictObject({ unmerge: z.boolean().optional() }).default({});

export const healthSchema = z.object({ ok: z.literal(true), version: z.string(), pid: z.number(), uptimeSec: z.number(), serverId: z.string() });

/* ------------------------------------------------------------------ metrics */

export const vmMetricsSchema = z.object({
  name: z.string(),
  pid: z.number().int(),
  state: vmStateSchema,
  uptimeSec: z.number(),
  /** QEMU process user+system CPU seconds since start. */
  cpuSec: z.number(),
  /** CPU use since the previous sample, in % of one core (null on the first sample). */
  cpuPercent: z.number().nullable(),
  rssBytes: z.number(),
  block: z.array(z.object({ device: z.string(), rdBytes: z.number(), wrBytes: z.number(), rdOps: z.number(), wrOps: z.number() })),
  net: z.array(z.object({ ifname: z.string(), rxBytes: z.number(), txBytes: z.number(), rxPackets: z.number(), txPackets: z.number() })),
});
export const hostMetricsSchema = z.object({
  cpus: z.number().int(),
  /** Host CPU busy % across all cores since the previous sample (null on the first). */
  cpuPercent: z.number().nullable(),
  loadavg: z.tuple([z.number(), z.number(), z.number()]),
  memTotalBytes: z.number(),
  memAvailableBytes: z.number(),
  /** KSM pages_sharing × page size (0 when KSM is absent). */
  ksmSavedBytes: z.number(),
  ksmRun: z.number().nullable(),
});
export const metricsSchema = z.object({ at: z.string(), host: hostMetricsSchema, vms: z.array(vmMetricsSchema) });
export type Metrics = z.infer<typeof metricsSchema>;
export type VmMetrics = z.infer<typeof vmMetricsSchema>;

/* ------------------------------------------------------------------ events */

const eventBase = { id: z.number().int(), at: z.string(), vm: z.string() };

/** A VM's state changed (seen by the server's watcher, whoever caused it: API, CLI, the guest). */
export const stateEventSchema = z.object({ ...eventBase, kind: z.literal('state'), state: vmStateSchema, previous: vmStateSchema.nullable(), pid: z.number().int().optional(), reason: z.string().optional() });
/** A QMP event from the VM's QEMU (SHUTDOWN, STOP, RESUME, RESET, POWERDOWN, GUEST_PANICKED, …). */
export const qmpEventSchema = z.object({ ...eventBase, kind: z.literal('qmp'), event: z.string(), data: z.unknown().optional() });
/** The supervisor acted on a restart policy. */
export const supervisorEventSchema = z.object({
  ...eventBase,
  kind: z.literal('supervisor'),
  action: z.enum(['scheduled', 'restarted', 'failed', 'gave-up', 'adopted']),
  attempt: z.number().int().optional(),
  delaySec: z.number().optional(),
  message: z.string(),
});
/** A definition was created, changed or removed (through the API or on disk). */
export const definitionEventSchema = z.object({ ...eventBase, kind: z.literal('definition'), action: z.enum(['created', 'updated', 'removed']) });

/** A task started, progressed, logged a line or ended (vm: its target, '' when it has none). */
export const taskEventSchema = z.object({ ...eventBase, kind: z.literal('task'), action: z.enum(['started', 'progress', 'log', 'ended']), task: MH.taskSummarySchema, line: MH.taskLogLineSchema.optional() });

/** A cluster agent failed a VM over from a dead host, or a live migration ended — on any host of the cluster (src/cluster/events.ts, read from etcd); `happenedAt` is when the agent acted. */
export const clusterEventSchema = z.object({ ...eventBase, kind: z.literal('cluster'), type: z.enum(['failover', 'migration']), from: z.string(), to: z.string(), happenedAt: z.string(), state: z.string().optional(), message: z.string().optional(), by: z.string() });

export const eventSchema = z.discriminatedUnion('kind', [stateEventSchema, qmpEventSchema, supervisorEventSchema, definitionEventSchema, taskEventSchema, clusterEventSchema]);
export type KvmEvent = z.infer<typeof eventSchema>;
/** An event before the bus numbers it. */
export type KvmEventInput = KvmEvent extends infer E ? (E extends KvmEvent ? Omit<E, 'id' | 'at'> : never) : never;

export const helloMessageSchema = z.object({ type: z.literal('hello'), serverId: z.string(), lastId: z.number().int(), oldestId: z.number().int() });
/** The client's `since` is older than the buffer (or from another server): reload everything. */
export const resetMessageSchema = z.object({ type: z.literal('reset'), reason: z.string(), lastId: z.number().int() });
export const eventMessageSchema = z.object({ type: z.literal('event'), event: eventSchema });
export const serverMessageSchema = z.discriminatedUnion('type', [helloMessageSchema, resetMessageSchema, eventMessageSchema]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;
export const eventsQuerySchema = z.object({ since: z.coerce.number().int().min(0).optional(), token: z.string().optional() });

/* ------------------------------------------------------------------ routes */

export type Route = {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  summary: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** JSON response on success (200). `text` for non-JSON. */
  response?: z.ZodType;
  websocket?: boolean;
  text?: string;
  /** The request body is this content type, streamed raw (an upload), not JSON. */
  upload?: string;
  /** Who may call it (src/api/auth.ts). Default: viewer for GET, admin for everything else. */
  role?: A.Role;
};

const P = nameParam;
export const routes = {
  health: { method: 'GET', path: '/api/health', summary: 'server alive (no token needed)', response: healthSchema },
  openapi: { method: 'GET', path: '/api/openapi.json', summary: 'this API as OpenAPI 3.1' },
  listVms: { method: 'GET', path: '/api/vms', summary: 'every defined VM with its state', response: vmListSchema },
  createVm: { method: 'POST', path: '/api/vms', summary: 'define a new VM (409 VM_EXISTS when the name is taken)', body: definitionBodySchema, response: applyResultSchema },
  getVm: { method: 'GET', path: '/api/vms/:name', summary: 'a VM definition, its YAML and its status', params: P, response: vmDetailSchema },
  updateVm: { method: 'PUT', path: '/api/vms/:name', summary: 'replace a VM definition (name must match; takes effect at the next start)', params: P, body: definitionBodySchema, response: applyResultSchema },
  deleteVm: { method: 'DELETE', path: '/api/vms/:name', summary: 'remove a VM definition (disks kept; 409 while running)', params: P, response: removedResultSchema },
  startVm: { method: 'POST', path: '/api/vms/:name/start', role: 'operator', summary: 'start a VM', params: P, body: startBodySchema, response: startResultSchema },
  stopVm: { method: 'POST', path: '/api/vms/:name/stop', role: 'operator', summary: 'ACPI power-down, then QMP quit, then SIGKILL', params: P, body: stopBodySchema, response: stopResultSchema },
  agentInfo: { method: 'GET', path: '/api/vms/:name/agent', summary: 'guest agent: version, guest OS, host name, fsfreeze state (503 QGA_UNAVAILABLE when no agent answers)', params: P, response: agentInfoSchema },
  agentInterfaces: { method: 'GET', path: '/api/vms/:name/agent/interfaces', summary: "the guest's addresses as its agent reports them", params: P, response: agentInterfacesSchema },
  agentExec: { method: 'POST', path: '/api/vms/:name/agent/exec', role: 'admin', summary: 'run a program in the guest through its agent (stdin ≤ 8 MiB; output when it exits, ≤ 16 MiB a stream; killed after timeoutSec, default 60)', params: P, body: G.agentExecBodySchema, response: G.agentExecResultSchema },
  vmAddresses: { method: 'GET', path: '/api/vms/:name/addresses', summary: "a running VM's addresses marked by source: DHCP leases on nat networks and what its guest agent reports", params: P, response: G.addressReportSchema },
  backupTasks: { method: 'GET', path: '/api/backups/tasks', summary: "scheduled backups (backup.schedule): each VM's next run and last result", response: B.backupTasksSchema },
  listBackups: { method: 'GET', path: '/api/vms/:name/backups', summary: "a VM's backups in the host's repository, oldest first", params: P, response: B.backupListSchema },
  createBackup: { method: 'POST', path: '/api/vms/:name/backups', role: 'operator', summary: 'back up every writable disk (+ NVRAM, TPM state) at one point in time; incremental when safe, else full with the reason', params: P, body: B.backupCreateBodySchema, response: B.backupCreateResultSchema },
  pruneBackups: { method: 'POST', path: '/api/vms/:name/backups/prune', summary: 'remove backups the keep rules (PBS semantics) do not keep, merging into the incrementals built on them', params: P, body: B.backupPruneBodySchema, response: B.backupPruneResultSchema },
  verifyBackup: { method: 'POST', path: '/api/vms/:name/backups/:id/verify', summary: 'qemu-img check of the chain and the restored-content SHA-256 against the manifest (ok: false lists the problems)', params: B.backupParams, response: B.backupVerifyResultSchema },
  restoreBackup: { method: 'POST', path: '/api/vms/:name/backups/:id/restore', summary: 'restore over the stopped VM (force: replace its disks) or as a new VM (as: NAME)', params: B.backupParams, body: B.backupRestoreBodySchema, response: B.backupRestoreResultSchema },
  killVm: { method: 'POST', path: '/api/vms/:name/kill', role: 'operator', summary: 'QMP quit, then SIGKILL', params: P, response: stopResultSchema },
  restartVm: { method: 'POST', path: '/api/vms/:name/restart', role: 'operator', summary: 'stop (if running) and start', params: P, body: restartBodySchema, response: restartResultSchema },
  pauseVm: { method: 'POST', path: '/api/vms/:name/pause', role: 'operator', summary: 'pause the guest CPUs', params: P, response: doneResultSchema },
  resumeVm: { method: 'POST', path: '/api/vms/:name/resume', role: 'operator', summary: 'resume a paused guest (with an agent: and set its clock; clockSynced says whether)', params: P, response: doneResultSchema },
  resetVm: { method: 'POST', path: '/api/vms/:name/reset', role: 'operator', summary: 'hard reset', params: P, response: doneResultSchema },
  monitorVm: { method: 'POST', path: '/api/vms/:name/monitor', summary: 'a human-monitor (HMP) command', params: P, body: monitorBodySchema, response: monitorResultSchema },
  qmpVm: { method: 'POST', path: '/api/vms/:name/qmp', summary: 'a raw QMP command', params: P, body: qmpBodySchema, response: qmpResultSchema },
  validate: { method: 'POST', path: '/api/validate', role: 'viewer', summary: 'validate one VM or network definition without storing it (always 200; ok + issues)', body: definitionBodySchema, response: validateResultSchema },
  serial: { method: 'GET', path: '/api/vms/:name/serial', role: 'operator', summary: 'WebSocket: the serial console, raw bytes', params: P, websocket: true },
  vnc: { method: 'GET', path: '/api/vms/:name/vnc', role: 'operator', summary: 'WebSocket: the VNC console (RFB) for noVNC', params: P, websocket: true },
  events: { method: 'GET', path: '/api/events', summary: 'WebSocket: VM state changes and QMP events, resumable with ?since=ID', query: eventsQuerySchema, websocket: true },
  listSnapshots: { method: 'GET', path: '/api/vms/:name/snapshots', summary: "each disk's snapshots: external overlays (taken while running) and internal qcow2 ones (taken stopped)", params: P, response: M.snapshotListSchema },
  createSnapshot: { method: 'POST', path: '/api/vms/:name/snapshots', summary: 'snapshot every writable disk: external overlays while running (the VM keeps running), internal qcow2 snapshots when stopped', role: 'operator', params: P, body: M.snapshotCreateBodySchema, response: M.snapshotCreateResultSchema },
  revertSnapshot: { method: 'POST', path: '/api/vms/:name/snapshots/:snap/revert', summary: 'go back to a snapshot (VM stopped): everything written since is discarded', role: 'operator', params: M.snapParams, response: M.snapshotRevertResultSchema },
  deleteSnapshot: { method: 'DELETE', path: '/api/vms/:name/snapshots/:snap', summary: "delete an internal snapshot from each disk that has it (VM stopped; external overlays are the disk's live layers and stay)", role: 'operator', params: M.snapParams, response: M.snapshotDeleteResultSchema },
  vmLog: { method: 'GET', path: '/api/vms/:name/logs/:which', summary: "the end of the VM's qemu.log or serial.log (?bytes=, default 64 KiB)", role: 'operator', params: M.logParams, query: M.logQuerySchema, response: M.logResultSchema },
  setAutostart: { method: 'POST', path: '/api/vms/:name/autostart', summary: "switch autostart.enabled in the stored definition (comments kept)", params: P, body: M.autostartBodySchema, response: M.autostartResultSchema },
  pendingChanges: { method: 'GET', path: '/api/vms/:name/pending', summary: "a running VM: the QEMU options its stored definition changes, which take effect at the next start", params: P, response: M.pendingSchema },
  vmDevices: { method: 'GET', path: '/api/vms/:name/devices', summary: "a VM's disks (image, active layer, size) and NICs (attachment, model, MAC)", params: P, response: D.devicesSchema },
  resizeVmDisk: { method: 'POST', path: '/api/vms/:name/disks/:id/resize', summary: "resize a VM's disk (its active layer): live through QMP when running; shrinking needs shrink: true", role: 'admin', params: D.deviceParams, body: D.diskResizeBodySchema, response: D.diskResizeResultSchema },
  attachVmDisk: { method: 'POST', path: '/api/vms/:name/disks', summary: 'add an image as a disk: in the stored definition and, while the VM runs, hotplugged (virtio on a spare root port, scsi on its controller; live: true = live or not at all, false = definition only)', role: 'admin', params: P, body: D.diskAttachBodySchema, response: D.deviceChangeResultSchema },
  detachVmDisk: { method: 'DELETE', path: '/api/vms/:name/disks/:id', summary: 'remove a disk from the stored definition and, while the VM runs, unplug it (?live=true|false as for attach; ?deleteImage=true also deletes its image: VM stopped, no snapshot overlays)', role: 'admin', params: D.deviceParams, query: D.diskDetachQuerySchema, response: D.deviceChangeResultSchema },
  addVmNic: { method: 'POST', path: '/api/vms/:name/nics', summary: "add a NIC (a kvmctl network, or user-mode) in the stored definition and, while the VM runs, hotplugged (a tap in the VM's namespace; live as for disks)", role: 'admin', params: P, body: D.nicAddBodySchema, response: D.deviceChangeResultSchema },
  removeVmNic: { method: 'DELETE', path: '/api/vms/:name/nics/:id', summary: 'remove a NIC from the stored definition and, while the VM runs, unplug it (?live=true|false)', role: 'admin', params: D.deviceParams, query: D.nicRemoveQuerySchema, response: D.deviceChangeResultSchema },
  whoami: { method: 'GET', path: '/api/whoami', summary: 'who this token is: name, role, VM scope', response: A.whoamiSchema },
  listTokens: { method: 'GET', path: '/api/tokens', summary: 'the named API tokens (never the tokens themselves: they are stored hashed)', role: 'admin', response: A.tokenListSchema },
  createToken: { method: 'POST', path: '/api/tokens', summary: 'make a named token with a role (viewer, operator, admin) and an optional VM name pattern; the answer is the only time the token is shown', role: 'admin', body: A.tokenCreateBodySchema, response: A.tokenCreateResultSchema },
  deleteToken: { method: 'DELETE', path: '/api/tokens/:name', summary: 'revoke a named token (at once)', role: 'admin', params: A.tokenParams, response: removedResultSchema },
  audit: { method: 'GET', path: '/api/audit', summary: 'the audit log: who changed what, opened a console or was refused (newest last; ?limit=, ?user=)', role: 'admin', query: A.auditQuerySchema, response: A.auditListSchema },
  listNetworks: { method: 'GET', path: '/api/networks', summary: 'every network with its live state', response: netListSchema },
  createNetwork: { method: 'POST', path: '/api/networks', summary: 'define a network (?replace=true to overwrite)', query: netCreateQuerySchema, body: definitionBodySchema, response: netCreateResultSchema },
  getNetwork: { method: 'GET', path: '/api/networks/:name', summary: 'a network definition and state', params: P, response: netDetailSchema },
  networkLeases: { method: 'GET', path: '/api/networks/:name/leases', summary: "a nat network's DHCP leases with the VM and NIC holding each (empty for other types)", params: P, response: netLeasesSchema },
  upNetwork: { method: 'POST', path: '/api/networks/:name/up', summary: 'create the bridge and its addresses', params: P, response: netActionResultSchema },
  downNetwork: { method: 'POST', path: '/api/networks/:name/down', summary: 'take the network down (force even when VMs use it)', params: P, body: netDownBodySchema, response: netActionResultSchema },
  deleteNetwork: { method: 'DELETE', path: '/api/networks/:name', summary: 'remove a network definition (?force=true when in use)', params: P, query: netDeleteQuerySchema, response: netActionResultSchema },
  listDisks: { method: 'GET', path: '/api/disks', summary: 'image files in the images dir', response: diskListSchema },
  diskInfo: { method: 'GET', path: '/api/disks/info', summary: 'qemu-img info of an image in the images dir (?path=)', query: diskQuerySchema, response: diskInfoSchema },
  createDisk: { method: 'POST', path: '/api/disks', summary: 'create an image in the images dir', body: diskCreateBodySchema, response: diskCreateResultSchema },
  listStorages: { method: 'GET', path: '/api/storage', role: 'viewer', summary: 'the named storages (dir: path; rbd: pool, namespace, monitors, conf, user — never the key or the keyring path); an invalid definition is listed with its error', response: V.storageListSchema },
  checkStorage: { method: 'GET', path: '/api/storage/:storage/check', role: 'operator', summary: 'is a named storage usable from the server (its namespace): keyring, monitors, pool, write permission (a probe image created and removed), free space; always 200 with ok and each check', params: V.storageParams, response: V.storageCheckSchema },
  listVolumes: { method: 'GET', path: '/api/storage/:storage/volumes', summary: "an rbd storage's volumes and their snapshots", params: V.storageParams, response: V.volumeListSchema },
  volumeInfo: { method: 'GET', path: '/api/storage/:storage/volumes/:volume', summary: 'a volume: size, features, parent, snapshot count, open by (watchers, any host), named by (VM definitions here)', params: V.volumeParams, response: V.volumeInfoSchema },
  createVolume: { method: 'POST', path: '/api/storage/:storage/volumes', summary: 'create an RBD volume (format 2, layering + exclusive-lock + object-map + fast-diff)', params: V.storageParams, body: V.volumeCreateBodySchema, response: V.volumeCreateResultSchema },
  resizeVolume: { method: 'POST', path: '/api/storage/:storage/volumes/:volume/resize', summary: 'resize a volume: live through QMP when a VM here runs it; shrinking needs shrink: true', params: V.volumeParams, body: V.volumeResizeBodySchema, response: V.volumeResizeResultSchema },
  deleteVolume: { method: 'DELETE', path: '/api/storage/:storage/volumes/:volume', summary: 'remove a volume (409 while a client has it open; 400 while a VM definition names it or it has snapshots)', params: V.volumeParams, response: V.volumeRemoveResultSchema },
  hostCheck: { method: 'GET', path: '/api/host/check', summary: 'the host check (CPU, /dev/kvm, kernel, tools, …)', response: hostCheckSchema },
  ksm: { method: 'GET', path: '/api/host/ksm', summary: 'KSM state and savings', response: ksmStatusSchema },
  ksmOn: { method: 'POST', path: '/api/host/ksm/on', summary: 'start KSM merging', body: ksmOnBodySchema, response: ksmStatusSchema },
  ksmOff: { method: 'POST', path: '/api/host/ksm/off', summary: 'stop KSM (unmerge: split merged pages)', body: ksmOffBodySchema, response: ksmStatusSchema },
  metrics: { method: 'GET', path: '/api/metrics', summary: 'host and per-VM metrics', response: metricsSchema },
  vmMetricsHistory: { method: 'GET', path: '/api/vms/:name/metrics', summary: "a VM's metric history (?range=1h|1d|30d): CPU %, RSS, balloon, disk and net rates, in columns", params: P, query: MH.historyQuerySchema, response: MH.historySchema },
  hostMetricsHistory: { method: 'GET', path: '/api/host/metrics', summary: "the host's metric history (?range=1h|1d|30d): CPU %, memory, load, KSM, in columns", query: MH.historyQuerySchema, response: MH.historySchema },
  listTasks: { method: 'GET', path: '/api/tasks', summary: 'tasks (every mutating API call), newest first (?vm=, ?state=, ?limit=)', query: MH.taskListQuerySchema, response: MH.taskListSchema },
  getTask: { method: 'GET', path: '/api/tasks/:id', summary: 'one task with its log and result', params: MH.taskParams, response: MH.taskSchema },
  taskLog: { method: 'GET', path: '/api/tasks/:id/log', summary: "a task's log lines from ?since=N on", params: MH.taskParams, query: MH.taskLogQuerySchema, response: MH.taskLogSchema },
  clusterStatus: { method: 'GET', path: '/api/cluster', summary: "this host's cluster: hosts (alive, lease TTL left, CPUs, memory, VMs), VMs (desired, owner, observed, migration), etcd members (400 NOT_IN_CLUSTER when the host is in none)", response: C.clusterStatusSchema },
  migrateVm: { method: 'POST', path: '/api/cluster/vms/:name/migrate', summary: 'live-migrate a running cluster VM to another host (a task, with QEMU\'s progress)', params: P, body: C.migrateBodySchema, response: C.migrateResultSchema, role: 'operator' },
  cancelMigration: { method: 'POST', path: '/api/cluster/vms/:name/migrate/cancel', summary: "cancel a cluster VM's migration in progress, from any host (the source agent cancels it; the VM keeps running on its source; 400 NO_MIGRATION when none runs)", params: P, response: C.cancelMigrationResultSchema, role: 'operator' },
  cancelTask: { method: 'POST', path: '/api/tasks/:id/cancel', summary: 'cancel a running task (409 TASK_NOT_CANCELLABLE when its operation cannot stop safely)', params: MH.taskParams, response: MH.taskSummarySchema, role: 'operator' },
  listIsos: { method: 'GET', path: '/api/isos', summary: "the ISO images in the images root's iso/ folder, and the upload limit", response: ISO.isoListSchema },
  uploadIso: { method: 'PUT', path: '/api/isos/:file', summary: 'upload an ISO into the iso/ folder: the raw file as the body (application/octet-stream), streamed to disk, refused over the size limit (413) or the free space (507); ?replace=true to overwrite', role: 'admin', params: ISO.isoParams, query: ISO.isoUploadQuerySchema, upload: 'application/octet-stream', response: ISO.isoSchema },
  deleteIso: { method: 'DELETE', path: '/api/isos/:file', summary: 'delete an ISO from the iso/ folder (409 while a running VM has it in a CD-ROM drive)', role: 'admin', params: ISO.isoParams, response: removedResultSchema },
  vmCdroms: { method: 'GET', path: '/api/vms/:name/cdrom', summary: "a VM's CD-ROM drives: the definition's, and the medium in each while it runs", params: P, response: ISO.cdromListSchema },
  vmCdrom: { method: 'POST', path: '/api/vms/:name/cdrom', summary: "insert an ISO into a running VM's CD-ROM drive, or eject it (the drive must exist since the start: cdroms: in the definition)", role: 'operator', params: P, body: ISO.cdromBodySchema, response: ISO.cdromStateSchema },
  vmMemory: { method: 'GET', path: '/api/vms/:name/memory', summary: "a running VM's memory balloon: the guest memory it leaves (QMP query-balloon) and the defined size (400 NO_BALLOON without memory.balloon)", params: P, response: T.balloonSchema },
  setVmMemory: { method: 'POST', path: '/api/vms/:name/memory', summary: "set a running VM's balloon target (64M … memory.size); the guest's driver inflates or deflates towards it. The definition is not changed", role: 'operator', params: P, body: T.balloonBodySchema, response: T.balloonSchema },
  vmCpus: { method: 'GET', path: '/api/vms/:name/cpus', summary: "a VM's vCPUs: cpu.count (boot), cpu.maxCount (max) and, while it runs, how many it has (QMP query-cpus-fast)", params: P, response: T.cpuInfoSchema },
  setVmCpus: { method: 'POST', path: '/api/vms/:name/cpus', summary: "hotplug vCPUs into a running VM up to cpu.maxCount (pinned as cpu.pin says), or unplug hotplugged ones; the definition is not changed", role: 'operator', params: P, body: T.cpuSetBodySchema, response: T.cpuSetResultSchema },
  vmPinning: { method: 'GET', path: '/api/vms/:name/pinning', summary: "the CPU affinity each thread of a running VM's QEMU has (Cpus_allowed_list in /proc/PID/task/TID/status: vCPUs, I/O threads, emulator) next to what cpu.pin asks for", params: P, response: T.pinningSchema },
  vmPci: { method: 'GET', path: '/api/vms/:name/pci', summary: "a VM's PCI passthrough devices (pci:) with the host driver holding each now and its IOMMU group", params: P, response: T.pciDevicesSchema },
  hostUsb: { method: 'GET', path: '/api/host/usb', summary: "the host's USB devices (sysfs): what can be attached to a VM, by vendor:product or bus-port", response: T.hostUsbSchema },
  vmUsb: { method: 'GET', path: '/api/vms/:name/usb', summary: "the usb-host devices plugged into a running VM (from the definition and attached), with what each selects", params: P, response: T.usbPluggedSchema },
  attachVmUsb: { method: 'POST', path: '/api/vms/:name/usb', summary: "plug a host USB device into a running VM (usb-host on its xHCI controller: usb: entries or usbController: true); gone after a restart. admin: it hands host hardware the definition does not name to the guest", role: 'admin', params: P, body: T.usbAttachBodySchema, response: T.usbAttachResultSchema },
  detachVmUsb: { method: 'DELETE', path: '/api/vms/:name/usb/:id', summary: 'unplug a usb-host device from a running VM by its id', role: 'operator', params: T.usbParams, response: T.usbDetachResultSchema },
  prometheus: { method: 'GET', path: '/metrics', summary: 'the same metrics in Prometheus text format; every defined VM has kvmctl_vm_up (1 = a QEMU process, running or paused; 0 = stopped or crashed) and kvmctl_vm_state{state="running|paused|stopped|crashed|starting|stopping"} (1 for its state, 0 for the others)', text: 'text/plain; version=0.0.4' },
} as const satisfies Record<string, Route>;

export type RouteName = keyof typeof routes;

/** `/api/vms/:name/start` + {name: 'a'} → `/api/vms/a/start`. */
export function routePath(path: string, params: Record<string, string> = {}): string {
  return path.replace(/:([A-Za-z]+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));
}
