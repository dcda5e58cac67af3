#!/usr/bin/env node
// The bundled CLI (fast start-up) when it is at least as new as the tsc output, else the tsc output.
import fs from 'node:fs';

const bundle = new URL('../dist/bundle/main.js', import.meta.url);
const plain = new URL('../dist/cli/main.js', import.meta.url);
const mtime = (u) => {
  try {
    return fs.statSync(u).mtimeMs;
  } catch {
    return -1;
  }
};
await import(mtime(bundle) >= mtime(plain) ? bundle.href : plain.href);
