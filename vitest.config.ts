import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Integration tests boot real QEMU guests (TCG, CPU-bound): two files at a time on 2 cores.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
    setupFiles: ['test/helpers/validator-setup.ts'],
    env: {
      // One test-guest build per machine, shared by every test file, the demo and the benchmarks.
      KVMCTL_GUEST_CACHE: process.env.KVMCTL_GUEST_CACHE ?? path.resolve(import.meta.dirname, '.cache/guest'),
    },
  },
});
