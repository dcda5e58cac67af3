/**
 * The VM detail page's tuned-hardware card (docs/tuning.md "HTTP API and web UI"): vCPUs now / max
 * with a set control (hotplug up to cpu.maxCount, re-pinned), the memory balloon with a set
 * control, the pinning each QEMU thread really has (read back from /proc) next to what cpu.pin
 * wants, usb-host devices plugged in (attach from the host's list or by id, detach) and the PCI
 * passthrough devices with the driver holding each. Changes are for the running VM only: the
 * definition (and so the next start) stays as it is.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { call, fmtBytes } from '../api.js';
import { can, useMe } from '../session.js';
import { useAction } from '../useAction.js';
import { useLoad } from '../useLoad.js';
import { ErrorBox } from './ErrorBox.js';

const none = () => Promise.resolve(undefined);

export function VmHardware({ name, spec, running }: { name: string; spec: Record<string, unknown>; running: boolean }) {
  const me = useMe();
  const operator = can(me, 'operator');
  const admin = can(me, 'admin');
  const hasBalloon = !!spec.balloon;
  const usbCtl = ((spec.usb as unknown[] | undefined)?.length ?? 0) > 0 || spec.usbController === true;
  const pciDefined = ((spec.pci as unknown[] | undefined)?.length ?? 0) > 0;

  const cpus = useLoad(() => call('vmCpus', { params: { name } }), [name, running]);
  const mem = useLoad(() => (running && hasBalloon ? call('vmMemory', { params: { name } }) : none()), [name, running, hasBalloon]);
  const pin = useLoad(() => (running ? call('vmPinning', { params: { name } }) : none()), [name, running]);
  const usb = useLoad(() => (running && usbCtl ? call('vmUsb', { params: { name } }) : none()), [name, running, usbCtl]);
  const hostUsb = useLoad(() => (running && usbCtl && admin ? call('hostUsb') : none()), [running, usbCtl, admin]);
  const pci = useLoad(() => (pciDefined ? call('vmPci', { params: { name } }) : none()), [name, pciDefined, running]);
  const [count, setCount] = useState('');
  const [size, setSize] = useState('');
  const [dev, setDev] = useState('');

  // The balloon moves by itself after a target is set: follow it while it is shown.
  const reloadMem = mem.reload;
  useEffect(() => {
    if (!running || !hasBalloon) return;
    const t = setInterval(reloadMem, 3000);
    return () => clearInterval(t);
  }, [running, hasBalloon, reloadMem]);

  const { busy, failure, notice, run } = useAction(() => {
    cpus.reload();
    mem.reload();
    pin.reload();
    usb.reload();
  });
  const setCpus = (e: FormEvent) => {
    e.preventDefault();
    const n = Number(count);
    void run('cpus', async () => {
      const r = await call('setVmCpus', { params: { name }, body: { count: n } });
      return `vCPUs ${r.before} → ${r.after}${r.added.length ? ` (added ${r.added.join(', ')})` : ''}${r.removed?.length ? ` (removed ${r.removed.join(', ')})` : ''}${r.pinned ? `; ${r.pinned.length} threads pinned` : ''}.`;
    });
  };
  const setMem = (e: FormEvent) => {
    e.preventDefault();
    void run('memory', async () => {
      const r = await call('setVmMemory', { params: { name }, body: { size: size.trim() } });
      return `Balloon target ${fmtBytes(r.target)}; the guest has ${fmtBytes(r.actual)} now and moves towards it.`;
    });
  };
  const attach = (e: FormEvent) => {
    e.preventDefault();
    void run('usb', async () => {
      const r = await call('attachVmUsb', { params: { name }, body: { device: dev.trim() } });
      setDev('');
      return `${dev.trim()} attached as ${r.id}.`;
    });
  };
  const detach = (id: string) =>
    void run(`usb-${id}`, async () => {
      await call('detachVmUsb', { params: { name, id } });
      return `${id} detached (the guest lets it go).`;
    });

  const c = cpus.data;
  const m = mem.data;
  return (
    <section className="card" aria-labelledby="h-tuned" data-testid="vm-hardware">
      <h2 id="h-tuned" style={{ marginTop: 0 }}>CPU, memory and passthrough</h2>
      <ErrorBox error={failure} title="Hardware" />
      {notice && (
        <div className="notice" role="status" data-testid="hw-notice">
          {notice}
        </div>
      )}
      {!running && <p className="muted">The VM is not running: these are its defined values. vCPUs, memory and USB devices can be changed while it runs.</p>}

      <h3>vCPUs</h3>
      <ErrorBox error={cpus.error} title="vCPUs" />
      {c && (
        <p>
          <span data-testid="hw-vcpus-now">{c.present ?? '–'}</span> now of <span data-testid="hw-vcpus-max">{c.max}</span> at most ({c.boot} at boot
          {c.max === c.boot ? '; set cpu.maxCount in the definition to hotplug' : ''})
        </p>
      )}
      {running && operator && c && c.max > c.boot && (
        <form className="row" onSubmit={setCpus}>
          <label htmlFor="hw-vcpus">vCPUs</label>
          <input id="hw-vcpus" type="number" min={c.boot} max={c.max} required value={count} onChange={(e) => setCount(e.target.value)} placeholder={String(c.present ?? c.boot)} data-testid="hw-vcpus-input" style={{ width: '6em' }} />
          <button type="submit" disabled={!!busy} data-testid="hw-vcpus-set">
            {busy === 'cpus' ? 'Setting…' : 'Set vCPUs'}
          </button>
        </form>
      )}

      <h3>Memory</h3>
      <p>
        {fmtBytes(spec.memory as number)} defined
        {!hasBalloon && ' (no balloon: add memory.balloon to the definition to change it while running)'}
        {m && (
          <>
            ; the guest has <span data-testid="hw-mem-actual">{fmtBytes(m.actual)}</span> (balloon)
          </>
        )}
      </p>
      <ErrorBox error={mem.error} title="Balloon" />
      {running && operator && hasBalloon && (
        <form className="row" onSubmit={setMem}>
          <label htmlFor="hw-mem">Balloon target</label>
          <input id="hw-mem" required value={size} onChange={(e) => setSize(e.target.value)} placeholder="e.g. 512M" data-testid="hw-mem-input" style={{ width: '8em' }} />
          <button type="submit" disabled={!!busy} data-testid="hw-mem-set">
            {busy === 'memory' ? 'Setting…' : 'Set memory'}
          </button>
        </form>
      )}

      {running && (
        <>
          <h3>CPU pinning</h3>
          <ErrorBox error={pin.error} title="Pinning" />
          {pin.data && (
            <>
              {!pin.data.pinned && <p className="muted">No cpu.pin in the definition: threads run where the host's scheduler puts them.</p>}
              <div className="scroll-x">
                <table className="small" data-testid="hw-pinning">
                  <thead>
                    <tr>
                      <th scope="col">Thread</th>
                      <th scope="col" className="num">TID</th>
                      <th scope="col">Wanted (cpu.pin)</th>
                      <th scope="col">Actual (/proc)</th>
                    </tr>
                  </thead>
                  <tbody>
                    {pin.data.threads.map((t) => (
                      <tr key={t.tid} data-tid={t.tid}>
                        <td>{t.what}</td>
                        <td className="num mono">{t.tid}</td>
                        <td className="mono">{t.wanted ?? '–'}</td>
                        <td className={`mono${t.matches ? '' : ' check-fail'}`} data-testid="pin-actual">
                          {t.actual ?? 'ended'}
                          {!t.matches && ' (differs)'}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </>
      )}

      <h3>USB devices</h3>
      {!usbCtl ? (
        <p className="muted">No USB controller (add usbController: true or usb: entries to the definition).</p>
      ) : !running ? (
        <p className="muted">{(spec.usb as unknown[] | undefined)?.length ?? 0} in the definition.</p>
      ) : (
        <>
          <ErrorBox error={usb.error} title="USB" />
          {usb.data && usb.data.length === 0 && <p className="muted">None plugged in.</p>}
          {usb.data && usb.data.length > 0 && (
            <table className="small" data-testid="hw-usb">
              <tbody>
                {usb.data.map((u) => (
                  <tr key={u.id} data-usb={u.id}>
                    <th scope="row" className="mono">{u.id}</th>
                    <td className="mono">{u.vendor ? `${u.vendor}:${u.product}` : u.bus ? `${u.bus}-${u.port}` : '?'}</td>
                    <td>
                      {operator && (
                        <button type="button" disabled={!!busy} onClick={() => detach(u.id)} aria-label={`Detach ${u.id}`}>
                          Detach
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {admin && (
            <form className="row" onSubmit={attach}>
              <label htmlFor="hw-usb-dev">Attach</label>
              <input id="hw-usb-dev" list="hw-usb-host" required value={dev} onChange={(e) => setDev(e.target.value)} placeholder="046d:c52b or 1-1.4" data-testid="hw-usb-input" style={{ width: '12em' }} />
              <datalist id="hw-usb-host">
                {hostUsb.data?.map((h) => (
                  <option key={h.address} value={`${h.vendor}:${h.product}`}>
                    {[h.manufacturer, h.name, `at ${h.address}`].filter(Boolean).join(' ')}
                  </option>
                ))}
              </datalist>
              <button type="submit" disabled={!!busy} data-testid="hw-usb-attach">
                {busy === 'usb' ? 'Attaching…' : 'Attach'}
              </button>
              <span className="muted small" data-testid="hw-usb-host-count">
                {hostUsb.data ? `${hostUsb.data.length} USB device${hostUsb.data.length === 1 ? '' : 's'} on the host` : ''}
              </span>
            </form>
          )}
        </>
      )}

      <h3>PCI passthrough</h3>
      {!pciDefined ? (
        <p className="muted">None (pci: in the definition).</p>
      ) : (
        <>
          <ErrorBox error={pci.error} title="PCI" />
          <table className="small" data-testid="hw-pci">
            <tbody>
              {pci.data?.map((p) => (
                <tr key={p.host}>
                  <th scope="row" className="mono">{p.host}</th>
                  <td>{p.driver ? `on ${p.driver}` : 'no driver'}{p.iommuGroup !== undefined ? `, IOMMU group ${p.iommuGroup}` : ''}</td>
                  <td className="muted">{p.managed ? (p.takenByKvmctl ? 'managed: taken by this VM' : 'managed') : 'bound by hand'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
