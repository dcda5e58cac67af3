import type { ErrorIssue } from '../errors.js';
export { specError } from '../spec/load.js';
export type ErrorIssueList = ErrorIssue[];
