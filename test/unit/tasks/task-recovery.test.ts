/**
 * Interrupted tasks: a CLI command's own registry does not read the task history (it cost ~10 ms
 * of every `kvmctl start` with 500 records, issue #19); serve's registry and `kvmctl tasks`
 * (recoverInterrupted) mark a running task whose process is gone as failed, and leave a live one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../../src/host/paths.js';
import { readTask, recoverInterrupted, TaskRegistry, tasksDir, type TaskRecord } from '../../../src/tasks/registry.js';

let home: string;
let paths: Paths;
const rec = (id: string, pid: number): TaskRecord => ({ id, kind: 'start', target: 'web', owner: 'cli', pid, state: 'running', startedAt: new Date().toISOString(), progress: null, cancellable: false, log: [] });
const put = (t: TaskRecord) => fs.writeFileSync(path.join(tasksDir(paths), `${t.id}.json`), JSON.stringify(t));
/** A PID that is not running: a child that has exited and been reaped. */
const deadPid = () => {
  let pid = 4_000_000;
  while (fs.existsSync(`/proc/${pid}`)) pid -= 1;
  return pid;
};

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kvt-tasks-'));
  paths = resolvePaths({ KVMCTL_HOME: home });
  fs.mkdirSync(tasksDir(paths), { recursive: true });
  put(rec('a0000000-0001', deadPid()));
  put(rec('a0000000-0002', process.ppid));
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

describe('interrupted tasks', () => {
  it('a CLI registry (recover=false) leaves the history unread and unchanged', () => {
    const before = fs.readFileSync(path.join(tasksDir(paths), 'a0000000-0001.json'), 'utf8');
    new TaskRegistry(paths, undefined, undefined, false).close();
    expect(fs.readFileSync(path.join(tasksDir(paths), 'a0000000-0001.json'), 'utf8')).toBe(before);
    expect(readTask(paths, 'a0000000-0001').state).toBe('running');
  });

  it('recoverInterrupted marks only the task whose process is gone', () => {
    recoverInterrupted(paths);
    const dead = readTask(paths, 'a0000000-0001');
    expect(dead.state).toBe('failed');
    expect(dead.error?.code).toBe('TASK_INTERRUPTED');
    expect(dead.endedAt).toBeTruthy();
    expect(readTask(paths, 'a0000000-0002').state).toBe('running');
    expect(fs.readdirSync(tasksDir(paths)).sort()).toEqual(['a0000000-0001.json', 'a0000000-0002.json']);
  });

  it("serve's registry (the default) recovers at construction", () => {
    new TaskRegistry(paths).close();
    expect(readTask(paths, 'a0000000-0001').state).toBe('failed');
    expect(readTask(paths, 'a0000000-0002').state).toBe('running');
  });
});
