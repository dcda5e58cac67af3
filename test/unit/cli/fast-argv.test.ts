/** The start fast path takes only command lines it reads exactly as commander would (src/cli/fast-argv.ts). */
import { describe, expect, it } from 'vitest';
import { parseFastStart } from '../../../src/cli/fast-argv.js';

const p = (s: string) => parseFastStart(s.split(' ').filter(Boolean));

describe('parseFastStart', () => {
  it('takes start NAME with --wait, --json, --wait-for-guest [M], --timeout N, --netns X in any order', () => {
    expect(p('start web')).toEqual({ name: 'web', json: false });
    expect(p('start web --wait --json')).toEqual({ name: 'web', json: true });
    expect(p('start --json web --wait')).toEqual({ name: 'web', json: true });
    expect(p('start web --wait-for-guest')).toEqual({ name: 'web', json: false, waitForGuest: true });
    expect(p('start web --wait-for-guest login: --timeout 30')).toEqual({ name: 'web', json: false, waitForGuest: 'login:', timeout: 30 });
    expect(p('start web --wait-for-guest --json')).toEqual({ name: 'web', json: true, waitForGuest: true });
    expect(p('start web --timeout=2.5 --netns=ns1')).toEqual({ name: 'web', json: false, timeout: 2.5, netns: 'ns1' });
    expect(p('start web --netns ns1')).toEqual({ name: 'web', json: false, netns: 'ns1' });
  });

  it('reads --wait-for-guest WORD as the marker, like commander (then the name is missing)', () => {
    expect(p('start --wait-for-guest web')).toBeUndefined();
  });

  it('leaves everything else to the full CLI', () => {
    for (const s of [
      '', 'list', 'stop web', 'start', 'start a b', 'start web --on host2', 'start web --remote /run/k.sock', 'start web --help', 'start web -h',
      'start web --timeout', 'start web --timeout abc', 'start web --timeout -1', 'start web --timeout=', 'start web --netns', 'start web --wait --wait',
      'start web --wait=yes', 'start web --bogus', 'start web -- x', '--json start web', 'start web --json --json',
    ]) expect(p(s), s).toBeUndefined();
  });
});
