// Bundles the compiled CLI into dist/bundle/ (esbuild, ESM, code-split at the lazy imports):
// loading one file per command instead of hundreds of small modules halves CLI start-up.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  splitting: true,
  outdir: 'dist/bundle',
  logLevel: 'warning',
  // CommonJS dependencies (proper-lockfile, graceful-fs) call require() for Node built-ins.
  banner: { js: "import { createRequire as __kvmctlRequire } from 'node:module'; const require = __kvmctlRequire(import.meta.url);" },
});
