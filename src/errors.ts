/**
 * The one error type of kvmctl: a stable code, a message that names the thing, and a hint that
 * says what to do. The CLI maps `exit` to the process status (2 = bad input, 1 = failure); the
 * API maps codes to HTTP statuses.
 */
export type ErrorIssue = { path: string; message: string };

export class KvmError extends Error {
  readonly code: string;
  readonly hint?: string;
  /** 2 = bad input (nothing changed), 1 = operation failed. */
  readonly exit: 1 | 2;
  /** Every problem found, each with its path (spec validation reports all of them at once). */
  readonly issues?: ErrorIssue[];
  readonly details?: Record<string, unknown>;

  constructor(
    code: string,
    message: string,
    opts: { hint?: string; exit?: 1 | 2; issues?: ErrorIssue[]; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'KvmError';
    this.code = code;
    this.hint = opts.hint;
    this.exit = opts.exit ?? 1;
    this.issues = opts.issues;
    this.details = opts.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.issues ? { issues: this.issues } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Bad input: exit status 2, nothing was changed. */
export function badInput(code: string, message: string, hint?: string, issues?: ErrorIssue[]): KvmError {
  return new KvmError(code, message, { hint, exit: 2, issues });
}

export function isKvmError(e: unknown): e is KvmError {
  return e instanceof KvmError;
}
