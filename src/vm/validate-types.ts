import type { ErrorIssue } from '../errors.js';
export { specError } from '../definition/load.js';
export type ErrorIssueList = ErrorIssue[];
