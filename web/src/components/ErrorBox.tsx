/** An API error as the user should see it: message, hint, and every issue with its path. */
import { ApiFailure } from '../api.js';

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error instanceof ApiFailure ? error : null;
  return (
    <div className="alert" role="alert">
      <strong>{title ?? 'Error'}:</strong> {e ? e.message : String((error as Error).message ?? error)}
      {e?.code && <span className="muted mono"> ({e.code})</span>}
      {e?.hint && <div className="hint">{e.hint}</div>}
      {e?.issues && e.issues.length > 0 && (
        <ul>
          {e.issues.map((i, k) => (
            <li key={k}>
              <span className="mono">{i.path || '(top)'}</span>: {i.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span className={`state ${state}`} data-state={state} data-testid={testId}>
      {state}
    </span>
  );
}
