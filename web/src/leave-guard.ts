/**
 * Unsaved work is not lost by leaving the page: a component with unsaved edits registers a
 * guard; following a link (a hash change) then asks first, and a confirmed "no" puts the address
 * back; closing or reloading the tab gets the browser's own "leave site?" prompt.
 */
import { useEffect } from 'react';

const guards = new Set<() => string | undefined>();

/** The message of the first guard that objects, or undefined. */
export const leaveMessage = (): string | undefined => {
  for (const g of guards) {
    const m = g();
    if (m) return m;
  }
  return undefined;
};

export function useLeaveGuard(dirty: boolean, message: string): void {
  useEffect(() => {
    if (!dirty) return;
    const g = () => message;
    guards.add(g);
    const unload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = message;
    };
    window.addEventListener('beforeunload', unload);
    return () => {
      guards.delete(g);
      window.removeEventListener('beforeunload', unload);
    };
  }, [dirty, message]);
}
