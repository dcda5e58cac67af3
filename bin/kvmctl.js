#!/usr/bin/env node
// The bundled CLI (fast start-up) when it is at least as new as the tsc output, else the tsc output.
// `kvmctl start …` first tries the bundle's start fast path (dist/bundle/start.cjs, one file, see
// src/cli/start-fast.ts), compiled with a V8 code cache: Node 20 has no compile cache for ES
// modules, and parsing that file costs more than running it. The cache (start.cjs.cache) is
// used only when it was made from this exact file (its sha256 is in the cache's first line) by
// this Node (V8 checks its own version and flags too, and rejects what does not fit); otherwise
// the file is compiled from source and the cache rewritten once the command has run (so it holds
// the functions a start compiles). A cache that cannot be written (read-only install) is skipped.
// For measurements: KVMCTL_FAST_START=0 runs `start` through the full CLI, KVMCTL_CODE_CACHE=0
// compiles the fast path from source (no cache read or written).
// This file is CommonJS (bin/package.json): the ES module loader costs ~4 ms before the first line
// runs, and `start` needs none of it (issue #19); the full CLI is an ES module loaded by import().
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { createRequire } = require('node:module');
const { fileURLToPath, pathToFileURL } = require('node:url');
const v8 = require('node:v8');
const vm = require('node:vm');

const dir = new URL('../dist/bundle/', pathToFileURL(__filename));
const plain = new URL('../dist/cli/main.js', pathToFileURL(__filename));
const mtime = (u) => {
  try {
    return fs.statSync(u).mtimeMs;
  } catch {
    return -1;
  }
};

/** Compile and run a CommonJS bundle with a code cache keyed by its content; returns its exports. */
function loadCached(file) {
  const src = fs.readFileSync(file);
  const key = `kvmctl-code-cache 1 ${createHash('sha256').update(src).digest('hex')} ${process.version}\n`;
  const cacheFile = `${file}.cache`;
  const useCache = process.env.KVMCTL_CODE_CACHE !== '0';
  let cachedData;
  if (useCache) try {
    const c = fs.readFileSync(cacheFile);
    if (c.subarray(0, key.length).toString('latin1') === key) cachedData = c.subarray(key.length);
  } catch {
    /* no cache yet */
  }
  const wrapper = `(function (exports, require, module, __filename, __dirname) {${src.toString('latin1')}\n})`;
  const script = new vm.Script(wrapper, { filename: file, cachedData });
  // KVMCTL_TRACE=1 (src/trace.ts) also says whether the cache served.
  if (process.env.KVMCTL_TRACE) process.stderr.write(`trace code cache: ${!useCache ? 'off' : !cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}\n`);
  if (useCache && (!cachedData || script.cachedDataRejected)) {
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(tmp, Buffer.concat([Buffer.from(key, 'latin1'), script.createCachedData()]));
        fs.renameSync(tmp, cacheFile);
      } catch {
        /* not writable: run without a cache */
      }
    });
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, file.slice(0, file.lastIndexOf('/')));
  return module.exports;
}

// `kvmctl serve` idles: no optimizing or baseline compiler, V8 tuned for size, set before any of
// kvmctl's code loads (src/api/lean.ts says why these three and not --lite-mode).
if (process.argv[2] === 'serve' && process.env.KVMCTL_SERVE_OPTIMIZE !== '1') v8.setFlagsFromString('--no-opt --no-sparkplug --optimize-for-size');

const fast = new URL('start.cjs', dir);
const main = new URL('main.js', dir);
const bundled = mtime(main) >= mtime(plain);
(async () => {
  if (!(process.argv[2] === 'start' && process.env.KVMCTL_FAST_START !== '0' && bundled && mtime(fast) >= mtime(plain) && (await loadCached(fileURLToPath(fast)).main(process.argv.slice(2))))) {
    await import(bundled ? main.href : plain.href);
  }
})().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
