/**
 * vitest setup file: tests that call the service layer in-process read stored definitions as the
 * CLI's long-running commands do, with the definition validator loaded up front (the CLI loads it
 * lazily, in prepareDefinitions: src/spec/store.ts). test/unit/definition-cache.test.ts
 * unregisters it to test the lazy path.
 */
import '../../src/spec/load.js';
