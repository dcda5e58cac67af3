/**
 * Create a VM from a form: name, vCPUs, memory, an optional new disk, boot from an ISO or the
 * built-in test guest kernel, a network, a display, and for real guests the firmware (BIOS, UEFI,
 * UEFI with Secure Boot), a TPM 2.0, the guest agent channel and a cloud-init seed (user, SSH
 * keys, host name). The server validates with the same schema as the CLI; each issue is shown
 * next to the field its path belongs to (fieldOf).
 */
import { useId, useLayoutEffect, useState, type FormEvent, type ReactNode } from 'react';
import { ApiFailure, call } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { go, href } from '../router.js';
import { useLoad } from '../useLoad.js';

export type Form = {
  name: string;
  description: string;
  cpus: string;
  memory: string;
  diskSize: string;
  boot: 'test-guest' | 'iso';
  iso: string;
  network: string;
  display: 'none' | 'vnc';
  start: boolean;
  /** '' = the profile's default (BIOS for a standard VM). */
  firmware: '' | 'bios' | 'uefi' | 'uefi-secure';
  tpm: boolean;
  agent: boolean;
  cloudInit: boolean;
  ciUser: string;
  ciKeys: string;
  ciHostname: string;
};
type FieldKey = 'name' | 'description' | 'cpus' | 'memory' | 'diskSize' | 'iso' | 'network' | 'display' | 'firmware' | 'tpm' | 'agent' | 'ciUser' | 'ciKeys' | 'ciHostname';

export const EMPTY_FORM: Form = { name: '', description: '', cpus: '1', memory: '256M', diskSize: '', boot: 'test-guest', iso: '', network: '', display: 'none', start: false, firmware: '', tpm: false, agent: false, cloudInit: false, ciUser: '', ciKeys: '', ciHostname: '' };

/** Which form field a definition path belongs to. */
export function fieldOf(path: string): FieldKey | null {
  if (path === 'firmware' || path.startsWith('firmware.') || path === 'profile') return 'firmware';
  if (path === 'tpm' || path.startsWith('tpm.')) return 'tpm';
  if (path === 'agent') return 'agent';
  if (/^cloudInit\.userData\.hostname|^cloudInit\.metaData\.local-hostname/.test(path)) return 'ciHostname';
  if (/^cloudInit\.userData\.(users\[\d+\]\.)?sshAuthorizedKeys/.test(path)) return 'ciKeys';
  if (path.startsWith('cloudInit')) return 'ciUser';
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
  if (f.firmware) d.firmware = f.firmware;
  if (f.tpm) d.tpm = { version: '2.0' };
  if (f.agent) d.agent = true;
  if (f.cloudInit) {
    const keys = f.ciKeys.split('\n').map((k) => k.trim()).filter(Boolean);
    const user = f.ciUser.trim();
    const userData: Record<string, unknown> = {};
    if (f.ciHostname.trim()) userData.hostname = f.ciHostname.trim();
    // A named user gets the keys and sudo; without one the keys go to the image's default user.
    if (user) userData.users = [{ name: user, sshAuthorizedKeys: keys, sudo: true }];
    else if (keys.length) userData.sshAuthorizedKeys = keys;
    d.cloudInit = { userData };
  }
  return d;
}

export function CreateVm() {
  const nets = useLoad(() => call('listNetworks'), []);
  const disks = useLoad(() => call('listDisks'), []);
  const [f, setF] = useState<Form>(EMPTY_FORM);
  const [issues, setIssues] = useState<{ path: string; message: string }[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useFocusFirstInvalid(issues);
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
    if (f.cloudInit && !f.ciUser.trim() && !f.ciKeys.trim() && !f.ciHostname.trim()) local.push({ path: 'cloudInit.userData', message: 'give a user, an SSH key or a host name (or switch cloud-init off)' });
    if (local.length) {
      setIssues(local);
      setBusy(false);
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
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const isos = (disks.data ?? []).filter((d) => /\.iso$/i.test(d.path));
  const fwDefault = 'profile default (BIOS)';
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
        <Field k="firmware" label="Firmware" errors={byField.get('firmware')} hint="UEFI needs the OVMF package on the host; Secure Boot needs machine q35 (the default)">
          {(p) => (
            <select {...p} value={f.firmware} onChange={(e) => set('firmware', e.target.value as Form['firmware'])}>
              <option value="">{fwDefault}</option>
              <option value="bios">BIOS (SeaBIOS)</option>
              <option value="uefi">UEFI (OVMF)</option>
              <option value="uefi-secure">UEFI with Secure Boot</option>
            </select>
          )}
        </Field>
        <Field k="tpm" label="TPM" errors={byField.get('tpm')} hint="A TPM 2.0 (swtpm, its state kept with the VM): Windows 11, measured boot">
          {(p) => (
            <label style={{ fontWeight: 'normal' }}>
              <input {...p} type="checkbox" checked={f.tpm} onChange={(e) => set('tpm', e.target.checked)} /> Add a TPM 2.0
            </label>
          )}
        </Field>
        <Field k="agent" label="Guest agent" errors={byField.get('agent')} hint="The virtio-serial channel for qemu-guest-agent (addresses, clean shutdown, consistent snapshots)">
          {(p) => (
            <label style={{ fontWeight: 'normal' }}>
              <input {...p} type="checkbox" checked={f.agent} onChange={(e) => set('agent', e.target.checked)} /> Add the agent channel
            </label>
          )}
        </Field>
        <span id="ci-label" style={{ fontWeight: 600 }}>Cloud-init</span>
        <label style={{ fontWeight: 'normal' }}>
          <input type="checkbox" checked={f.cloudInit} onChange={(e) => set('cloudInit', e.target.checked)} aria-labelledby="ci-label" data-testid="ci-toggle" /> Give a cloud image its user, keys and name (a NoCloud seed, rebuilt at every start)
        </label>
        {f.cloudInit && (
          <>
            <Field k="ciUser" label="User" errors={byField.get('ciUser')} hint="A Unix user made at first boot, with passwordless sudo; empty: the image's default user">
              {(p) => <input {...p} value={f.ciUser} onChange={(e) => set('ciUser', e.target.value)} autoComplete="off" placeholder="admin" />}
            </Field>
            <Field k="ciKeys" label="SSH public keys" errors={byField.get('ciKeys')} hint="One OpenSSH public key per line (ssh-ed25519 AAAA… you@host)">
              {(p) => <textarea {...p} rows={3} value={f.ciKeys} onChange={(e) => set('ciKeys', e.target.value)} spellCheck={false} className="mono" />}
            </Field>
            <Field k="ciHostname" label="Host name" errors={byField.get('ciHostname')}>
              {(p) => <input {...p} value={f.ciHostname} onChange={(e) => set('ciHostname', e.target.value)} autoComplete="off" placeholder="web1" />}
            </Field>
          </>
        )}
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

// Focus the first field in error in the same commit that shows the errors, so no one (a
// keyboard user, a test) ever sees the errors with focus still on the button.
function useFocusFirstInvalid(issues: readonly unknown[]): void {
  useLayoutEffect(() => {
    if (issues.length) (document.querySelector('form [aria-invalid="true"]') as HTMLElement | null)?.focus();
  }, [issues]);
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
