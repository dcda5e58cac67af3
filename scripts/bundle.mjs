// Bundles the compiled CLI into dist/bundle/ (esbuild, ESM, code-split at the lazy imports):
// loading one file per command instead of hundreds of small modules halves CLI start-up.
import fs from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry content hashes: without this, every build leaves the last one's chunks behind.
fs.rmSync('dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  splitting: true,
  outdir: 'dist/bundle',
  logLevel: 'warning',
  // ASCII output: one non-ASCII character makes V8 keep a whole chunk's source as UTF-16 (twice the memory).
  charset: 'ascii',
  // Whitespace and syntax only (identifiers and names stay, for stack traces): smaller sources parse faster and V8 keeps less; comments (some non-ASCII) go.
  minifyWhitespace: true,
  minifySyntax: true,
  // Licence comments go to *.LEGAL.txt beside each chunk (kept, out of the parsed source).
  legalComments: 'external',
  // CommonJS dependencies (proper-lockfile, graceful-fs) call require() for Node built-ins.
  banner: { js: "import { createRequire as __kvmctlRequire } from 'node:module'; const require = __kvmctlRequire(import.meta.url);" },
});
