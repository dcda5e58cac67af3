/**
 * The API's audit log: one JSON line per request that changes something, opens a console, or was
 * refused (401/403), in `<data>/audit.log` (0600), with who (token name), what (method, route
 * pattern, target VM or object), the HTTP status and how long it took. Reads (GET) are not logged:
 * the UI polls metrics every 2 s. At 10 MiB the file moves to audit.log.1 (one old file kept).
 * Read by `kvmctl serve audit` and `GET /api/audit` (admins).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Paths } from '../host/paths.js';

export type AuditEntry = { at: string; user: string; role?: string; method: string; route: string; target?: string; status: number; ms?: number; ip?: string };

export const AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const auditFile = (paths: Paths): string => path.join(paths.data, 'audit.log');

export function appendAudit(paths: Paths, e: AuditEntry, maxBytes = AUDIT_MAX_BYTES): void {
  const file = auditFile(paths);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    try {
      if (fs.statSync(file).size > maxBytes) fs.renameSync(file, `${file}.1`);
    } catch {
      /* no file yet */
    }
    fs.appendFileSync(file, `${JSON.stringify(e)}\n`, { mode: 0o600 });
  } catch {
    /* the audit log must never turn a request into a failure */
  }
}

/** The last `limit` entries (newest last), optionally of one user only. */
export function readAudit(paths: Paths, o: { limit?: number; user?: string } = {}): AuditEntry[] {
  const file = auditFile(paths);
  const lines: string[] = [];
  for (const f of [`${file}.1`, file]) {
    try {
      lines.push(...fs.readFileSync(f, 'utf8').split('\n'));
    } catch {
      /* absent */
    }
  }
  const out: AuditEntry[] = [];
  for (const l of lines) {
    if (!l.trim()) continue;
    try {
      const e = JSON.parse(l) as AuditEntry;
      if (!o.user || e.user === o.user) out.push(e);
    } catch {
      /* a torn last line */
    }
  }
  return out.slice(-(o.limit ?? 200));
}
