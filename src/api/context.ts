/** What every route handler of `kvmctl serve` gets (below both server.ts and routes/*, so imports point down). */
import type { BackupScheduler } from '../backup/scheduler.js';
import type { Paths } from '../host/paths.js';
import type { Supervisor } from '../vm/supervisor.js';
import type { EventBus } from './events.js';
import type { MetricsSampler } from '../vm/metrics.js';
import type { SpecCache } from './spec-cache.js';
import type { MetricsRecorder } from '../metrics/recorder.js';
import type { TaskRegistry } from '../tasks/registry.js';
import type { VmWatcher } from './watcher.js';

export type ServerCtx = {
  paths: Paths;
  netns?: string;
  bus: EventBus;
  watcher?: VmWatcher;
  supervisor?: Supervisor;
  /** Scheduled backups (`backup.schedule` in definitions). */
  backups?: BackupScheduler;
  metrics: MetricsSampler;
  /** Parsed definitions, re-read when their file changes. */
  specs: SpecCache;
  /** Metric history (sampled every 10 s while the server watches). */
  recorder?: MetricsRecorder;
  /** Tasks: every mutating API call (src/api/routes/tasks.ts). */
  tasks?: TaskRegistry;
  /** Largest ISO upload (`serve --max-upload`; default src/disk/iso-upload.ts DEFAULT_MAX_ISO_BYTES). */
  maxUploadBytes?: number;
};
