/**
 * Create a VM from a form: name, vCPUs, memory, an optional new disk, boot from an ISO or the
 * built-in test guest kernel, a network, a display. The server validates with the same schema as
 * the CLI; each issue is shown next to the field its path belongs to.
 */
import { useId, useState, type FormEvent, type ReactNode } from 'react';
import { ApiFailure, call } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { go, href } from '../router.js';
import { useLoad } from '../useLoad.js';

type Form = { name: string; description: string; cpus: string; memory: string; diskSize: string; boot: 'test-guest' | 'iso'; iso: string; network: string; display: 'none' | 'vnc'; start: boolean };
type FieldKey = 'name' | 'description' | 'cpus' | 'memory' | 'diskSize' | 'iso' | 'network' | 'display';

/** Which form field a definition path belongs to. */
function fieldOf(path: string): FieldKey | null {
  if (path === 'name') return 'name';
  if (path === 'description') return 'description';
  if (path.startsWith('cpu')) return 'cpus';
  if (path.startsWith('memory')) return 'memory';
  if (path.startsWith('disks')) return 'diskSize';
  if (path.startsWith('cdroms') || path.startsWith('boot')) return 'iso';
  if (path.startsWith('nics')) return 'network';
  if (path.startsWith('display')) return 'display';
  return null;
}

export function toDefinition(f: Form): Record<string, unknown> {
  const d: Record<string, unknown> = { name: f.name.trim(), cpu: Number(f.cpus), memory: f.memory.trim() };
  if (f.description.trim()) d.description = f.description.trim();
  const disk = f.diskSize.trim();
  if (disk) d.disks = [{ file: `${f.name.trim()}.qcow2`, format: 'qcow2', create: { size: disk } }];
  if (f.boot === 'test-guest') d.kernel = { builtin: 'test-guest' };
  else {
    d.cdroms = [{ file: f.iso.trim() }];
    d.boot = disk ? { order: ['disk'], once: 'cdrom' } : { order: ['cdrom'] };
  }
  if (f.network === 'user') d.nics = [{ user: true }];
  else if (f.network) d.nics = [{ network: f.network }];
  if (f.display !== 'none') d.display = f.display;
  return d;
}

export function CreateVm() {
  const nets = useLoad(() => call('listNetworks'), []);
  const disks = useLoad(() => call('listDisks'), []);
  const [f, setF] = useState<Form>({ name: '', description: '', cpus: '1', memory: '256M', diskSize: '', boot: 'test-guest', iso: '', network: '', display: 'none', start: false });
  const [issues, setIssues] = useState<{ path: string; message: string }[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((o) => ({ ...o, [k]: v }));

  const byField = new Map<FieldKey, string[]>();
  const general: { path: string; message: string }[] = [];
  for (const i of issues) {
    const k = fieldOf(i.path);
    if (k) byField.set(k, [...(byField.get(k) ?? []), `${i.path}: ${i.message}`]);
    else general.push(i);
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setIssues([]);
    const local: { path: string; message: string }[] = [];
    if (f.boot === 'iso' && !f.iso.trim()) local.push({ path: 'cdroms[0].file', message: 'choose an ISO image or give its path' });
    if (!/^\d+$/.test(f.cpus.trim())) local.push({ path: 'cpu.count', message: 'must be a whole number of vCPUs' });
    if (local.length) {
      setIssues(local);
      setBusy(false);
      focusFirstInvalid();
      return;
    }
    try {
      const r = await call('createVm', { body: { definition: toDefinition(f) } });
      if (f.start) {
        try {
          await call('startVm', { params: { name: r.name }, body: {} });
        } catch (err) {
          setError(err);
          setBusy(false);
          return;
        }
      }
      go(href.vm(r.name));
    } catch (err) {
      if (err instanceof ApiFailure && err.issues?.length) {
        setIssues(err.issues);
        focusFirstInvalid();
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const isos = (disks.data ?? []).filter((d) => /\.iso$/i.test(d.path));
  return (
    <>
      <h1>New virtual machine</h1>
      <ErrorBox error={error} title="Could not create the VM" />
      {general.length > 0 && <ErrorBox error={new ApiFailure(422, { code: 'INVALID_SPEC', message: 'the definition is not valid', issues: general })} />}
      <form className="grid card" onSubmit={submit} noValidate aria-label="New VM">
        <Field k="name" label="Name" errors={byField.get('name')} hint="Letters, digits, . _ - (up to 64)">
          {(p) => <input {...p} value={f.name} onChange={(e) => set('name', e.target.value)} required autoComplete="off" />}
        </Field>
        <Field k="description" label="Description" errors={byField.get('description')}>
          {(p) => <input {...p} value={f.description} onChange={(e) => set('description', e.target.value)} />}
        </Field>
        <Field k="cpus" label="vCPUs" errors={byField.get('cpus')}>
          {(p) => <input {...p} type="number" min={1} max={64} value={f.cpus} onChange={(e) => set('cpus', e.target.value)} />}
        </Field>
        <Field k="memory" label="Memory" errors={byField.get('memory')} hint="e.g. 256M, 2G">
          {(p) => <input {...p} value={f.memory} onChange={(e) => set('memory', e.target.value)} />}
        </Field>
        <Field k="diskSize" label="New disk size" errors={byField.get('diskSize')} hint="Empty: no disk. Otherwise e.g. 8G (qcow2, created at the first start)">
          {(p) => <input {...p} value={f.diskSize} onChange={(e) => set('diskSize', e.target.value)} placeholder="no disk" />}
        </Field>
        <span id="boot-label" style={{ fontWeight: 600 }}>Boot from</span>
        <fieldset aria-labelledby="boot-label">
          <label>
            <input type="radio" name="boot" value="test-guest" checked={f.boot === 'test-guest'} onChange={() => set('boot', 'test-guest')} /> Test guest kernel (built in)
          </label>
          <label>
            <input type="radio" name="boot" value="iso" checked={f.boot === 'iso'} onChange={() => set('boot', 'iso')} /> ISO image
          </label>
        </fieldset>
        {f.boot === 'iso' && (
          <Field k="iso" label="ISO image" errors={byField.get('iso')} hint="A file in the images dir, or an absolute path">
            {(p) => (
              <>
                <input {...p} list="iso-list" value={f.iso} onChange={(e) => set('iso', e.target.value)} placeholder="debian-12.iso" />
                <datalist id="iso-list">
                  {isos.map((d) => (
                    <option key={d.path} value={d.path} />
                  ))}
                </datalist>
              </>
            )}
          </Field>
        )}
        <Field k="network" label="Network" errors={byField.get('network')}>
          {(p) => (
            <select {...p} value={f.network} onChange={(e) => set('network', e.target.value)}>
              <option value="">None</option>
              <option value="user">User-mode NAT (no host setup)</option>
              {(nets.data ?? []).map((n) => (
                <option key={n.network} value={n.network}>
                  {n.network} ({n.type}, {n.state})
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field k="display" label="Display" errors={byField.get('display')}>
          {(p) => (
            <select {...p} value={f.display} onChange={(e) => set('display', e.target.value as Form['display'])}>
              <option value="none">None (serial console only)</option>
              <option value="vnc">VNC (graphical console in the browser)</option>
            </select>
          )}
        </Field>
        <span />
        <label style={{ fontWeight: 'normal' }}>
          <input type="checkbox" checked={f.start} onChange={(e) => set('start', e.target.checked)} /> Start it right away
        </label>
        <span />
        <div className="row">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create VM'}
          </button>
          <a className="button" href={href.vms()}>Cancel</a>
        </div>
      </form>
    </>
  );
}

function focusFirstInvalid(): void {
  requestAnimationFrame(() => (document.querySelector('form [aria-invalid="true"]') as HTMLElement | null)?.focus());
}

function Field({
  k,
  label,
  errors,
  hint,
  children,
}: {
  k: FieldKey;
  label: string;
  errors?: string[];
  hint?: string;
  children: (p: { id: string; name: string; 'aria-invalid': boolean; 'aria-describedby'?: string }) => ReactNode;
}) {
  const id = `f-${k}-${useId().replace(/:/g, '')}`;
  const desc = [hint ? `${id}-hint` : '', errors?.length ? `${id}-err` : ''].filter(Boolean).join(' ');
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <div>
        {children({ id, name: k, 'aria-invalid': !!errors?.length, 'aria-describedby': desc || undefined })}
        {hint && (
          <div id={`${id}-hint`} className="muted" style={{ fontSize: 13 }}>
            {hint}
          </div>
        )}
        {errors?.length ? (
          <div id={`${id}-err`} className="field-error" data-field-error={k}>
            {errors.join('; ')}
          </div>
        ) : null}
      </div>
    </>
  );
}
