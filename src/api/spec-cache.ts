/** VM definitions parsed once and re-read only when their file changes (the server's view of them). */
import fs from 'node:fs';
import type { Paths } from '../host/paths.js';
import { defPath, readVm } from '../definition/store.js';
import type { VmSpec } from '../definition/vm.js';

type Cached = { key: string; spec?: VmSpec; error?: string };

export class SpecCache {
  private readonly cache = new Map<string, Cached>();
  constructor(private readonly paths: Paths) {}

  get(name: string): { spec?: VmSpec; error?: string } {
    let key = 'missing';
    try {
      const st = fs.statSync(defPath(this.paths, 'vm', name));
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      /* readVm reports it */
    }
    const c = this.cache.get(name);
    if (c && c.key === key) return c;
    let n: Cached;
    try {
      n = { key, spec: readVm(this.paths, name) };
    } catch (e) {
      n = { key, error: (e as Error).message };
    }
    this.cache.set(name, n);
    return n;
  }
}

