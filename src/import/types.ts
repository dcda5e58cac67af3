/** The result every importer returns (src/qemu/import.ts for command lines, src/import/* for the rest). */
import type { NetworkSpec } from '../definition/network.js';
import type { VmSpec } from '../definition/vm.js';

export type ImportNote = { level: 'warning' | 'note'; message: string; line?: number };

export type ImportResult = {
  name: string;
  /** The VM definition in its input form (what is written to YAML). */
  vm: Record<string, unknown>;
  /** Network definitions the script implies (a macvtap made with `ip link add … type macvtap`). */
  networks: Record<string, unknown>[];
  /** The validated VM definition. */
  spec: VmSpec;
  networkSpecs: NetworkSpec[];
  notes: ImportNote[];
  /** The QEMU command that was imported, as words (unresolved substitutions verbatim). */
  argv: string[];
  /** Line of the QEMU command in the script. */
  line?: number;
};

export type ImportOptions = {
  name?: string;
  source?: string;
  /** Reads a `-readconfig FILE` the line names (the CLI: relative to the script's directory); undefined when it cannot. */
  readConfig?: (file: string) => string | undefined;
};
