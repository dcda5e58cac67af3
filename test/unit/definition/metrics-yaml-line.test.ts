/**
 * #14 item 7: Prometheus VM state (stopped VMs present as up 0, paused is up 1 with a state
 * series, no 0.5) and the YAML editor's syntax-error line (the line in the text the user typed,
 * also after a leading comment or `---`), fed from the server's own parser.
 */
import { describe, expect, it } from 'vitest';
import { parseDefinitions } from '../../../src/definition/load.js';
import { toPrometheus, type Metrics, type VmMetrics } from '../../../src/vm/metrics.js';
import { lineRange, syntaxLine } from '../../../web/src/components/YamlEditor.js';

const vmRow = (name: string, state: VmMetrics['state']): VmMetrics => ({ name, pid: 1, state, uptimeSec: 1, cpuSec: 1, cpuPercent: null, rssBytes: 1, block: [], net: [] });
const host: Metrics['host'] = { cpus: 2, cpuPercent: null, loadavg: [0, 0, 0], memTotalBytes: 1, memAvailableBytes: 1, ksmSavedBytes: 0, ksmRun: null };

describe('Prometheus VM state', () => {
  const m: Metrics = { at: '', host, vms: [vmRow('run', 'running'), vmRow('pau', 'paused')] };
  const t = toPrometheus(m, [
    { name: 'run', state: 'running' },
    { name: 'pau', state: 'paused' },
    { name: 'off', state: 'stopped' },
    { name: 'bad', state: 'crashed' },
    { name: 'stale', state: 'running' }, // no sample: no QEMU process, whatever the state said
  ]);
  const value = (series: string) => t.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1];

  it('has every defined VM in kvmctl_vm_up, 1 with a QEMU process and 0 without, never 0.5', () => {
    expect(value('kvmctl_vm_up{vm="run"}')).toBe('1');
    expect(value('kvmctl_vm_up{vm="pau"}')).toBe('1');
    expect(value('kvmctl_vm_up{vm="off"}')).toBe('0');
    expect(value('kvmctl_vm_up{vm="bad"}')).toBe('0');
    expect(value('kvmctl_vm_up{vm="stale"}')).toBe('0');
    expect(t).not.toMatch(/ 0\.5$/m);
  });
  it('has one kvmctl_vm_state series per state, 1 for the current one', () => {
    expect(value('kvmctl_vm_state{vm="pau",state="paused"}')).toBe('1');
    expect(value('kvmctl_vm_state{vm="pau",state="running"}')).toBe('0');
    expect(value('kvmctl_vm_state{vm="off",state="stopped"}')).toBe('1');
    expect(value('kvmctl_vm_state{vm="bad",state="crashed"}')).toBe('1');
    expect(value('kvmctl_vm_state{vm="stale",state="stopped"}')).toBe('1');
    for (const vm of ['run', 'pau', 'off', 'bad', 'stale']) {
      const rows = t.split('\n').filter((l) => l.startsWith(`kvmctl_vm_state{vm="${vm}",`));
      expect(rows).toHaveLength(6);
      expect(rows.filter((l) => l.endsWith(' 1'))).toHaveLength(1);
    }
  });
  it('stays valid exposition text: one HELP and TYPE per family, before its samples', () => {
    const lines = t.trim().split('\n');
    for (const line of lines) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{(\w+="[^"]*",?)+\})? -?[\d.e+]+)$/);
    const typed = new Set<string>();
    for (const line of lines) {
      const typeOf = /^# TYPE (\w+) /.exec(line);
      if (typeOf) {
        expect(typed.has(typeOf[1]!)).toBe(false);
        typed.add(typeOf[1]!);
      } else if (!line.startsWith('#')) expect(typed.has(/^(\w+)/.exec(line)![1]!)).toBe(true);
    }
    expect(typed).toContain('kvmctl_vm_state');
  });
});

describe('YAML editor: syntax error line', () => {
  const cases: [string, string, number][] = [
    ['plain', 'name: a\nmemory: 1G\nname: b\n', 3],
    ['leading comment', '# my VM\n# (edited by hand)\nname: a\nmemory: 1G\nname: b\n', 5],
    ['leading ---', '---\nname: a\nmemory: 1G\nname: b\n', 4],
    ['comment and ---', '# my VM\n---\nname: a\ncpu: [1,\nmemory: 1G\n', 5],
  ];
  for (const [what, text, line] of cases) {
    it(`points at line ${line} of the text typed (${what})`, () => {
      const issues = parseDefinitions(text, 'request body')[0]!.issues;
      expect(issues.length).toBeGreaterThan(0);
      const n = syntaxLine(issues[0]!.path);
      expect(n).toBe(line);
      const [a, b] = lineRange(text, n!);
      expect(text.slice(a, b)).toBe(text.split('\n')[line - 1]);
      expect(text.slice(0, a).split('\n')).toHaveLength(line);
    });
  }
  it('leaves field paths to the field locator', () => {
    expect(syntaxLine('nics[1].mac')).toBeNull();
    expect(syntaxLine('(top)')).toBeNull();
  });
});
