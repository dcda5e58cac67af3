/**
 * A page's buttons that call the API: which one is busy, the last failure, the last success
 * message; `run(what, f)` clears both, runs f (which returns the message) and then `after()`
 * (reload what it changed).
 */
import { useState } from 'react';

export function useAction(after: () => void): { busy: string; failure: unknown; notice: string; run: (what: string, f: () => Promise<string>) => Promise<void> } {
  const [busy, setBusy] = useState('');
  const [failure, setFailure] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const run = async (what: string, f: () => Promise<string>) => {
    setBusy(what);
    setFailure(null);
    setNotice('');
    try {
      setNotice(await f());
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy('');
      after();
    }
  };
  return { busy, failure, notice, run };
}
