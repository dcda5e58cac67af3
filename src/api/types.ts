/** TypeScript types of the API's answers, inferred from the contract's schemas. */
import type { z } from 'zod';
import type { startResultSchema, stopResultSchema, vmListItemSchema } from './contract.js';

export type VmListItem = z.infer<typeof vmListItemSchema>;
export type StartResult = z.infer<typeof startResultSchema>;
export type StopResult = z.infer<typeof stopResultSchema>;
