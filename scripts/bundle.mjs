// Bundles the compiled CLI into dist/bundle/ (esbuild, ESM, code-split at the lazy imports):
// loading one file per command instead of hundreds of small modules halves CLI start-up.
// `node scripts/bundle.mjs` builds dist/bundle; bench/lib.mjs imports bundle() for its private copy.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { build as esbuild } from 'esbuild';

const require_ = createRequire(import.meta.url);
const RESERVED = new Set(['default', 'delete', 'new', 'class', 'function', 'import', 'export', 'in', 'do', 'if', 'for', 'while', 'var', 'let', 'const', 'enum', 'await', 'yield', 'static', 'super', 'this', 'void', 'with', 'switch', 'case', 'try', 'catch', 'finally', 'throw', 'return', 'typeof', 'instanceof', 'null', 'true', 'false', 'debugger', 'continue', 'break', 'else', 'extends', 'implements', 'interface', 'package', 'private', 'protected', 'public']);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** sha256 of everything a build is made from: the sources, the locked dependencies, this script. */
export function sourceHash(root = ROOT) {
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) h.update(`${path.relative(root, p)}\0`).update(fs.readFileSync(p)).update('\0');
    }
  };
  walk(path.join(root, 'src'));
  for (const f of ['package.json', 'package-lock.json', 'scripts/bundle.mjs']) {
    try {
      h.update(`${f}\0`).update(fs.readFileSync(path.join(root, f)));
    } catch {
      /* no lock file in a bare checkout */
    }
  }
  return h.digest('hex').slice(0, 16);
}

const common = (root, build) => ({
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  metafile: true,
  logLevel: 'warning',
  // ASCII output: one non-ASCII character makes V8 keep a whole chunk's source as UTF-16 (twice the memory).
  charset: 'ascii',
  // Whitespace and syntax only (identifiers and names stay, for stack traces): smaller sources parse faster and V8 keeps less; comments (some non-ASCII) go.
  minifyWhitespace: true,
  minifySyntax: true,
  // Licence comments go to *.LEGAL.txt beside each chunk (kept, out of the parsed source).
  legalComments: 'external',
  // The definition cache's build identity (src/definition/definition-cache.ts): both entries share it.
  define: { __KVMCTL_BUILD__: JSON.stringify(build) },
  // CommonJS dependencies (proper-lockfile, graceful-fs) call require() for Node built-ins.
  banner: { js: "import { createRequire as __kvmctlRequire } from 'node:module'; const require = __kvmctlRequire(import.meta.url);" },
});

/**
 * fastify and ws require node:https and node:http2 when they load, for servers and clients kvmctl
 * serve mostly never makes (https only with --cert): ≈ 1.1 MiB of an idle server's memory (the
 * modules and the node binary's pages they touch). In the bundle, npm packages get a stand-in that
 * loads the real module the first time anything touches it (any property, `in`, keys).
 */
const lazyTls = {
  name: 'lazy-tls',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(https|http2)$/ }, (a) => (a.kind === 'require-call' && a.importer.includes(`${path.sep}node_modules${path.sep}`) ? { path: a.path.replace(/^node:/, ''), namespace: 'lazy-builtin' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => ({
      loader: 'js',
      contents: `let m; const real = () => (m ??= require('node:${a.path}'));
module.exports = new Proxy({}, {
  get: (_, k) => real()[k], has: (_, k) => k in real(), ownKeys: () => Reflect.ownKeys(real()),
  getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(real(), k); return d && { ...d, configurable: true }; },
  set: (_, k, v) => ((real()[k] = v), true),
});
`,
    }));
  },
};

/**
 * Build ROOT's sources into OUTDIR (emptied first):
 *  - main.js + chunks: the CLI, code-split at the lazy imports (a command loads only its own code);
 *  - start.cjs: the start fast path (src/cli/start-fast.ts) as ONE file, everything inlined:
 *    `kvmctl start` is the latency-critical command, and each chunk the ESM loader resolves,
 *    reads, compiles and links costs ~0.5 ms (35 chunks before QEMU was spawned). bin/kvmctl.js
 *    compiles it with a V8 code cache (start.cjs.cache, keyed by the file's sha256), so its
 *    600 KB are not parsed each time; vendor-zod.cjs and vendor-yaml.cjs beside it are loaded
 *    only when a start needs them (a definition cache miss, a cloud-init seed).
 * Returns { build, main, start }: the source hash and esbuild's metafiles.
 */
export async function bundle({ outdir = path.join(ROOT, 'dist/bundle'), root = ROOT } = {}) {
  // Chunk names carry content hashes: without this, every build leaves the last one's chunks behind.
  fs.rmSync(outdir, { recursive: true, force: true });
  const build = sourceHash(root);
  const main = await esbuild({ ...common(root, build), plugins: [lazyTls], entryPoints: [path.join(root, 'src/cli/main.ts')], splitting: true, outdir });
  // The validator's zod + yaml and execa (tools run on a cache miss only) are imported lazily: left
  // out of start.js, they come from node_modules when a start needs them (module-level state-free
  // packages, so a second copy beside main.js's would be harmless).
  // zod and yaml (the validator, cloud-init seeds: cold paths of a start) as files of their own that
  // start.cjs require()s when a lazily initialised module first needs them: 740 KB less source to
  // load (and hash) on every start. Stateless packages: a second copy beside main.js's is harmless.
  await esbuild({ ...common(root, build), banner: {}, entryPoints: { 'vendor-zod': 'zod', 'vendor-yaml': 'yaml' }, format: 'cjs', outdir, outExtension: { '.js': '.cjs' } });
  const vendor = { name: 'vendor', setup: (b) => b.onResolve({ filter: /^(zod|yaml)$/ }, (a) => ({ path: `./vendor-${a.path}.cjs`, external: true })) };
  // In CommonJS output every `import fs from 'node:fs'` becomes its own __toESM(require('node:fs'))
  // copy of the module's properties (44 of fs, 38 of path: ~8 ms of a start under load). One ES module per
  // built-in re-exporting it, bundled once, is what the importers share instead.
  const SHARED = ['fs', 'path', 'os']; // not process: its exports are live values (exitCode)
  const builtins = {
    name: 'shared-builtins',
    setup(b) {
      // ES imports only: CommonJS packages' require('fs') stays the real module (graceful-fs patches it).
      b.onResolve({ filter: new RegExp(`^(node:)?(${SHARED.join('|')})$`) }, (a) => (a.namespace === 'builtin' || a.kind !== 'import-statement' ? { path: a.path, external: true } : { path: a.path.replace(/^node:/, ''), namespace: 'builtin' }));
      b.onLoad({ filter: /.*/, namespace: 'builtin' }, (a) => {
        const names = Object.keys(require_(a.path)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && !RESERVED.has(k));
        return { contents: `import m from 'node:${a.path}';\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`, loader: 'js', resolveDir: root };
      });
    },
  };
  const start = await esbuild({
    ...common(root, build),
    plugins: [vendor, builtins],
    entryPoints: [path.join(root, 'src/cli/start-fast.ts')],
    outfile: path.join(outdir, 'start.cjs'),
    // CommonJS so that bin/kvmctl.js can compile it as a vm.Script with cachedData (Node 20 has no
    // code cache for ES modules). bin/kvmctl.js passes require, __filename; import.meta.url is
    // defined from __filename.
    format: 'cjs',
    banner: { js: 'var __kvmctl_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    define: { ...common(root, build).define, 'import.meta.url': '__kvmctl_import_meta_url' },
  });
  const text = fs.readFileSync(path.join(outdir, 'start.cjs'), 'utf8');
  // The code cache's script cannot import(): every lazy import must have been bundled in.
  if (/\bimport\(/.test(text)) throw new Error('dist/bundle/start.cjs calls import(): a dynamic import the bundle could not inline (see src/cli/start-fast.ts)');
  // What `start` must not carry (it would be parsed, or evaluated, on every start): the API and web
  // server, the cluster code beyond the "am I in a cluster" check, commander.
  const stray = Object.keys(start.metafile.inputs).filter((f) => /(^|\/)src\/(api|cluster)\//.test(f) && !f.endsWith('src/cluster/local.ts') || /node_modules\/(commander|fastify|@fastify|ws|etcd3)\//.test(f));
  if (stray.length) throw new Error(`dist/bundle/start.cjs would carry ${stray.join(', ')}: an import on the start path pulls them in`);
  return { build, main: main.metafile, start: start.metafile };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await bundle();
  if (process.argv.includes('--meta')) fs.writeFileSync(path.join(ROOT, 'dist/bundle-meta.json'), JSON.stringify(r));
}
