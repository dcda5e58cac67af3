/**
 * The bearer token for TCP: KVMCTL_TOKEN when set, else `<config>/token` (0600), generated with
 * crypto.randomBytes on first use; `kvmctl serve token rotate` writes a new one.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Paths } from '../host/paths.js';

export function tokenFile(paths: Paths): string {
  return path.join(paths.config, 'token');
}

function writeToken(file: string): string {
  const token = crypto.randomBytes(32).toString('base64url');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
  return token;
}

export function loadToken(paths: Paths, env: NodeJS.ProcessEnv = process.env): { token: string; source: 'env' | 'file' | 'generated'; file: string } {
  const file = tokenFile(paths);
  if (env.KVMCTL_TOKEN) return { token: env.KVMCTL_TOKEN, source: 'env', file };
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    if (t) return { token: t, source: 'file', file };
  } catch {
    /* none yet */
  }
  return { token: writeToken(file), source: 'generated', file };
}

export function rotateToken(paths: Paths): { token: string; file: string } {
  const file = tokenFile(paths);
  return { token: writeToken(file), file };
}

/** The token of a file, re-read when the file changes (so `serve token rotate` takes effect at once). */
export function fileTokenReader(file: string, initial: string): () => string {
  let cur = initial;
  let stamp = '';
  return () => {
    try {
      const st = fs.statSync(file);
      const s = `${st.mtimeMs}:${st.ino}:${st.size}`;
      if (s !== stamp) {
        const t = fs.readFileSync(file, 'utf8').trim();
        if (t) cur = t;
        stamp = s;
      }
    } catch {
      /* file gone: keep the last token */
    }
    return cur;
  };
}

/** Constant-time comparison. */
export function tokenMatches(given: string | undefined, want: string): boolean {
  if (!given) return false;
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(want).digest();
  return crypto.timingSafeEqual(a, b);
}
