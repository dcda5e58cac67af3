/**
 * A VM's hardware: disks (image, active layer, size; resize — live when running —, detach, detach
 * and delete the image, attach another image) and NICs (attachment, model, MAC; add, remove).
 * Adding and removing change the stored definition and, while the VM runs, hotplug the device
 * (src/vm/devices.ts): the message says whether the guest has it now or at its next start, and why.
 */
import { useAction } from '../useAction.js';
import { useState, type FormEvent } from 'react';
import { call, fmtBytes } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { can, useMe } from '../session.js';
import { useLoad } from '../useLoad.js';

export function VmDevices({ name, running, onChanged }: { name: string; running: boolean; onChanged: () => void }) {
  const me = useMe();
  const admin = can(me, 'admin');
  const dev = useLoad(() => call('vmDevices', { params: { name } }), [name]);
  const images = useLoad(() => (admin ? call('listDisks') : Promise.resolve([])), [admin]);
  const nets = useLoad(() => call('listNetworks'), []);
  const cds = useLoad(() => call('vmCdroms', { params: { name } }), [name, running]);
  const isos = useLoad(() => call('listIsos'), []);
  const [iso, setIso] = useState<Record<string, string>>({});
  const operator = can(me, 'operator');
  const [pick, setPick] = useState('');
  const [net, setNet] = useState('');

  const { busy, failure, notice, run } = useAction(() => {
    dev.reload();
    cds.reload();
    images.reload();
    onChanged();
  });
  const later = (r: { pendingRestart: boolean; live?: boolean; why?: string; bus?: string }, verb = 'gets') =>
    r.live ? ` Live: the running guest ${verb === 'gets' ? 'has it now' : 'let it go'}${r.bus ? ` (on ${r.bus})` : ''}.` : r.pendingRestart ? ` The running VM ${verb} it at its next start${r.why ? `: ${r.why}` : ''}.` : '';
  const resize = (id: string) => {
    const to = window.prompt(`New size of ${name}'s disk ${id} (e.g. 20G, or +1G to grow by 1 GiB)${running ? ' — resized live' : ''}:`, '+1G');
    if (!to) return;
    void run(`resize-${id}`, async () => {
      const r = await call('resizeVmDisk', { params: { name, id }, body: { size: to.trim() } });
      return `Disk ${id}: ${fmtBytes(r.from)} → ${fmtBytes(r.to)}${r.live ? ' (live, the guest sees the new size)' : ''}.${r.warnings.length ? ` ${r.warnings.join(' ')}` : ''}`;
    });
  };
  const detach = (id: string, file: string) => {
    if (!window.confirm(`Detach disk ${id} (${file}) from ${name}?${running ? ' The running guest is asked to release it (unmount it first).' : ''}`)) return;
    const del = !running && window.confirm(`Also DELETE the image ${file}? Its data is gone for good. (Cancel keeps the image.)`);
    void run(`detach-${id}`, async () => {
      const r = await call('detachVmDisk', { params: { name, id }, query: del ? { deleteImage: 'true' } : {} });
      return `Disk ${id} detached${r.deleted ? `, ${r.deleted} deleted` : ''}.${later(r, 'loses')}`;
    });
  };
  const attach = (e: FormEvent) => {
    e.preventDefault();
    if (!pick) return;
    void run('attach', async () => {
      const r = await call('attachVmDisk', { params: { name }, body: { file: pick } });
      setPick('');
      return `${pick} attached as ${r.id}.${later(r)}`;
    });
  };
  const addNic = (e: FormEvent) => {
    e.preventDefault();
    void run('nic', async () => {
      const r = await call('addVmNic', { params: { name }, body: net ? { network: net } : { user: true } });
      return `NIC ${r.id} added.${later(r)}`;
    });
  };
  const removeNic = (id: string) => {
    if (!window.confirm(`Remove NIC ${id} from ${name}?`)) return;
    void run(`nic-${id}`, async () => {
      const r = await call('removeVmNic', { params: { name, id } });
      return `NIC ${id} removed.${later(r, 'loses')}`;
    });
  };

  const insert = (id: string) => {
    const file = iso[id];
    if (!file) return;
    void run(`cd-${id}`, async () => {
      const r = await call('vmCdrom', { params: { name }, body: { op: 'insert', file, id } });
      return `${id}: ${r.inserted ?? 'empty'}.`;
    });
  };
  const eject = (id: string) =>
    void run(`cd-${id}`, async () => {
      const r = await call('vmCdrom', { params: { name }, body: { op: 'eject', id, force: true } });
      return `${r.id} ejected${r.trayOpen ? ' (tray open)' : ''}.`;
    });

  const attached = new Set(dev.data?.disks.map((d) => d.file));
  const free = (images.data ?? []).filter((i) => !attached.has(i.file) && /\.(qcow2|raw|img)$/.test(i.path));
  return (
    <>
      <ErrorBox error={dev.error} title="Could not list the devices" />
      <ErrorBox error={failure} title="Hardware" />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <section className="card" aria-labelledby="h-disks">
        <h2 id="h-disks" style={{ marginTop: 0 }}>Disks</h2>
        <div className="scroll-x">
          <table data-testid="vm-disks">
            <thead>
              <tr>
                <th scope="col">Disk</th>
                <th scope="col">Image</th>
                <th scope="col" className="num">Size</th>
                <th scope="col">Bus</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dev.data?.disks.map((d) => (
                <tr key={d.id} data-disk={d.id}>
                  <th scope="row" className="mono">{d.id}</th>
                  <td className="mono">
                    {d.file}
                    {d.layers > 1 && <span className="muted"> (+{d.layers - 1} snapshot layer{d.layers > 2 ? 's' : ''})</span>}
                    {!d.exists && <span className="check-fail"> missing</span>}
                  </td>
                  <td className="num" data-testid={`size-${d.id}`}>{fmtBytes(d.virtualSize)}</td>
                  <td>
                    {d.interface}
                    {d.readOnly ? ', read-only' : ''}
                  </td>
                  <td>
                    {admin && (
                      <div className="row">
                        <button type="button" disabled={!!busy || d.readOnly || !d.exists} onClick={() => resize(d.id)} aria-label={`Resize ${d.id}`}>
                          {busy === `resize-${d.id}` ? 'Resizing…' : 'Resize'}
                        </button>
                        <button type="button" className="danger" disabled={!!busy} onClick={() => detach(d.id, d.file)} aria-label={`Detach ${d.id}`}>
                          Detach
                        </button>
                      </div>
                    )}
                  </td>
                </tr>
              ))}
              {dev.data?.disks.length === 0 && (
                <tr>
                  <td colSpan={5} className="muted">
                    No disks.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
        {admin && (
          <form className="row" onSubmit={attach} style={{ marginTop: 10 }}>
            <label htmlFor="attach-image">Attach image</label>
            <select id="attach-image" value={pick} onChange={(e) => setPick(e.target.value)} style={{ maxWidth: 320 }}>
              <option value="">{free.length ? 'choose an image…' : 'none free (make one on Disks)'}</option>
              {free.map((i) => (
                <option key={i.path} value={i.path}>
                  {i.path}
                </option>
              ))}
            </select>
            <button type="submit" disabled={!pick || !!busy}>
              {busy === 'attach' ? 'Attaching…' : 'Attach'}
            </button>
          </form>
        )}
      </section>
      {(cds.data?.drives.length ?? 0) > 0 && (
        <section className="card" aria-labelledby="h-cdroms">
          <h2 id="h-cdroms" style={{ marginTop: 0 }}>CD-ROM drives</h2>
          <ErrorBox error={cds.error} title="Could not read the CD-ROM drives" />
          <div className="scroll-x">
            <table data-testid="vm-cdroms">
              <thead>
                <tr>
                  <th scope="col">Drive</th>
                  <th scope="col">{cds.data?.running ? 'Medium' : 'Defined'}</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {cds.data?.drives.map((c) => (
                  <tr key={c.id} data-cdrom={c.id}>
                    <th scope="row" className="mono">{c.id}</th>
                    <td className="mono" data-testid={`medium-${c.id}`}>{cds.data?.running ? (c.inserted ?? 'empty') : (c.defined ?? '–')}</td>
                    <td>
                      {cds.data?.running && operator && (
                        <div className="row">
                          <label htmlFor={`iso-${c.id}`} className="sr-only">ISO for {c.id}</label>
                          <select id={`iso-${c.id}`} value={iso[c.id] ?? ''} onChange={(e) => setIso({ ...iso, [c.id]: e.target.value })} style={{ maxWidth: 220 }}>
                            <option value="">choose an ISO…</option>
                            {(isos.data?.isos ?? []).map((i) => (
                              <option key={i.name} value={`iso/${i.name}`}>
                                {i.name}
                              </option>
                            ))}
                          </select>
                          <button type="button" disabled={!iso[c.id] || !!busy} onClick={() => insert(c.id)} aria-label={`Insert into ${c.id}`}>
                            Insert
                          </button>
                          <button type="button" disabled={!c.inserted || !!busy} onClick={() => eject(c.id)} aria-label={`Eject ${c.id}`}>
                            Eject
                          </button>
                        </div>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {!cds.data?.running && <p className="muted">Media can be changed while the VM runs; upload ISOs on the Disks page.</p>}
        </section>
      )}
      <section className="card" aria-labelledby="h-nics">
        <h2 id="h-nics" style={{ marginTop: 0 }}>Network interfaces</h2>
        <div className="scroll-x">
          <table data-testid="vm-nics">
            <thead>
              <tr>
                <th scope="col">NIC</th>
                <th scope="col">Attached to</th>
                <th scope="col">Model</th>
                <th scope="col">MAC</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dev.data?.nics.map((n) => (
                <tr key={n.id} data-nic={n.id}>
                  <th scope="row" className="mono">{n.id}</th>
                  <td>{n.attach}</td>
                  <td>{n.model}</td>
                  <td className="mono">{n.mac}</td>
                  <td>
                    {admin && (
                      <button type="button" className="danger" disabled={!!busy} onClick={() => removeNic(n.id)} aria-label={`Remove ${n.id}`}>
                        Remove
                      </button>
                    )}
                  </td>
                </tr>
              ))}
              {dev.data?.nics.length === 0 && (
                <tr>
                  <td colSpan={5} className="muted">
                    No network interfaces.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
        {admin && (
          <form className="row" onSubmit={addNic} style={{ marginTop: 10 }}>
            <label htmlFor="nic-net">Add a NIC on</label>
            <select id="nic-net" value={net} onChange={(e) => setNet(e.target.value)} style={{ maxWidth: 260 }}>
              <option value="">user-mode networking</option>
              {(nets.data ?? []).map((n) => (
                <option key={n.network} value={n.network}>
                  network {n.network} ({n.type})
                </option>
              ))}
            </select>
            <button type="submit" disabled={!!busy}>
              {busy === 'nic' ? 'Adding…' : 'Add NIC'}
            </button>
          </form>
        )}
        <p className="muted">
          Adding or removing a disk or NIC changes the definition and, while the VM runs, hotplugs it: virtio and SCSI disks and NICs on bridge, host-only, nat and user
          networks, into a spare PCIe slot (q35: <code>machine.hotplugSlots</code>, 4 by default). On q35, devices the VM started with stay until it restarts. Resizing a disk of a running VM
          is live.
        </p>
      </section>
    </>
  );
}
