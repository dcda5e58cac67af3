/**
 * The web UI's build: `vite build --config web/vite.config.ts` → dist/web/, served by `kvmctl serve`
 * at `/`. Plain React with the automatic JSX runtime (vite's own oxc transform, no plugin).
 * `vite --config web/vite.config.ts` serves it in development and proxies /api to a running
 * `kvmctl serve --listen 127.0.0.1:8006` (KVMCTL_API overrides the target).
 */
import path from 'node:path';
import { defineConfig } from 'vite';

const root = import.meta.dirname;
const api = process.env.KVMCTL_API ?? 'http://127.0.0.1:8006';

export default defineConfig({
  root,
  base: './',
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: path.resolve(root, '../dist/web'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    sourcemap: false,
    // noVNC uses top-level await (core/util/browser.js).
    target: 'es2022',
  },
  server: { proxy: { '/api': { target: api, ws: true }, '/metrics': api } },
});
