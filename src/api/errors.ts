/**
 * KvmError → HTTP: the code decides the status (404 not found, 409 conflict with the VM's
 * state, 422 an invalid definition or a request QEMU or the host could not carry out (QEMU
 * start failures, QMP errors, capacity), 503/504 a service that did not answer, 400 other bad
 * input, 401 auth, 403 role or VM scope). 500 is only for INTERNAL and for errors that are not KvmErrors: bugs. The
 * body is the error's own JSON ({code, message, hint, issues}).
 */
import { KvmError } from '../errors.js';
import type { ApiError } from './contract.js';

const CONFLICT = new Set([
  'VM_RUNNING', 'VM_NOT_RUNNING', 'VM_EXISTS', 'VM_BUSY', 'NETWORK_EXISTS', 'NETWORK_IN_USE', 'NETWORK_BUSY',
  'DISK_IN_USE', 'DISK_EXISTS', 'DISK_IS_BACKING', 'FILE_EXISTS', 'SNAPSHOT_EXISTS', 'IFACE_CONFLICT', 'ADDRESS_OVERLAP', 'GUEST_LOCKED', 'AGENT_DISABLED', 'AGENT_NOT_CONFIGURED', 'RESTORE_REFUSED', 'TOKEN_EXISTS',
  'TASK_ENDED', 'TASK_NOT_CANCELLABLE', 'VOLUME_IN_USE', 'VOLUME_BUSY', 'VOLUME_EXISTS', 'VOLUME_HAS_SNAPSHOTS', 'ISO_EXISTS', 'ISO_BUSY', 'ISO_IN_USE',
]);

export function httpStatusOf(e: KvmError): number {
  const c = e.code;
  if (c === 'UNAUTHORIZED') return 401;
  if (c === 'FORBIDDEN') return 403;
  if (c === 'NOT_FOUND' || c.endsWith('_NOT_FOUND')) return 404;
  if (CONFLICT.has(c)) return 409;
  if (c === 'SPEC_INVALID' || c === 'CAPACITY_EXCEEDED') return 422;
  if (c === 'UPLOAD_TOO_LARGE') return 413;
  if (c === 'NO_SPACE') return 507;
  if (c === 'INTERNAL') return 500;
  if (e.exit === 2) return 400;
  if (c.endsWith('_UNAVAILABLE') || c.endsWith('_CONNECT') || c === 'QMP_DISCONNECTED' || c === 'STORAGE_UNREACHABLE') return 503;
  if (c === 'TIMEOUT' || c.endsWith('_TIMEOUT')) return 504;
  return 422;
}

export function toApiError(e: unknown): { status: number; body: ApiError } {
  if (e instanceof KvmError) {
    const j = e.toJSON() as ApiError;
    const status = httpStatusOf(e);
    // A known failure without a hint still tells the user where to look.
    if (!j.hint && status !== 500) j.hint = 'kvmctl status NAME and the VM\'s qemu.log say more';
    return { status, body: j };
  }
  const fe = e as { statusCode?: number; code?: string; message?: string };
  // fastify's own errors (bad JSON, body too large, unsupported media type, …) are bad input.
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { code: fe.code?.startsWith('FST_') ? 'BAD_REQUEST' : (fe.code ?? 'BAD_REQUEST'), message: fe.message ?? 'bad request' } };
  }
  return { status: 500, body: { code: 'INTERNAL', message: String(fe?.message ?? e), hint: 'see the server log (kvmctl serve prints it on stderr)' } };
}

export const unauthorized = (why: string) =>
  new KvmError('UNAUTHORIZED', why, { hint: 'send Authorization: Bearer TOKEN (the token is in <config>/token, or KVMCTL_TOKEN); WebSockets may use ?token=TOKEN' });
