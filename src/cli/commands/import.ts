/**
 * `kvmctl import cmdline FILE` — a QEMU launch script (or a pasted command line, `-` for stdin)
 * → a VM definition in the config dir, or in -o FILE. Warnings go to stderr (and into --json).
 */
import type { Command } from 'commander';
import type { ImportResult } from '../../qemu/import.js';
import type { Ctx } from '../context.js';
import type { Action } from '../action.js';

const EXAMPLES = `
Examples:
  kvmctl import cmdline start-vm.sh                 # writes <config>/vms/NAME.yaml (NAME from -name)
  kvmctl import cmdline start-vm.sh -o vm.yaml      # writes vm.yaml instead (apply it later)
  pbpaste | kvmctl import cmdline - --name web -o - # a pasted command line, YAML to stdout

Nothing in the script is run: $(…) substitutions and unknown variables are reported and kept as
written. Options kvmctl has no field for are kept in extraArgs and listed as warnings.`;

export function register(program: Command, action: Action): void {
  const imp = program.commands.find((c) => c.name() === 'import') ?? program.command('import').description('turn an existing setup into kvmctl definitions');
  imp
    .command('cmdline <file>')
    .description('import a QEMU launch script or command line (- for stdin) as a VM definition')
    .option('--name <name>', 'the VM name (default: the -name in the script, else the file name)')
    .option('-o, --output <file>', 'write the YAML to this file (- for stdout) instead of the config dir')
    .option('--force', 'replace an existing definition or output file')
    .addHelpText('after', EXAMPLES)
    .action(
      action(async (ctx, file: string, opts: { name?: string; output?: string; force?: boolean }) => {
        const fs = await import('node:fs');
        const { badInput } = await import('../../errors.js');
        const m = await import('../../qemu/import.js');
        let text: string;
        try {
          text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
        } catch (e) {
          throw badInput('FILE_NOT_FOUND', `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, 'give the launch script, or - to read it from stdin');
        }
        const source = file === '-' ? '<stdin>' : file;
        // A -readconfig the line names is read (only read) as QEMU would: relative to where the script runs.
        const path = await import('node:path');
        const base = file === '-' ? process.cwd() : path.dirname(path.resolve(file));
        const readConfig = (f: string) => {
          try {
            const p = path.resolve(base, f);
            return fs.statSync(p).isFile() && fs.statSync(p).size < 1 << 20 ? fs.readFileSync(p, 'utf8') : undefined;
          } catch {
            return undefined;
          }
        };
        const r = m.importCommandLine(text, { name: opts.name, source: file, readConfig });
        await writeImport(ctx, r, source, opts);
      }),
    );
  registerLibvirt(imp, action);
  registerProxmox(imp, action);
}

function registerProxmox(imp: Command, action: Action): void {
  imp
    .command('proxmox <file>')
    .description('import a Proxmox VE guest config (/etc/pve/qemu-server/VMID.conf; - for stdin) as a VM definition, with its bridges')
    .option('--name <name>', 'the VM name (default: the config\'s name:, else vmVMID)')
    .option('--storage-cfg <file>', "the cluster's /etc/pve/storage.cfg, to turn volume ids into paths (default: Proxmox's local and local-lvm)")
    .option('-o, --output <file>', 'write the YAML to this file (- for stdout) instead of the config dir')
    .option('--force', 'replace an existing definition or output file')
    .addHelpText('after', '\nExamples:\n  kvmctl import proxmox /etc/pve/qemu-server/100.conf --storage-cfg /etc/pve/storage.cfg\n  kvmctl import proxmox 100.conf -o web.yaml')
    .action(
      action(async (ctx, file: string, opts: ImportOpts & { storageCfg?: string }) => {
        const text = await readInput(file, 'the guest config (/etc/pve/qemu-server/VMID.conf)');
        const m = await import('../../import/proxmox.js');
        const storage = opts.storageCfg ? m.parseStorageCfg(await readInput(opts.storageCfg, 'storage.cfg')) : undefined;
        const source = file === '-' ? '<stdin>' : file;
        const r = m.importProxmox(text, { name: opts.name, source, storage });
        printFidelity(ctx, r);
        await writeImport(ctx, r, source, opts);
      }),
    );
}

type ImportOpts = { name?: string; output?: string; force?: boolean };

async function readInput(file: string, what: string): Promise<string> {
  const fs = await import('node:fs');
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const { badInput } = await import('../../errors.js');
    throw badInput('FILE_NOT_FOUND', `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, `give ${what}, or - to read it from stdin`);
  }
}

function printFidelity(ctx: Ctx, r: ImportResult & { fidelity?: { kept: string[]; translated: string[]; lost: string[] } }): void {
  const f = r.fidelity;
  if (f && !ctx.json) process.stderr.write(`fidelity: ${f.kept.length} kept, ${f.translated.length} translated, ${f.lost.length} not kept${f.lost.length ? ` (${f.lost.join('; ')})` : ''}\n`);
}

function registerLibvirt(imp: Command, action: Action): void {
  imp
    .command('libvirt [file]')
    .description('import a libvirt domain (virsh dumpxml NAME > FILE.xml) or network (virsh net-dumpxml), or with --all every XML file in a directory')
    .option('--name <name>', 'the VM name (default: the domain name)')
    .option('--all <dir>', 'import every *.xml in DIR: networks first, then domains; each file reported')
    .option('--virsh [uri]', "import every domain and network libvirt has defined, read with virsh (default connection, or URI such as qemu:///system); pools' directories resolve volume disks")
    .option('--pool <name=dir...>', "a storage pool's directory, for disks given as pool volumes (virsh pool-dumpxml NAME shows it)")
    .option('-o, --output <file>', 'write the YAML to this file (- for stdout) instead of the config dir')
    .option('--force', 'replace an existing definition or output file')
    .addHelpText('after', '\nExamples:\n  virsh dumpxml web > web.xml && kvmctl import libvirt web.xml\n  kvmctl import libvirt web.xml --pool default=/var/lib/libvirt/images -o web.yaml\n  kvmctl import libvirt --all /etc/libvirt/qemu     # its networks/ too: --all /etc/libvirt/qemu/networks first\n  kvmctl import libvirt --virsh qemu:///system      # every defined domain and network, pools resolved')
    .action(
      action(async (ctx, file: string | undefined, opts: ImportOpts & { pool?: string[]; all?: string; virsh?: string | boolean }) => {
        const { badInput } = await import('../../errors.js');
        const pools: Record<string, string> = {};
        for (const p of opts.pool ?? []) {
          const m = /^([^=]+)=(\/.*)$/.exec(p);
          if (!m) throw badInput('BAD_VALUE', `--pool ${p}: give NAME=/absolute/dir`);
          pools[m[1]!] = m[2]!;
        }
        if (opts.virsh !== undefined) {
          if (file || opts.output || opts.name || opts.all) throw badInput('BAD_OPTION', '--virsh reads every definition from libvirt and writes into the config dir: no FILE, --all, -o or --name with it');
          const { dumpVirsh } = await import('../../import/virsh.js');
          const dump = await dumpVirsh(typeof opts.virsh === 'string' ? opts.virsh : undefined);
          const { importLibvirtTexts } = await import('../../import/save-all.js');
          const res = importLibvirtTexts(ctx.paths, dump.texts, { force: opts.force, pools: { ...dump.pools, ...pools } });
          reportAll(ctx, res);
          return;
        }
        if (opts.all) {
          if (file || opts.output || opts.name) throw badInput('BAD_OPTION', '--all takes a directory and writes into the config dir: no FILE, -o or --name with it');
          const fs = await import('node:fs');
          if (!fs.existsSync(opts.all) || !fs.statSync(opts.all).isDirectory()) throw badInput('FILE_NOT_FOUND', `${opts.all}: not a directory`);
          const { importLibvirtDir } = await import('../../import/save-all.js');
          const res = importLibvirtDir(ctx.paths, opts.all, { force: opts.force, pools });
          reportAll(ctx, res);
          return;
        }
        if (!file) throw badInput('FILE_MISSING', 'give the domain or network XML file, or --all DIR');
        const text = await readInput(file, 'the domain XML (virsh dumpxml NAME)');
        const source = file === '-' ? '<stdin>' : file;
        const { isNetworkXml, importLibvirtNetwork } = await import('../../import/libvirt-network.js');
        if (isNetworkXml(text)) {
          const r = importLibvirtNetwork(text, { source });
          for (const x of r.notes) process.stderr.write(`${x.level}: ${x.message}\n`);
          if (opts.output) {
            const yaml = (await import('../../import/save-all.js')).networkYaml(r.network);
            if (opts.output === '-') process.stdout.write(yaml);
            else (await import('node:fs')).writeFileSync(opts.output, yaml);
            return;
          }
          const { saveNetwork } = await import('../../import/save-all.js');
          let f: string;
          try {
            f = saveNetwork(ctx.paths, r.network, source, opts.force);
          } catch (e) {
            throw badInput('NETWORK_EXISTS', (e as Error).message, 'use --force to replace it');
          }
          ctx.out({ name: r.name, files: [f], definition: r.network }, () => `imported network "${r.name}" (${String(r.network.type)}) from ${source}: ${f}`);
          return;
        }
        const { importLibvirt } = await import('../../import/libvirt.js');
        const r = importLibvirt(text, { name: opts.name, source, pools });
        printFidelity(ctx, r);
        await writeImport(ctx, r, source, opts);
      }),
    );
}

/** One line per file of --all / --virsh, and exit 1 when any failed. */
function reportAll(ctx: Ctx, res: import('../../import/save-all.js').AllOutcome[]): void {
  ctx.out(res, () => res.map((r) => (r.ok ? `ok    ${r.kind} ${r.name} (${r.file})${r.warnings ? `, ${r.warnings} warning(s)` : ''}` : `FAIL  ${r.kind} ${r.file}: ${r.why}`)).join('\n') + `\n${res.filter((r) => r.ok).length} of ${res.length} imported`);
  if (res.some((r) => !r.ok)) process.exitCode = 1;
}

async function writeImport(ctx: Ctx, r: ImportResult, source: string, opts: ImportOpts): Promise<void> {
  const { badInput } = await import('../../errors.js');
  const m = await import('../../qemu/import.js');
  // Paths outside the storage roots: nothing is stored in the config dir; with -o the YAML is
  // written with a warning per path (apply refuses it until the roots are added).
  const { vmPathIssues } = await import('../../vm/path-check.js');
  const outside = vmPathIssues(r.spec, ctx.paths);
  const adds = [...new Set(outside.flatMap((i) => /kvmctl storage add (\S+)/.exec(i.message)?.[1] ?? []))];
  const rootHint = adds.length ? `add the roots first: ${adds.map((d) => `kvmctl storage add ${d}`).join('; ')}` : 'move the files into a storage root (kvmctl storage list)';
  if (outside.length && !opts.output) {
    throw badInput('PATH_OUTSIDE_ROOTS', `${source}: ${outside.length} path${outside.length === 1 ? '' : 's'} outside the storage roots, nothing imported:\n${outside.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`, `${rootHint}, then import again (or -o FILE to write the YAML elsewhere)`, outside);
  }
  for (const i of outside) r.notes.push({ level: 'warning', message: `${i.path}: ${i.message} (kvmctl apply refuses it until then)` });
  const warnings = r.notes.map((n) => ({ level: n.level, ...(n.line ? { line: n.line } : {}), message: n.message }));
  const printNotes = () => {
    for (const n of r.notes) process.stderr.write(`${n.level}: ${n.line ? `${source}:${n.line}: ` : ''}${n.message}\n`);
  };
  if (opts.output === '-') {
    printNotes();
    const yaml = m.importYaml(r, source);
    if (ctx.json) ctx.out({ name: r.name, files: [], warnings, definition: r.vm, networks: r.networks, yaml });
    else process.stdout.write(yaml);
    return;
  }
  const saved = m.saveImport(ctx.paths, r, { source, out: opts.output, force: opts.force });
  printNotes();
  for (const s of saved.skipped) ctx.warn(`network "${s.name}" is already defined (${s.file}): kept as it is`);
  for (const n of saved.missingNetworks) ctx.warn(`network "${n}" is not defined yet: define it (kind: network) before starting the VM`);
  const nw = r.notes.filter((n) => n.level === 'warning').length;
  ctx.out({ name: r.name, files: saved.files, warnings, definition: r.vm, networks: r.networks }, () =>
    `imported VM "${r.name}" from ${source}: ${saved.files.join(', ')}${nw ? ` (${nw} warning${nw === 1 ? '' : 's'}, see above)` : ''}\n` +
    `next: kvmctl cmdline ${opts.output ?? r.name}`,
  );
}
