/** Every CLI command module. To add a command: write src/cli/commands/NAME.ts exporting
 * `register(program, action)` and add one line here. */
import type { Command } from 'commander';
import type { Action } from '../main.js';

export type Register = (program: Command, action: Action) => void;

export const commands: Register[] = [];
