/**
 * YAML output for the CLI's lazily loaded commands. A static re-export, because a lazy import of
 * yaml (CommonJS for Node) comes back as `{ default }` once esbuild bundles it: stringify undefined.
 */
export { stringify } from 'yaml';
