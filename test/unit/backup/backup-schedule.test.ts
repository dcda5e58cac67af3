/** backup.schedule: the accepted forms, the errors, and when each is next due (host local time). */
import { describe, expect, it } from 'vitest';
import { nextRun, parseSchedule, type Schedule } from '../../../src/backup/schedule.js';
import { validateVm } from '../../../src/definition/load.js';

const local = (y: number, mo: number, d: number, h = 0, mi = 0) => new Date(y, mo - 1, d, h, mi);
const next = (text: string, after: Date) => nextRun(parseSchedule(text) as Schedule, after);

describe('backup schedules', () => {
  it('parses every form', () => {
    expect(parseSchedule('hourly')).toEqual({ kind: 'hourly', minute: 0 });
    expect(parseSchedule('02:30')).toEqual({ kind: 'daily', hour: 2, minute: 30 });
    expect(parseSchedule('daily 23:05')).toEqual({ kind: 'daily', hour: 23, minute: 5 });
    expect(parseSchedule('weekly Sunday 03:00')).toEqual({ kind: 'weekly', day: 0, hour: 3, minute: 0 });
    expect(parseSchedule('every 6h')).toEqual({ kind: 'interval', ms: 6 * 3_600_000 });
    expect(parseSchedule('every 1m')).toMatch(/at least 5m/);
    expect(parseSchedule('25:00')).toMatch(/is not a schedule/);
  });

  it('is next due strictly after the given time', () => {
    const t = local(2026, 12, 7, 10, 15); // a Monday
    expect(next('hourly', t)).toEqual(local(2026, 12, 7, 11, 0));
    expect(next('02:30', t)).toEqual(local(2026, 12, 8, 2, 30));
    expect(next('daily 23:05', t)).toEqual(local(2026, 12, 7, 23, 5));
    expect(next('weekly mon 10:15', t)).toEqual(local(2026, 12, 14, 10, 15));
    expect(next('weekly sun 03:00', t)).toEqual(local(2026, 12, 13, 3, 0));
    expect(next('every 6h', t)).toEqual(local(2026, 12, 7, 16, 15));
  });

  it('a bad schedule in a definition is reported with its path', () => {
    expect(() => validateVm({ name: 'a', backup: { schedule: 'sometimes' } })).toThrow(/backup\.schedule: "sometimes" is not a schedule/);
    expect(() => validateVm({ name: 'a', backup: { schedule: 'daily', keep: { lats: 3 } } })).toThrow(/backup\.keep/);
    expect(validateVm({ name: 'a', backup: { schedule: 'daily 01:00', keep: { last: 3 } } }).backup).toEqual({ schedule: 'daily 01:00', keep: { last: 3 }, freeze: true });
  });
});
