/**
 * The VM's serial console in xterm.js over a WebSocket that the server bridges to the VM's serial
 * unix socket: bytes both ways, nothing interpreted. Reconnects by button, not by itself (a stopped
 * VM has no serial socket).
 */
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';

type Status = 'connecting' | 'connected' | 'closed';

export function SerialConsole({ url, name }: { url: string; name: string }) {
  const box = useRef<HTMLDivElement>(null);
  const after = useRef<HTMLButtonElement>(null);
  const [status, setStatus] = useState<Status>('connecting');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, rows: 24, cols: 100, scrollback: 2000 });
    term.open(box.current!);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const enc = new TextEncoder();
    setStatus('connecting');
    ws.onopen = () => {
      setStatus('connected');
      term.focus();
    };
    ws.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data as ArrayBuffer));
    ws.onclose = (e) => {
      setStatus('closed');
      term.write(`\r\n\x1b[33m[serial console closed${e.reason ? `: ${e.reason}` : ''}]\x1b[0m\r\n`);
    };
    // Tab belongs to the guest's shell; Ctrl+] (the classic console escape) leaves the terminal.
    term.attachCustomKeyEventHandler((ev) => {
      if (ev.type === 'keydown' && ev.ctrlKey && ev.key === ']') {
        after.current?.focus();
        return false;
      }
      return true;
    });
    const sub = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    // The terminal object on its element, so the browser test can read the screen buffer.
    (box.current as HTMLDivElement & { term?: Terminal }).term = term;
    return () => {
      sub.dispose();
      ws.onclose = null;
      ws.close();
      term.dispose();
    };
  }, [url, attempt]);

  return (
    <section aria-label={`Serial console of ${name}`}>
      <div className="row" style={{ marginBottom: 6 }}>
        <span role="status" className="muted">Serial console: {status}</span>
        <span className="spacer" />
        {status === 'closed' && <button type="button" onClick={() => setAttempt((a) => a + 1)}>Reconnect</button>}
      </div>
      <div className="terminal" ref={box} data-testid="serial-terminal" />
      <div className="row" style={{ marginTop: 6 }}>
        <span className="muted" style={{ fontSize: 13 }}>Keys typed in the terminal (Tab too) go to the guest; Ctrl+] leaves the terminal.</span>
        <span className="spacer" />
        <button type="button" ref={after} onClick={() => (box.current as (HTMLDivElement & { term?: Terminal }) | null)?.term?.focus()}>Focus terminal</button>
      </div>
    </section>
  );
}
