/** The wrapper every command's action goes through (built in main.ts): below main.ts and commands/*, so imports point down. */
import type { Ctx } from './context.js';

export type Action = (fn: (ctx: Ctx, ...args: any[]) => Promise<void> | void) => (...args: any[]) => Promise<void>;
