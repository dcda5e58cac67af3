/**
 * vitest setup file: tests that call the service layer in-process read stored definitions as the
 * CLI's long-running commands do, with the definition validator loaded up front (the CLI loads it
 * lazily, in prepareDefinitions: src/definition/store.ts). test/unit/definition/definition-cache.test.ts
 * unregisters it to test the lazy path. After each test file, the temp homes it made with
 * tempHome() are removed (vitest may end a worker without its 'exit' event).
 */
import { afterAll } from 'vitest';
import '../../src/definition/load.js';
import { removeTempHomes } from './netns.js';

afterAll(() => removeTempHomes());
