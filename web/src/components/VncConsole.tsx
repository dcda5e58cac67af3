/**
 * The VM's graphical console: noVNC over a WebSocket that the server bridges to the VM's VNC unix
 * socket. noVNC is loaded on demand (it is large and only this view needs it).
 */
import { useEffect, useRef, useState } from 'react';
import type RFB from '@novnc/novnc';

type Status = 'connecting' | 'connected' | 'disconnected' | 'failed';

export function VncConsole({ url, name }: { url: string; name: string }) {
  const box = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<RFB | null>(null);
  const [status, setStatus] = useState<Status>('connecting');
  const [detail, setDetail] = useState('');
  const [attempt, setAttempt] = useState(0);
  const [scale, setScale] = useState(true);

  useEffect(() => {
    let dead = false;
    let rfb: RFB | null = null;
    setStatus('connecting');
    setDetail('');
    import('@novnc/novnc')
      .then(({ default: RFBClass }) => {
        if (dead || !box.current) return;
        rfb = new RFBClass(box.current, url, { wsProtocols: ['binary'] });
        rfbRef.current = rfb;
        rfb.scaleViewport = scale;
        rfb.background = '#111';
        rfb.addEventListener('connect', () => setStatus('connected'));
        rfb.addEventListener('disconnect', (e) => {
          const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
          setStatus(clean ? 'disconnected' : 'failed');
        });
        rfb.addEventListener('securityfailure', (e) => setDetail(String((e as CustomEvent<{ reason?: string }>).detail?.reason ?? 'security failure')));
      })
      .catch((e: unknown) => {
        setStatus('failed');
        setDetail(`could not load noVNC: ${String(e)}`);
      });
    return () => {
      dead = true;
      rfbRef.current = null;
      try {
        rfb?.disconnect();
      } catch {
        /* already closed */
      }
    };
  }, [url, attempt]);

  useEffect(() => {
    if (rfbRef.current) rfbRef.current.scaleViewport = scale;
  }, [scale]);

  return (
    <section aria-label={`Graphical console of ${name}`}>
      <div className="row" style={{ marginBottom: 6 }}>
        <span role="status" className="muted">
          VNC: {status}
          {detail && ` (${detail})`}
        </span>
        <span className="spacer" />
        <label style={{ fontWeight: 'normal' }}>
          <input type="checkbox" checked={scale} onChange={(e) => setScale(e.target.checked)} /> Scale to fit
        </label>
        <button type="button" disabled={status !== 'connected'} onClick={() => rfbRef.current?.sendCtrlAltDel()}>
          Send Ctrl+Alt+Del
        </button>
        {(status === 'disconnected' || status === 'failed') && (
          <button type="button" onClick={() => setAttempt((a) => a + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <div className="vnc" ref={box} data-testid="vnc-screen" style={{ height: 440 }} />
    </section>
  );
}
